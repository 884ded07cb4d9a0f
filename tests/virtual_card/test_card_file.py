from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from singlewindow.virtual_card.applet import PinRecord, Signer
from singlewindow.virtual_card.card import (
    CardData,
    CardFile,
    CardFileError,
    load_card_file,
    save_card_file,
)
from singlewindow.virtual_card.vpcd import eport_applet

SELECT_EPORT = bytes.fromhex("00A4040009F0535745504F525401")


def verify(applet: Any, pin: str) -> int:
    return int.from_bytes(applet.process(b"\x00\x20\x00\x01\x08" + pin.encode())[-2:], "big")


@pytest.fixture
def card_path(tmp_path: Path, card_data: CardData, certificate: bytes) -> Path:
    path = tmp_path / "card.json"
    pin = PinRecord.new("88888888", salt=b"\x02" * 16)
    save_card_file(path, CardFile(card_data, certificate, pin, {"type": "none"}))
    return path


def test_a_card_file_round_trips(card_path: Path, card_data: CardData, certificate: bytes) -> None:
    card = load_card_file(card_path)
    assert card.data == card_data
    assert card.certificate == certificate
    assert card.pin.matches("88888888")
    assert card.pin.tries_left == 10


def test_the_card_file_holds_no_pin_and_only_its_owner_reads_it(card_path: Path) -> None:
    assert "88888888" not in card_path.read_text()
    assert stat.S_IMODE(card_path.stat().st_mode) == 0o600


def test_the_pin_counter_survives_a_restart_of_the_card(card_path: Path, signer: Signer) -> None:
    def factory(key: Mapping[str, Any]) -> Signer:
        return signer

    first = eport_applet(card_path, factory)
    first.process(SELECT_EPORT)
    assert verify(first, "00000000") == 0x63C9
    assert load_card_file(card_path).pin.tries_left == 9

    second = eport_applet(card_path, factory)
    second.process(SELECT_EPORT)
    assert verify(second, "00000000") == 0x63C8
    assert verify(second, "88888888") == 0x9000
    assert load_card_file(card_path).pin.tries_left == 10


def test_an_operator_card_needs_a_level(card_data: CardData) -> None:
    with pytest.raises(ValueError, match="operator level"):
        CardData(**{**card_data.__dict__, "operator_level": None})


def test_a_legal_person_card_has_no_level(card_data: CardData) -> None:
    with pytest.raises(ValueError, match="no operator level"):
        CardData(**{**card_data.__dict__, "card_type": "legal-person"})


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", json.dumps({"format": 2}), json.dumps({"format": 1, "card": {}})],
)
def test_a_broken_card_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "card.json"
    path.write_text(content)
    with pytest.raises(CardFileError):
        load_card_file(path)
