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

from singlewindow.shared.contracts import card_gateway
from singlewindow.swctl.platform import Platform
from singlewindow.virtual_card.issuing import IssuedCard

from tests.support.platform import Bus, eventually

HERE = Path(__file__).resolve().parent
READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")
CARD_PIN = "73519468"
"""The PIN of the cards issued here: distinctive, so that a log holding it is easy to find."""
BUSY_WAIT_SECONDS = 1.5
TIMEOUT = 15.0


def card_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """nats-server, card-gateway and pcscd with the vpcd reader; the development CA."""
    data_dir = tmp_path_factory.mktemp("card-platform")
    config = PlatformConfig(
        data_dir=data_dir,
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        service_ports={CARD_GATEWAY: free_port()},
        environment={"SW_CARD_GATEWAY_BUSY_WAIT_SECONDS": str(BUSY_WAIT_SECONDS)},
        cards=True,
        pcscd_mode="auto",
    )
    platform = Platform(config)
    try:
        platform.start()
        assert platform.pcscd is not None, platform.pcscd_problem
        yield platform
    finally:
        platform.stop()


async def card_bus(card_platform: Platform) -> AsyncIterator[Bus]:
    async with bus(card_platform) as connection:
        yield connection


def dev_ca(card_platform: Platform) -> DevCA:
    return DevCA.open(card_platform.config.dev_ca_dir)


IssueCard = Callable[..., IssuedCard]


def issue_card(dev_ca: DevCA, tmp_path: Path) -> IssueCard:
    """Issue a fresh virtual card (PIN ``CARD_PIN``) of a fresh enterprise."""

    def issue(**overrides: Any) -> IssuedCard:
        fields: dict[str, Any] = {
            "card_type": "legal-person",
            "uscc": make_uscc(),
            "enterprise_name": "重庆某某贸易有限公司",
            "holder_name": "张三",
            "holder_id_number": "11010519491231002X",
            "pin": CARD_PIN,
        }
        return dev_ca.issue_card(tmp_path / "cards", **(fields | overrides))

    return issue


async def readers_now(card_bus: Bus) -> dict[str, bool]:
    """Each reader card-gateway sees, and whether a card is in it."""
    listed = await card_bus.call(card_gateway.LIST_READERS, {}, card_gateway.ReaderList)
    return {reader.name: reader.card_present for reader in listed.readers}


@dataclass
class Emulator:
    """A virtual card in a reader, in its own process."""

    process: subprocess.Popen[bytes]
    log: Path
    reader: str

    def remove(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(TIMEOUT) == 0, self.log.read_text()

    def pull_out(self) -> None:
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
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "singlewindow.virtual_card.vpcd", *args],
                env={**os.environ, "PYTHONPATH": pythonpath},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        emulator = Emulator(process, log, reader)
        self.started.append(emulator)
        await self.wait_for(reader, present=True, emulator=emulator)
        return emulator

    async def wait_for(
        self, reader: str, *, present: bool, emulator: Emulator | None = None
    ) -> None:
        async def seen() -> bool | None:
            if emulator is not None and emulator.process.poll() is not None:
                raise AssertionError(f"the card process exited: {emulator.log.read_text()}")
            return True if (await readers_now(self.bus)).get(reader) == present else None

        await eventually(seen, within=TIMEOUT)

    async def take_all_out(self) -> None:
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


async def slots(card_platform: Platform, card_bus: Bus, tmp_path: Path) -> AsyncIterator[CardSlots]:
    """The reader slots, empty before and after the test."""
    cards = CardSlots(card_platform, card_bus, tmp_path)
    for reader in READERS:
        await cards.wait_for(reader, present=False)
    try:
        yield cards
    finally:
        await cards.take_all_out()
