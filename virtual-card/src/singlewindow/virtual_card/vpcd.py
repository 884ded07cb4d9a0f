"""Put a virtual card into pcscd's vsmartcard ``vpcd`` reader.

The reader (``libifdvpcd``, configured in ``/etc/reader.conf.d/vpcd``) listens on TCP: port
35963 is the slot ``Virtual PCD 00 00``, 35964 is ``Virtual PCD 00 01``. The card connects to
it; being connected is being in the reader, closing the connection pulls the card out. Every
message is a 2-byte big-endian length and a body: a 1-byte body is a control message
(00 power off, 01 power on, 02 reset: no answer; 04: answer the ATR), anything longer is a
command APDU answered with its response APDU.

    python -m singlewindow.virtual_card.vpcd --card CARDFILE [--host H] [--port 35963]

The card's key is the SM2 key in the card file (``singlewindow.virtual_card.signer``) unless
``--signer-factory MODULE:CALLABLE`` names another way to sign (the tests' fake keys).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from singlewindow.virtual_card.applet import (
    CardApplet,
    EPortApplet,
    ForeignApplet,
    Signer,
    WrongLength,
    parse_command,
)
from singlewindow.virtual_card.card import CardFileError, load_card_file, save_card_file
from singlewindow.virtual_card.signer import from_key

DEFAULT_HOST: Final = "localhost"
DEFAULT_PORT: Final = 35963

CTRL_POWER_OFF: Final = 0x00
CTRL_POWER_ON: Final = 0x01
CTRL_RESET: Final = 0x02
CTRL_GET_ATR: Final = 0x04
CARD_SEEN: Final = "the reader read the card's ATR"
"""Logged when pcscd has seen the card: `swctl card insert` waits for it."""

SignerFactory = Callable[[Mapping[str, Any]], Signer]

log = logging.getLogger("singlewindow.virtual_card.vpcd")


def load_signer_factory(spec: str) -> SignerFactory:
    """Resolve ``module:callable`` to a function from the card file's ``key`` to a Signer."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"signer factory must be MODULE:CALLABLE, not {spec!r}")
    factory: SignerFactory = getattr(importlib.import_module(module_name), attribute)
    return factory


def eport_applet(card_path: Path, signer_factory: SignerFactory) -> EPortApplet:
    """The E-Port applet of a card file, writing its PIN counter back to that file."""
    card = load_card_file(card_path)

    def persist_pin_tries(tries_left: int) -> None:
        nonlocal card
        updated = replace(card, pin=replace(card.pin, tries_left=tries_left))
        save_card_file(card_path, updated)
        card = updated

    return EPortApplet(
        card.files(),
        card.pin,
        signer_factory(card.key),
        persist_pin_tries=persist_pin_tries,
    )


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(2)
    return await reader.readexactly(int.from_bytes(header, "big"))


def _ack_at_once(writer: asyncio.StreamWriter) -> None:
    # vpcd writes the 2-byte length and the body with two send() calls and no TCP_NODELAY, so
    # Nagle holds the body until the length is acknowledged: without quick ACKs from this side
    # (Linux re-arms delayed ACKs after each one), every message costs a 40 ms delayed ACK.
    quickack = getattr(socket, "TCP_QUICKACK", None)
    sock = writer.get_extra_info("socket")
    if quickack is not None and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


async def connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the vpcd reader, retrying while pcscd is not listening yet (bound it with
    ``asyncio.timeout``)."""
    while True:
        try:
            return await asyncio.open_connection(host, port)
        except OSError as exc:
            log.debug("vpcd reader at %s:%d not reachable yet: %s", host, port, exc)
        await asyncio.sleep(0.2)


async def serve(
    applet: CardApplet,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Answer the reader until it closes the connection."""
    try:
        while True:
            _ack_at_once(writer)
            try:
                message = await _read_frame(reader)
            except asyncio.IncompleteReadError:
                log.info("the reader closed the connection")
                return
            if len(message) == 1:
                answer = _control(applet, message[0])
            else:
                answer = await asyncio.to_thread(_process, applet, message)
                # Only the instruction, the data length and the status: a VERIFY body is the PIN.
                log.debug(
                    "INS %s (%d data bytes) -> SW %s",
                    message[1:2].hex().upper(),
                    _data_length(message),
                    answer[-2:].hex().upper(),
                )
            if answer is not None:
                writer.write(_frame(answer))
                await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _data_length(command: bytes) -> int:
    try:
        return len(parse_command(command).data)
    except WrongLength:
        return 0


def _process(applet: CardApplet, command: bytes) -> bytes:
    try:
        return applet.process(command)
    except Exception:
        log.exception("the applet failed on a command")
        return b"\x6f\x00"


def _control(applet: CardApplet, code: int) -> bytes | None:
    if code == CTRL_GET_ATR:
        # pcscd reads the ATR once it has noticed the card: from here on, clients see it.
        log.info(CARD_SEEN)
        return applet.atr
    if code == CTRL_POWER_OFF:
        applet.power_off()
    elif code in (CTRL_POWER_ON, CTRL_RESET):
        applet.reset()
    else:
        log.warning("unknown vpcd control message %02X", code)
    return None


async def insert(
    applet: CardApplet,
    host: str,
    port: int,
    *,
    connect_timeout: float = 10.0,
    reconnect: bool = False,
) -> int:
    """Stay in the reader until it goes away (or, with ``reconnect``, forever)."""
    while True:
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await connect(host, port)
        except TimeoutError:
            log.error("no vpcd reader at %s:%d after %.0f s", host, port, connect_timeout)
            return 1
        log.info("card inserted into the vpcd reader at %s:%d", host, port)
        await serve(applet, reader, writer)
        if not reconnect:
            return 1
        await asyncio.sleep(0.5)


async def run(
    applet: CardApplet,
    host: str,
    port: int,
    *,
    connect_timeout: float = 10.0,
    reconnect: bool = False,
) -> int:
    """Insert the card until SIGTERM or SIGINT pulls it out (exit 0) or the reader goes away."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    inserted = asyncio.create_task(
        insert(applet, host, port, connect_timeout=connect_timeout, reconnect=reconnect)
    )
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({inserted, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if inserted.done():
            return inserted.result()
        inserted.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await inserted
        log.info("card removed")
        return 0
    finally:
        stopping.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m singlewindow.virtual_card.vpcd",
        description="Insert a virtual E-Port card into pcscd's vpcd reader until terminated.",
    )
    parser.add_argument("--card", type=Path, help="the card file (required unless --not-eport)")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="35963: 00 00, 35964: 00 01")
    parser.add_argument(
        "--signer-factory",
        metavar="MODULE:CALLABLE",
        help="makes the card's Signer from the card file's key object (default: its SM2 key)",
    )
    parser.add_argument(
        "--not-eport", action="store_true", help="insert a card that is not an E-Port card"
    )
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument(
        "--reconnect", action="store_true", help="stay in the reader when pcscd restarts"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log each INS and SW")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s vpcd-card[%(process)d] %(levelname)s %(message)s",
    )

    applet: CardApplet
    if args.not_eport:
        applet = ForeignApplet()
    else:
        if args.card is None:
            parser.error("--card is required")
        try:
            factory = load_signer_factory(args.signer_factory) if args.signer_factory else from_key
            applet = eport_applet(args.card, factory)
        except (CardFileError, ValueError, ImportError, AttributeError) as exc:
            log.error("%s", exc)
            return 2
    return asyncio.run(
        run(
            applet,
            args.host,
            args.port,
            connect_timeout=args.connect_timeout,
            reconnect=args.reconnect,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
