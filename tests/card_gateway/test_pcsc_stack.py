"""The card protocol through the real stack: pyscard → pcscd → vpcd reader → card process.

pcscd is started by ``scripts/pcscd-vpcd.sh`` (or reused when already running); each virtual
card is ``python -m singlewindow.virtual_card.vpcd`` in its own process, as in production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from singlewindow.card_gateway.apdu import (
    CardBlocked,
    CardRemoved,
    EPortCard,
    NoCard,
    NoReader,
    NotAnEPortCard,
    NotVerified,
    PinIncorrect,
    PinStatus,
)
from singlewindow.card_gateway.pcsc import (
    CardEvent,
    CardMonitor,
    list_readers,
    open_card,
    reader_states,
)
from singlewindow.virtual_card.applet import EPORT_ATR
from singlewindow.virtual_card.card import CardData

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parents[1] / "scripts" / "pcscd-vpcd.sh"
# The second vpcd slot, so a virtual card a developer left in "Virtual PCD 00 00" is not disturbed.
READER = "Virtual PCD 00 01"
VPCD_PORT = 35964
TIMEOUT = 10.0
PIN = "88888888"
WRONG_PIN = "12345678"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def card_in_reader() -> bool:
    return any(state.name == READER and state.card_present for state in reader_states())


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """pcscd with the vpcd reader, through the script; stopped after if the script started it."""
    run_dir = tmp_path_factory.mktemp("pcscd")
    env = {**os.environ, "PCSCD_VPCD_PYTHON": sys.executable, "PCSCD_VPCD_TIMEOUT": "20"}

    def script(command: str) -> None:
        done = subprocess.run(
            [str(SCRIPT), command, str(run_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"pcscd-vpcd.sh {command}:\n{done.stdout}{done.stderr}"

    script("start")
    try:
        yield
    finally:
        script("stop")


@dataclass
class Emulator:
    """A virtual card in the reader, in its own process."""

    process: subprocess.Popen[bytes]
    log: Path

    def remove(self) -> None:
        """Take the card out the polite way (SIGTERM)."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(TIMEOUT) == 0, self.log.read_text()

    def pull_out(self) -> None:
        """Yank it: the process dies without a word."""
        self.process.kill()
        self.process.wait(TIMEOUT)


InsertCard = Callable[..., Emulator]


@pytest.fixture
def insert_card(pcscd: None, tmp_path: Path) -> Iterator[InsertCard]:
    started: list[subprocess.Popen[bytes]] = []
    wait_until(lambda: not card_in_reader(), f"{READER} being empty")

    def insert(card: Path | None = None, *, not_eport: bool = False) -> Emulator:
        log = tmp_path / f"emulator-{len(started)}.log"
        args = ["--port", str(VPCD_PORT), "--connect-timeout", str(TIMEOUT), "--verbose"]
        if not_eport:
            args.append("--not-eport")
        else:
            assert card is not None
            args += ["--card", str(card), "--signer-factory", "fake_signer:from_key"]
        pythonpath = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "singlewindow.virtual_card.vpcd", *args],
                env={**os.environ, "PYTHONPATH": pythonpath},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        started.append(process)
        wait_until(lambda: process.poll() is not None or card_in_reader(), f"a card in {READER}")
        assert process.poll() is None, log.read_text()
        return Emulator(process, log)

    yield insert
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(TIMEOUT)
    wait_until(lambda: not card_in_reader(), f"the card leaving {READER}")


def tries_left_in(card_file: Path) -> int:
    return int(json.loads(card_file.read_text())["pin"]["tries_left"])


class CountingTransport:
    """The pyscard connection, counting the VERIFY commands that reach the card."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.verifies = 0

    def transmit(self, apdu: bytes) -> tuple[bytes, int, int]:
        self.verifies += apdu[1] == 0x20
        result: tuple[bytes, int, int] = self.connection.transmit(apdu)
        return result


def test_both_vpcd_slots_are_listed(pcscd: None) -> None:
    assert {"Virtual PCD 00 00", "Virtual PCD 00 01"} <= set(list_readers())


def test_card_data_and_certificate_are_read(
    insert_card: InsertCard, card_file: Path, card_data: CardData, certificate: bytes
) -> None:
    insert_card(card_file)
    with open_card(READER) as connection:
        assert connection.atr() == EPORT_ATR
        card = EPortCard(connection)
        data = card.read_card_data()
        read_certificate = card.read_certificate()
    assert data.card_number == card_data.card_number
    assert (data.card_type, data.operator_level) == ("legal-person", None)
    assert (data.holder_name, data.holder_id_number) == ("李四", "310101198001011234")
    assert (data.enterprise_uscc, data.enterprise_name) == (
        "91310000MA1FL8XQ30",
        "上海某某贸易有限公司",
    )
    assert (data.organisation_code, data.customs_code) == ("MA1FL8XQ3", None)
    assert read_certificate == certificate


def test_the_pin_then_the_signature(insert_card: InsertCard, card_file: Path, signer: Any) -> None:
    insert_card(card_file)
    challenge = os.urandom(32)
    with open_card(READER) as connection:
        card = EPortCard(connection)
        with pytest.raises(NotVerified):
            card.sign(challenge)
        card.verify_pin(PIN)
        assert card.sign(challenge) == signer.sign(challenge)


def test_a_verified_pin_does_not_outlive_the_connection(
    insert_card: InsertCard, card_file: Path
) -> None:
    insert_card(card_file)
    with open_card(READER) as connection:
        EPortCard(connection).verify_pin(PIN)
    with open_card(READER) as connection, pytest.raises(NotVerified):
        EPortCard(connection).sign(b"challenge")


def test_wrong_pins_count_down_to_blocked_and_no_verify_follows(
    insert_card: InsertCard, card_file: Path
) -> None:
    insert_card(card_file)
    with open_card(READER) as connection:
        transport = CountingTransport(connection)
        card = EPortCard(transport)
        left = []
        for _ in range(10):
            with pytest.raises(PinIncorrect) as wrong:
                card.verify_pin(WRONG_PIN)
            left.append(wrong.value.tries_left)
        assert left == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
        with pytest.raises(CardBlocked):
            card.verify_pin(PIN)
        assert transport.verifies == 10
    assert tries_left_in(card_file) == 0

    with open_card(READER) as connection:
        transport = CountingTransport(connection)
        card = EPortCard(transport)
        with pytest.raises(CardBlocked):
            card.verify_pin(PIN)  # the card answers 6983, even to the right PIN
        with pytest.raises(CardBlocked):
            card.verify_pin(PIN)
        assert transport.verifies == 1
        with pytest.raises(NotVerified):
            card.sign(b"challenge")


def test_the_pin_counter_survives_taking_the_card_out(
    insert_card: InsertCard, card_file: Path
) -> None:
    emulator = insert_card(card_file)
    with open_card(READER) as connection, pytest.raises(PinIncorrect):
        EPortCard(connection).verify_pin(WRONG_PIN)
    emulator.remove()
    wait_until(lambda: not card_in_reader(), "the card leaving")

    insert_card(card_file)
    with open_card(READER) as connection:
        assert EPortCard(connection).pin_status() == PinStatus(verified=False, tries_left=9)


@pytest.mark.parametrize("noticed", [False, True], ids=["mid-exchange", "after-pcscd-noticed"])
def test_a_card_pulled_out_during_an_operation(
    insert_card: InsertCard, card_file: Path, noticed: bool
) -> None:
    emulator = insert_card(card_file)
    with open_card(READER) as connection:
        card = EPortCard(connection)
        card.verify_pin(PIN)
        emulator.pull_out()
        if noticed:
            wait_until(lambda: not card_in_reader(), "pcscd noticing the card is gone")
        with pytest.raises(CardRemoved):
            card.sign(b"challenge")


def test_an_empty_reader_has_no_card(insert_card: InsertCard) -> None:
    with pytest.raises(NoCard), open_card(READER):
        pass


def test_an_unknown_reader(pcscd: None) -> None:
    with pytest.raises(NoReader), open_card("No Such Reader 00 00"):
        pass


def test_a_card_that_is_not_an_eport_card(insert_card: InsertCard) -> None:
    insert_card(not_eport=True)
    with open_card(READER) as connection, pytest.raises(NotAnEPortCard):
        EPortCard(connection).read_card_data()


def test_without_pcscd_the_service_is_unavailable(tmp_path: Path) -> None:
    probe = (
        "from singlewindow.card_gateway.apdu import PcscUnavailable\n"
        "from singlewindow.card_gateway.pcsc import list_readers\n"
        "try:\n    list_readers()\n"
        "except PcscUnavailable as exc:\n    print('unavailable:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert done.stdout.startswith("unavailable: cannot reach the PC/SC service (pcscd)")


def test_the_monitor_reports_insertion_and_removal(
    insert_card: InsertCard, card_file: Path
) -> None:
    monitor = CardMonitor()
    try:
        assert any(state.name == READER and not state.card_present for state in monitor.initial)
        emulator = insert_card(card_file)
        assert next_event(monitor) == CardEvent("inserted", READER, EPORT_ATR)
        emulator.remove()
        assert next_event(monitor) == CardEvent("removed", READER)
    finally:
        monitor.close()


def next_event(monitor: CardMonitor) -> CardEvent:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        events = [event for event in monitor.wait(timeout=1.0) if event.reader == READER]
        if events:
            assert len(events) == 1, events
            return events[0]
    raise TimeoutError(f"no card event in {READER} within {TIMEOUT} s")
