from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from singlewindow.swctl.platform import CARD_GATEWAY, Platform, PlatformConfig
from singlewindow.virtual_card.applet import PinRecord
from singlewindow.virtual_card.card import CardData, CardFile, save_card_file
from singlewindow.virtual_card.issuing import DevCA, IssuedCard

from tests.card_gateway.stack import BUSY_WAIT_SECONDS, CARD_PIN, READERS, CardSlots, IssueCard
from tests.support.identifiers import make_uscc
from tests.support.platform import Bus, bus, free_port

SECRET = b"card-gateway-test-key-0123456789"


def load_fake_signer() -> ModuleType:
    """``fake_signer.py``, which the emulator process imports from PYTHONPATH instead."""
    path = Path(__file__).with_name("fake_signer.py")
    spec = importlib.util.spec_from_file_location("card_gateway_fake_signer", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake_signer = load_fake_signer()


@pytest.fixture
def card_data() -> CardData:
    return CardData(
        card_number="8000098765432",
        card_type="legal-person",
        operator_level=None,
        holder_name="李四",
        holder_id_number="310101198001011234",
        enterprise_uscc="91310000MA1FL8XQ30",
        enterprise_name="上海某某贸易有限公司",
        organisation_code="MA1FL8XQ3",
        customs_code=None,
    )


@pytest.fixture
def certificate() -> bytes:
    body = bytes((i * 7 + 3) % 256 for i in range(600))
    return b"\x30\x82" + len(body).to_bytes(2, "big") + body


@pytest.fixture
def signer() -> Any:
    """The same key as the card files' (HMAC standing in for SM2)."""
    return fake_signer.HmacSigner(SECRET)


@pytest.fixture
def card_file(tmp_path: Path, card_data: CardData, certificate: bytes) -> Path:
    """A virtual card with PIN 88888888 and 10 tries."""
    path = tmp_path / "card.json"
    pin = PinRecord.new("88888888", salt=os.urandom(16))
    save_card_file(path, CardFile(card_data, certificate, pin, fake_signer.key_record(SECRET)))
    return path


# The real stack (see stack.py): one platform for the whole session, empty readers per test.


@pytest.fixture(scope="session")
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


@pytest.fixture
async def card_bus(card_platform: Platform) -> AsyncIterator[Bus]:
    """A test's own connection to the card platform's NATS."""
    async with bus(card_platform, "workstation") as connection:
        yield connection


@pytest.fixture
def dev_ca(card_platform: Platform) -> DevCA:
    """The card platform's development CA."""
    return DevCA.open(card_platform.config.dev_ca_dir)


@pytest.fixture
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


@pytest.fixture
async def slots(card_platform: Platform, card_bus: Bus, tmp_path: Path) -> AsyncIterator[CardSlots]:
    """The reader slots, empty before and after the test."""
    cards = CardSlots(card_platform, card_bus, tmp_path)
    for reader in READERS:
        await cards.wait_for(reader, present=False)
    try:
        yield cards
    finally:
        await cards.take_all_out()
