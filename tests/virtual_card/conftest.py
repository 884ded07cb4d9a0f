from __future__ import annotations

import pytest
from singlewindow.virtual_card.applet import EPortApplet, PinRecord
from singlewindow.virtual_card.card import CardData

PIN = "88888888"
SIGNATURE = bytes.fromhex("3006020101020102")


class RecordingSigner:
    """Signs everything with the same DER signature and remembers what it was asked to sign."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def sign(self, message: bytes) -> bytes:
        self.messages.append(message)
        return SIGNATURE


@pytest.fixture
def signer() -> RecordingSigner:
    return RecordingSigner()


@pytest.fixture
def card_data() -> CardData:
    return CardData(
        card_number="8000012345678",
        card_type="operator",
        operator_level="declaration",
        holder_name="张三",
        holder_id_number="110101199003071234",
        enterprise_uscc="91310000MA1FL8XQ30",
        enterprise_name="上海某某贸易有限公司",
        organisation_code="MA1FL8XQ3",
        customs_code="3122261234",
    )


@pytest.fixture
def certificate() -> bytes:
    body = bytes(range(256)) * 2 + bytes(88)
    return b"\x30\x82" + len(body).to_bytes(2, "big") + body


@pytest.fixture
def pin_record() -> PinRecord:
    return PinRecord.new(PIN, salt=b"\x01" * 16)


@pytest.fixture
def applet(
    card_data: CardData, certificate: bytes, pin_record: PinRecord, signer: RecordingSigner
) -> EPortApplet:
    return EPortApplet({0x0101: card_data.encode(), 0x0102: certificate}, pin_record, signer)
