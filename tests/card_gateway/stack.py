"""The real stack, as the platform runs it: nats-server, card-gateway as its own process, a pcscd
with the vpcd reader (private where the machine allows it), virtual cards as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from singlewindow.contracts import card_gateway
from singlewindow.swctl.platform import Platform
from singlewindow.virtual_card.issuing import IssuedCard

from tests.support.platform import Bus, eventually

HERE = Path(__file__).resolve().parent
READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")
CARD_PIN = "73519468"
"""The PIN of the cards issued here: distinctive, so that a log holding it is easy to find."""
BUSY_WAIT_SECONDS = 1.5
TIMEOUT = 15.0

IssueCard = Callable[..., IssuedCard]


def spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a process with its output going to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


async def readers_now(card_bus: Bus) -> dict[str, bool]:
    """Each reader card-gateway sees, and whether a card is in it."""
    listed = await card_bus.call(card_gateway.LIST_READERS, {})
    return {reader.name: reader.card_present for reader in listed.readers}


@dataclass
class Emulator:
    """A virtual card in a reader, in its own process."""

    process: subprocess.Popen[bytes]
    log: Path
    reader: str

    def remove(self) -> None:
        """Take the card out the polite way (SIGTERM)."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(TIMEOUT) == 0, self.log.read_text()

    def pull_out(self) -> None:
        """Yank it: the process dies without a word."""
        self.process.kill()
        self.process.wait(TIMEOUT)

    def verifies_with_pin(self) -> int:
        """How many VERIFY commands carrying a PIN reached the card."""
        return self.log.read_text().count("INS 20 (8 data bytes)")


class CardSlots:
    """Puts virtual cards into the platform's vpcd reader slots, and takes them all out after."""

    def __init__(self, platform: Platform, card_bus: Bus, directory: Path) -> None:
        assert platform.pcscd is not None
        self.pcscd = platform.pcscd
        self.bus = card_bus
        self.directory = directory
        self.started: list[Emulator] = []

    async def insert(
        self,
        card: IssuedCard | None,
        reader: str = READERS[0],
        *,
        slow_signer: bool = False,
    ) -> Emulator:
        """Put ``card`` (None: a card that is not an E-Port card) into ``reader``, and wait
        until card-gateway sees it there."""
        log = self.directory / f"emulator-{len(self.started)}.log"
        args = ["--port", str(self.pcscd.port_of(reader)), "--connect-timeout", str(TIMEOUT), "-v"]
        args += ["--not-eport"] if card is None else ["--card", str(card.path)]
        if slow_signer:
            args += ["--signer-factory", "slow_signer:from_key"]
        pythonpath = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        process = spawn(
            [sys.executable, "-m", "singlewindow.virtual_card.vpcd", *args],
            log,
            {**os.environ, "PYTHONPATH": pythonpath},
        )
        emulator = Emulator(process, log, reader)
        self.started.append(emulator)
        await self.wait_for(reader, present=True, emulator=emulator)
        return emulator

    async def wait_for(
        self, reader: str, *, present: bool, emulator: Emulator | None = None
    ) -> None:
        """Until card-gateway sees a card in ``reader`` (or sees it empty)."""

        async def seen() -> bool | None:
            if emulator is not None and emulator.process.poll() is not None:
                raise AssertionError(f"the card process exited: {emulator.log.read_text()}")
            return True if (await readers_now(self.bus)).get(reader) == present else None

        await eventually(seen, within=TIMEOUT)

    async def take_all_out(self) -> None:
        """Stop every card process started here and wait for the readers to be empty."""
        for emulator in self.started:
            if emulator.process.poll() is None:
                emulator.process.terminate()
                try:
                    emulator.process.wait(TIMEOUT)
                except subprocess.TimeoutExpired:
                    emulator.process.kill()
                    emulator.process.wait(TIMEOUT)
        for reader in {emulator.reader for emulator in self.started}:
            await self.wait_for(reader, present=False)
