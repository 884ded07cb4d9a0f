"""The vpcd protocol against an in-process stand-in for pcscd's vpcd reader."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from singlewindow.virtual_card.applet import EPORT_ATR, EPortApplet, PinRecord
from singlewindow.virtual_card.card import CardData, CardFile, save_card_file
from singlewindow.virtual_card.vpcd import insert

TIMEOUT = 10


@dataclass
class FakeReader:
    """Plays pcscd's side: listens, accepts the card, sends framed messages."""

    port: int = 0
    connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(
        default_factory=asyncio.Queue
    )
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def accept(self) -> Card:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await self.connections.get()
        return Card(reader, writer)


@dataclass
class Card:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, body: bytes) -> None:
        self.writer.write(len(body).to_bytes(2, "big") + body)
        await self.writer.drain()

    async def exchange(self, body: bytes) -> bytes:
        await self.send(body)
        async with asyncio.timeout(TIMEOUT):
            size = int.from_bytes(await self.reader.readexactly(2), "big")
            return await self.reader.readexactly(size)

    async def closed(self) -> bool:
        async with asyncio.timeout(TIMEOUT):
            return await self.reader.read(1) == b""


@pytest.fixture
async def fake_reader() -> AsyncIterator[FakeReader]:
    fake = FakeReader()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fake.writers.append(writer)
        await fake.connections.put((reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake
        for writer in fake.writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def test_the_card_answers_atr_power_and_apdus(
    fake_reader: FakeReader, applet: EPortApplet
) -> None:
    inserted = asyncio.create_task(insert(applet, "127.0.0.1", fake_reader.port))
    card = await fake_reader.accept()
    assert await card.exchange(b"\x04") == EPORT_ATR
    await card.send(b"\x01")  # power on: no answer
    assert await card.exchange(bytes.fromhex("00A4040C09F0535745504F525401")) == b"\x90\x00"
    assert await card.exchange(b"\x00\x20\x00\x01\x08" + b"00000000") == b"\x63\xc9"
    await card.send(b"\x00")  # power off clears the selection
    assert await card.exchange(b"\x00\x20\x00\x01") == b"\x69\x85"

    card.writer.close()  # the reader lets go: the emulator ends
    async with asyncio.timeout(TIMEOUT):
        assert await inserted == 1


async def test_no_reader_within_the_timeout_is_an_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    applet = EPortApplet({}, PinRecord.new("88888888", salt=b"s" * 16), signer=None)  # type: ignore[arg-type]
    async with asyncio.timeout(TIMEOUT):
        assert await insert(applet, "127.0.0.1", port, connect_timeout=0.5) == 1


def run_emulator(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "singlewindow.virtual_card.vpcd", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )


async def test_sigterm_pulls_the_card_out_and_exits_cleanly(
    fake_reader: FakeReader, tmp_path: Path
) -> None:
    emulator = run_emulator(
        tmp_path / "emulator.log",
        "--not-eport",
        "--host",
        "127.0.0.1",
        "--port",
        str(fake_reader.port),
    )
    try:
        card = await fake_reader.accept()
        assert await card.exchange(b"\x04") != b""
        emulator.send_signal(signal.SIGTERM)
        assert await card.closed()
        assert await asyncio.to_thread(emulator.wait, TIMEOUT) == 0
    finally:
        if emulator.poll() is None:
            emulator.kill()
            emulator.wait(TIMEOUT)
    assert "card removed" in (tmp_path / "emulator.log").read_text()


@pytest.mark.parametrize(
    ("key", "complaint"),
    [
        ({"type": "sm2"}, "the card file's sm2 key has no private_key"),
        ({"type": "sm2", "private_key": "not a key"}, "the card file's sm2 key is unreadable"),
        ({"type": "rsa"}, "no signer for key type 'rsa'"),
    ],
)
async def test_a_card_without_a_usable_key_does_not_start(
    tmp_path: Path, card_data: CardData, certificate: bytes, key: dict[str, str], complaint: str
) -> None:
    card_path = tmp_path / "card.json"
    pin = PinRecord.new("88888888", salt=b"s" * 16)
    save_card_file(card_path, CardFile(card_data, certificate, pin, key))
    emulator = run_emulator(tmp_path / "emulator.log", "--card", str(card_path), "--port", "1")
    assert await asyncio.to_thread(emulator.wait, TIMEOUT) == 2
    assert complaint in (tmp_path / "emulator.log").read_text()
