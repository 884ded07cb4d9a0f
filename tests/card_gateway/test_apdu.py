"""The APDU layer against the virtual card's applet in-process: the protocol, fast."""

from __future__ import annotations

from typing import Any

import pytest
from singlewindow.card_gateway.apdu import (
    CardBlocked,
    CardProtocolError,
    EPortCard,
    InvalidPin,
    NotAnEPortCard,
    NotVerified,
    PinIncorrect,
    PinStatus,
    compute_signature,
    read_binary,
    select_aid,
    select_ef,
    verify,
)
from singlewindow.contracts.card_gateway import CardData
from singlewindow.virtual_card.applet import EPortApplet, ForeignApplet, PinRecord
from singlewindow.virtual_card.card import CardData as IssuedCardData

PIN = "88888888"
WRONG_PIN = "11111111"


class AppletTransport:
    """Hands each APDU straight to an applet and keeps what was sent."""

    def __init__(self, applet: Any) -> None:
        self.applet = applet
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> tuple[bytes, int, int]:
        self.sent.append(apdu)
        response = self.applet.process(apdu)
        return response[:-2], response[-2], response[-1]

    def count(self, ins: int) -> int:
        return sum(1 for apdu in self.sent if apdu[1] == ins)


class ScriptedTransport:
    """Answers SELECT with 9000 and every other APDU with the same response."""

    def __init__(self, data: bytes, sw: int, *, select_sw: int = 0x9000) -> None:
        self.response = (data, sw >> 8, sw & 0xFF)
        self.select_response = (b"", select_sw >> 8, select_sw & 0xFF)

    def transmit(self, apdu: bytes) -> tuple[bytes, int, int]:
        return self.select_response if apdu[1] == 0xA4 else self.response


@pytest.fixture
def transport(card_data: IssuedCardData, certificate: bytes, signer: Any) -> AppletTransport:
    pin = PinRecord.new(PIN, salt=b"\x03" * 16)
    files = {0x0101: card_data.encode(), 0x0102: certificate}
    return AppletTransport(EPortApplet(files, pin, signer))


@pytest.fixture
def card(transport: AppletTransport) -> EPortCard:
    return EPortCard(transport)


def test_command_apdus() -> None:
    assert select_aid() == bytes.fromhex("00A4040C09F0535745504F525401")
    assert select_ef(0x0102) == bytes.fromhex("00A4020402010200")
    assert read_binary(0x0100) == bytes.fromhex("00B0010000")
    assert read_binary(0x0200, 0x58) == bytes.fromhex("00B0020058")
    assert verify(PIN) == bytes.fromhex("00200001083838383838383838")
    assert compute_signature(b"\x01\x02") == bytes.fromhex("002A9E9A02010200")


def test_card_data_is_read_and_decoded(card: EPortCard, card_data: IssuedCardData) -> None:
    assert card.read_card_data() == CardData(
        card_number=card_data.card_number,
        card_type="legal-person",
        operator_level=None,
        holder_name="李四",
        holder_id_number="310101198001011234",
        enterprise_uscc="91310000MA1FL8XQ30",
        enterprise_name="上海某某贸易有限公司",
        organisation_code="MA1FL8XQ3",
        customs_code=None,
    )


def test_the_certificate_is_read_whole_in_256_byte_chunks(
    card: EPortCard, transport: AppletTransport, certificate: bytes
) -> None:
    assert card.read_certificate() == certificate
    assert transport.count(0xB0) == 3  # 604 bytes: 256 + 256 + 92


def test_the_application_is_selected_once(card: EPortCard, transport: AppletTransport) -> None:
    card.read_card_data()
    card.read_certificate()
    card.verify_pin(PIN)
    card.sign(b"challenge")
    assert transport.sent.count(select_aid()) == 1


def test_a_wrong_pin_says_how_many_tries_are_left(card: EPortCard) -> None:
    with pytest.raises(PinIncorrect, match="wrong PIN, 9 tries left") as wrong:
        card.verify_pin(WRONG_PIN)
    assert wrong.value.tries_left == 9


def test_the_last_wrong_pin_blocks_and_no_verify_is_sent_after(
    card: EPortCard, transport: AppletTransport
) -> None:
    left = []
    for _ in range(10):
        with pytest.raises(PinIncorrect) as wrong:
            card.verify_pin(WRONG_PIN)
        left.append(wrong.value.tries_left)
    assert left == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert card.blocked
    sent = len(transport.sent)
    with pytest.raises(CardBlocked):
        card.verify_pin(PIN)
    with pytest.raises(CardBlocked):
        card.pin_status()
    assert len(transport.sent) == sent


def test_a_blocked_card_refuses_the_right_pin_and_is_then_left_alone(
    transport: AppletTransport,
) -> None:
    first = EPortCard(transport)
    for _ in range(10):
        with pytest.raises(PinIncorrect):
            first.verify_pin(WRONG_PIN)
    second = EPortCard(transport)  # a new session does not know the card is blocked
    with pytest.raises(CardBlocked, match="blocked"):
        second.verify_pin(PIN)
    verifies = transport.count(0x20)
    with pytest.raises(CardBlocked):
        second.verify_pin(PIN)
    assert transport.count(0x20) == verifies


def test_a_malformed_pin_is_not_sent(card: EPortCard, transport: AppletTransport) -> None:
    for pin in ["1234567", "123456789", "1234567a", "１２３４５６７８"]:
        with pytest.raises(InvalidPin):
            card.verify_pin(pin)
    assert transport.count(0x20) == 0


def test_pin_status_without_trying_a_pin(card: EPortCard) -> None:
    assert card.pin_status() == PinStatus(verified=False, tries_left=10)
    card.verify_pin(PIN)
    assert card.pin_status() == PinStatus(verified=True, tries_left=None)


def test_signing_before_the_pin_is_refused(card: EPortCard) -> None:
    with pytest.raises(NotVerified):
        card.sign(b"challenge")


def test_the_card_signs_the_challenge(card: EPortCard, signer: Any) -> None:
    challenge = bytes(range(32))
    card.verify_pin(PIN)
    assert card.sign(challenge) == signer.sign(challenge)


@pytest.mark.parametrize("size", [0, 65])
def test_a_challenge_must_be_1_to_64_bytes(card: EPortCard, size: int) -> None:
    card.verify_pin(PIN)
    with pytest.raises(ValueError, match="1 to 64"):
        card.sign(bytes(size))


def test_a_card_without_the_eport_application() -> None:
    card = EPortCard(AppletTransport(ForeignApplet()))
    with pytest.raises(NotAnEPortCard, match="not an E-Port card") as refused:
        card.read_card_data()
    assert refused.value.sw == 0x6A82


@pytest.mark.parametrize("sw", [0x6A81, 0x6D00, 0x6E00, 0x6F00])
def test_any_refused_select_means_not_an_eport_card(sw: int) -> None:
    with pytest.raises(NotAnEPortCard):
        EPortCard(ScriptedTransport(b"", 0x9000, select_sw=sw)).select()


def test_a_signature_that_is_not_der_is_a_protocol_error() -> None:
    card = EPortCard(ScriptedTransport(b"\x01\x02\x03", 0x9000))
    with pytest.raises(CardProtocolError, match="not a DER signature"):
        card.sign(b"challenge")


def test_card_data_that_is_not_json_is_a_protocol_error() -> None:
    files = {0x0101: b"\xff not json"}
    applet = EPortApplet(files, PinRecord.new(PIN, salt=b"s" * 16), signer=None)  # type: ignore[arg-type]
    with pytest.raises(CardProtocolError, match="bad card data"):
        EPortCard(AppletTransport(applet)).read_card_data()


def test_an_unexpected_pin_answer_is_a_protocol_error() -> None:
    card = EPortCard(ScriptedTransport(b"", 0x6581))
    with pytest.raises(CardProtocolError, match="6581"):
        card.verify_pin(PIN)
