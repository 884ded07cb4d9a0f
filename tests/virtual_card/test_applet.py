from __future__ import annotations

import json
from typing import Any

import pytest
from singlewindow.virtual_card.applet import EPORT_ATR, EPortApplet, ForeignApplet, PinRecord
from singlewindow.virtual_card.card import CardData

PIN = "88888888"
WRONG_PIN = "12345678"
SELECT_EPORT = "00A4040009F0535745504F525401"
SELECT_DATA = "00A4020C020101"
SELECT_CERT = "00A4020C020102"


def send(applet: Any, apdu: str | bytes) -> tuple[bytes, int]:
    command = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
    response = applet.process(command)
    return response[:-2], int.from_bytes(response[-2:], "big")


def verify(applet: EPortApplet, pin: str) -> int:
    return send(applet, b"\x00\x20\x00\x01\x08" + pin.encode())[1]


def selected(applet: EPortApplet) -> EPortApplet:
    assert send(applet, SELECT_EPORT)[1] == 0x9000
    return applet


def read_whole(applet: EPortApplet, select: str) -> bytes:
    fcp, sw = send(applet, select[:6] + "04" + select[8:] + "00")
    assert sw == 0x9000
    size = int.from_bytes(fcp[4:6], "big")
    content = b""
    while len(content) < size:
        offset = len(content)
        chunk, sw = send(applet, bytes([0, 0xB0, offset >> 8, offset & 0xFF, 0]))
        assert sw in (0x9000, 0x6282)
        content += chunk
    return content


def test_the_eport_application_is_selected_by_its_aid(applet: EPortApplet) -> None:
    fci, sw = send(applet, "00A4040009F0535745504F525401")
    assert sw == 0x9000
    assert fci == bytes.fromhex("6F0B8409F0535745504F525401")


def test_an_unknown_aid_is_not_found(applet: EPortApplet) -> None:
    assert send(applet, "00A4040007A0000000031010")[1] == 0x6A82


def test_card_data_is_compact_json_of_the_holder_and_enterprise(
    applet: EPortApplet, card_data: CardData
) -> None:
    raw = read_whole(selected(applet), SELECT_DATA)
    assert json.loads(raw) == {
        "card_number": "8000012345678",
        "card_type": "operator",
        "operator_level": "declaration",
        "holder_name": "张三",
        "holder_id_number": "110101199003071234",
        "enterprise_uscc": "91310000MA1FL8XQ30",
        "enterprise_name": "上海某某贸易有限公司",
        "organisation_code": "MA1FL8XQ3",
        "customs_code": "3122261234",
    }
    assert b" " not in raw


def test_the_certificate_is_read_in_chunks_of_256(applet: EPortApplet, certificate: bytes) -> None:
    assert len(certificate) > 512
    assert read_whole(selected(applet), SELECT_CERT) == certificate


def test_select_ef_returns_its_size_in_the_fcp(applet: EPortApplet, certificate: bytes) -> None:
    fcp, sw = send(selected(applet), "00A40204020102")
    assert sw == 0x9000
    size = len(certificate).to_bytes(2, "big")
    assert fcp == bytes.fromhex("620B8002") + size + bytes.fromhex("82010183020102")


def test_reading_past_the_end(applet: EPortApplet, certificate: bytes) -> None:
    send(selected(applet), SELECT_CERT)
    size = len(certificate)
    last = size - 10
    tail, sw = send(applet, bytes([0, 0xB0, last >> 8, last & 0xFF, 0]))
    assert (tail, sw) == (certificate[last:], 0x6282)
    beyond = size + 1
    assert send(applet, bytes([0, 0xB0, beyond >> 8, beyond & 0xFF, 0]))[1] == 0x6B00


def test_files_are_not_found_before_the_application_is_selected(applet: EPortApplet) -> None:
    assert send(applet, SELECT_DATA)[1] == 0x6A82


def test_an_unknown_file_is_not_found(applet: EPortApplet) -> None:
    assert send(selected(applet), "00A4020C020103")[1] == 0x6A82


def test_read_binary_without_a_current_file(applet: EPortApplet) -> None:
    assert send(selected(applet), "00B0000000")[1] == 0x6986


def test_a_wrong_pin_counts_down_to_blocked_and_then_even_the_right_pin_is_refused(
    applet: EPortApplet,
) -> None:
    selected(applet)
    statuses = [verify(applet, WRONG_PIN) for _ in range(10)]
    assert statuses == [
        0x63C9,
        0x63C8,
        0x63C7,
        0x63C6,
        0x63C5,
        0x63C4,
        0x63C3,
        0x63C2,
        0x63C1,
        0x63C0,
    ]
    assert verify(applet, PIN) == 0x6983
    assert verify(applet, WRONG_PIN) == 0x6983
    assert send(applet, "002A9E9A0401020304")[1] == 0x6982


def test_the_right_pin_restores_the_counter(applet: EPortApplet) -> None:
    selected(applet)
    assert verify(applet, WRONG_PIN) == 0x63C9
    assert verify(applet, PIN) == 0x9000
    assert applet.pin_tries_left == 10
    assert verify(applet, WRONG_PIN) == 0x63C9


def test_the_retry_counter_is_configurable(
    card_data: CardData, certificate: bytes, signer: Any
) -> None:
    pin = PinRecord.new(PIN, salt=b"s" * 16, tries_max=3)
    applet = selected(EPortApplet({0x0101: card_data.encode()}, pin, signer))
    assert [verify(applet, WRONG_PIN) for _ in range(4)] == [0x63C2, 0x63C1, 0x63C0, 0x6983]


@pytest.mark.parametrize("tries", [0, 16])
def test_a_counter_that_63cx_cannot_report_is_refused(tries: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 15"):
        PinRecord.new(PIN, salt=b"s" * 16, tries_max=tries)


def test_verify_without_a_pin_reports_the_status(applet: EPortApplet) -> None:
    selected(applet)
    assert send(applet, "00200001")[1] == 0x63CA
    verify(applet, PIN)
    assert send(applet, "00200001")[1] == 0x9000


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("002000010731323334353637", 0x6700),  # seven digits
        ("0020000108313233343536374A", 0x6A80),  # a letter
        ("00200002083132333435363738", 0x6A88),  # another PIN reference
    ],
)
def test_malformed_verify_costs_no_try(applet: EPortApplet, apdu: str, sw: int) -> None:
    selected(applet)
    assert send(applet, apdu)[1] == sw
    assert applet.pin_tries_left == 10


def test_signing_needs_the_pin(applet: EPortApplet, signer: Any) -> None:
    selected(applet)
    assert send(applet, "002A9E9A0401020304" + "00")[1] == 0x6982
    assert signer.messages == []


def test_signing_after_the_pin_returns_the_signers_signature(
    applet: EPortApplet, signer: Any
) -> None:
    selected(applet)
    verify(applet, PIN)
    challenge = bytes(range(64))
    signature, sw = send(applet, b"\x00\x2a\x9e\x9a\x40" + challenge + b"\x00")
    assert sw == 0x9000
    assert signature == bytes.fromhex("3006020101020102")
    assert signer.messages == [challenge]


@pytest.mark.parametrize("size", [0, 65])
def test_a_challenge_outside_1_to_64_bytes_is_wrong_length(applet: EPortApplet, size: int) -> None:
    selected(applet)
    verify(applet, PIN)
    apdu = b"\x00\x2a\x9e\x9a" + (bytes([size]) + bytes(size) if size else b"") + b"\x00"
    assert send(applet, apdu)[1] == 0x6700


@pytest.mark.parametrize("clear", ["reset", "power_off", "select"])
def test_the_pin_status_does_not_survive_a_reset_or_a_new_selection(
    applet: EPortApplet, clear: str
) -> None:
    selected(applet)
    verify(applet, PIN)
    if clear == "select":
        send(applet, SELECT_EPORT)
    else:
        getattr(applet, clear)()
        selected(applet)
    assert send(applet, "002A9E9A0401020304")[1] == 0x6982


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("80A4040009F0535745504F525401", 0x6E00),  # proprietary class
        ("00CA9F7F00", 0x6D00),  # GET DATA is not implemented
        ("00C0000000", 0x6D00),  # no GET RESPONSE: responses fit in 256 bytes
        ("00A404", 0x6700),  # too short
        ("00A4040009F05357", 0x6700),  # Lc says more than there is
        ("00A40400000009F0535745504F525401", 0x6700),  # extended length
        ("00B0800000", 0x6A81),  # short EF identifier
    ],
)
def test_status_words_for_bad_commands(applet: EPortApplet, apdu: str, sw: int) -> None:
    selected(applet)
    assert send(applet, apdu)[1] == sw


def test_the_counter_is_persisted_before_the_answer(
    card_data: CardData, pin_record: PinRecord, signer: Any
) -> None:
    saved: list[int] = []
    applet = EPortApplet({}, pin_record, signer, persist_pin_tries=saved.append)
    selected(applet)
    assert verify(applet, WRONG_PIN) == 0x63C9
    assert verify(applet, PIN) == 0x9000
    assert saved == [9, 8, 10]


def test_a_counter_that_cannot_be_persisted_reveals_nothing(
    pin_record: PinRecord, signer: Any
) -> None:
    def full_disk(tries_left: int) -> None:
        raise OSError("no space left on device")

    applet = selected(EPortApplet({}, pin_record, signer, persist_pin_tries=full_disk))
    assert verify(applet, PIN) == 0x6581
    assert not applet.verified
    assert applet.pin_tries_left == 10


def test_the_eport_atr_offers_t1() -> None:
    assert bytes.fromhex("3B880145504F52542D5643ED") == EPORT_ATR


def test_a_foreign_card_knows_no_eport_aid() -> None:
    foreign = ForeignApplet()
    assert send(foreign, SELECT_EPORT)[1] == 0x6A82
    assert send(foreign, "00200001")[1] == 0x6D00
    assert send(foreign, "00A4040008A000000003101001")[1] == 0x9000
