from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from singlewindow.shared.contracts import card_gateway
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


@pytest.fixture(scope="session")
@pytest.fixture
@pytest.fixture
@pytest.fixture
@pytest.fixture
