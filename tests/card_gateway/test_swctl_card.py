"""`swctl card ...` as a user runs it: issue a card, insert it, list the readers, remove it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from singlewindow.cardcrypto import (
    CertificateError,
    CertificateProblem,
    card_certificate_fields,
    certificate_from_pem,
    crl_from_pem,
    verify_certificate,
)
from singlewindow.contracts import card_gateway
from singlewindow.swctl.platform import Platform
from singlewindow.virtual_card.card import load_card_file
from singlewindow.virtual_card.issuing import DevCA

from tests.card_gateway.stack import READERS, CardSlots, IssueCard
from tests.support.identifiers import make_uscc
from tests.support.platform import Bus, eventually, free_port
from tests.support.swctl import Swctl

pytestmark = pytest.mark.integration

HOLDER = ["--holder-name", "王五", "--holder-id", "11010519491231002X"]


@pytest.fixture
def swctl(card_platform: Platform, tmp_path: Path) -> Swctl:
    return Swctl(card_platform.config.nats_url, tmp_path / "swctl", card_platform.config.data_dir)


@pytest.fixture
def data_dir(card_platform: Platform) -> Iterator[list[str]]:
    """The platform's data directory; no card `swctl card insert` put in outlives the test."""
    yield ["--data-dir", str(card_platform.config.data_dir)]
    for inserted in card_platform.config.cards_dir.glob("reader-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            os.kill(int(json.loads(inserted.read_text())["pid"]), signal.SIGKILL)
        inserted.unlink()


def issue(swctl: Swctl, data_dir: list[str], *extra: str) -> dict[str, object]:
    issued = swctl(
        "card", "issue", "--type", "legal-person", "--uscc", make_uscc(),
        "--enterprise-name", "重庆某某贸易有限公司", *HOLDER, *data_dir, "--json", *extra,
    )  # fmt: skip
    assert issued.code == 0, issued.stderr
    document: dict[str, object] = issued.json()
    return document


def cards_in_readers(swctl: Swctl) -> dict[str, str | None]:
    """`swctl card readers`: the number of the card in each reader."""
    listed = swctl("card", "readers", "--json")
    assert listed.code == 0, listed.stderr
    return {reader["name"]: reader["card_number"] for reader in listed.json()["readers"]}


def test_issue_prints_the_card_and_a_certificate_the_ca_verifies(
    swctl: Swctl, data_dir: list[str]
) -> None:
    uscc = make_uscc()
    issued = swctl(
        "card", "issue", "--type", "operator", "--level", "declaration", "--uscc", uscc,
        "--enterprise-name", "重庆某某贸易有限公司", *HOLDER, "--customs-code", "5001234567",
        *data_dir, "--json",
    )  # fmt: skip
    assert issued.code == 0, issued.stderr
    card = issued.json()
    number = card["card_number"]
    assert re.fullmatch(r"EP[0-9]{14}", number)
    assert card["card"] == {
        "card_number": number,
        "card_type": "operator",
        "operator_level": "declaration",
        "holder_name": "王五",
        "holder_id_number": "11010519491231002X",
        "enterprise_uscc": uscc,
        "enterprise_name": "重庆某某贸易有限公司",
        "organisation_code": uscc[8:17],
        "customs_code": "5001234567",
    }
    assert card["pin_tries"] == 10
    card_file = Path(card["card_file"])
    assert card_file == Path(data_dir[1]) / "cards" / f"{number}.json"
    assert load_card_file(card_file).pin.matches("88888888")

    ca = swctl("card", "ca", *data_dir)
    assert ca.code == 0, ca.stderr
    assert ca.stdout.startswith("-----BEGIN CERTIFICATE-----")
    fields = verify_certificate(
        certificate_from_pem(card["certificate_pem"]), certificate_from_pem(ca.stdout)
    )
    assert (fields.identity.card_number, fields.identity.card_type) == (number, "operator")
    assert fields.identity.operator_level == "declaration"

    plain = swctl(
        "card", "issue", "--type", "legal-person", "--uscc", uscc, "--enterprise-name", "某公司",
        *HOLDER, "--pin", "12345678", "--tries", "5", *data_dir,
    )  # fmt: skip
    assert plain.code == 0, plain.stderr
    assert "card type:         legal-person" in plain.stdout
    assert "-----BEGIN CERTIFICATE-----" in plain.stdout
    assert "12345678" not in plain.stdout


def test_an_expired_card_and_a_revoked_one(
    swctl: Swctl, data_dir: list[str], dev_ca: DevCA, issue_card: IssueCard
) -> None:
    ca = dev_ca.certificate
    expired = issue(swctl, data_dir, "--expired")
    with pytest.raises(CertificateError) as refused:
        verify_certificate(certificate_from_pem(str(expired["certificate_pem"])), ca)
    assert refused.value.problem == CertificateProblem.EXPIRED

    card = issue_card()
    certificate = card.card.certificate
    revoked = swctl("card", "revoke", card.number, *data_dir, "--json")
    assert revoked.code == 0, revoked.stderr
    assert (
        revoked.json()["serial_number"] == f"{card_certificate_fields(certificate).serial_number:x}"
    )
    crl = crl_from_pem(Path(revoked.json()["crl_file"]).read_text())
    with pytest.raises(CertificateError) as refused:
        verify_certificate(certificate, ca, crl_der=crl)
    assert refused.value.problem == CertificateProblem.REVOKED
    assert swctl("card", "revoke", "EP00000000000000", *data_dir).code == 1


@pytest.mark.parametrize(
    ("arguments", "code", "complaint"),
    [
        (["--type", "legal-person", "--uscc", "91500000MA5U7XXX1X"], 1, "invalid USCC"),
        (["--type", "legal-person", "--pin", "1234"], 1, "the PIN must be exactly 8 digits"),
        (["--type", "legal-person", "--tries", "16"], 1, "PIN tries must be between 1 and 15"),
        (["--type", "operator"], 2, "an operator card needs --level"),
        (["--type", "legal-person", "--level", "entry"], 2, "--level is for operator cards"),
    ],
)
def test_a_card_that_cannot_be_issued_is_refused(
    swctl: Swctl, data_dir: list[str], arguments: list[str], code: int, complaint: str
) -> None:
    if "--uscc" not in arguments:
        arguments = [*arguments, "--uscc", make_uscc()]
    refused = swctl(
        "card", "issue", *arguments, "--enterprise-name", "某公司", *HOLDER, *data_dir, "--json"
    )
    assert refused.code == code
    assert complaint in refused.stderr
    if code == 1:
        assert refused.json()["error"]["code"] == "invalid"


async def test_insert_readers_replace_and_remove(
    swctl: Swctl,
    data_dir: list[str],
    slots: CardSlots,
    card_bus: Bus,
    dev_ca: DevCA,
    card_platform: Platform,
    issue_card: IssueCard,
) -> None:
    first = dev_ca.issue_card(
        card_platform.config.cards_dir,
        card_type="legal-person",
        uscc=make_uscc(),
        enterprise_name="某公司",
        holder_name="王五",
        holder_id_number="11010519491231002X",
    )
    second = issue_card()  # a card file somewhere else
    inserted = swctl("card", "insert", first.number, *data_dir, "--json")
    assert inserted.code == 0, inserted.stderr
    assert inserted.json()["card_number"] == first.number
    await slots.wait_for(READERS[0], present=True)
    readers = swctl("card", "readers", "--json")
    assert readers.code == 0, readers.stderr
    assert [(r["name"], r["card_present"]) for r in readers.json()["readers"]] == [
        (READERS[0], True),
        (READERS[1], False),
    ]
    assert cards_in_readers(swctl) == {READERS[0]: first.number, READERS[1]: None}
    in_reader = readers.json()["readers"][0]
    assert (in_reader["card_type"], in_reader["operator_level"]) == ("legal-person", None)
    assert in_reader["enterprise_uscc"] == first.card.data.enterprise_uscc
    assert in_reader["enterprise_name"] == "某公司"
    plain = swctl("card", "readers")
    assert f"card_number: {first.number}" in plain.stdout
    assert f"enterprise_uscc: {first.card.data.enterprise_uscc}" in plain.stdout
    view = await card_bus.call(card_gateway.READ_CARD, {})
    assert view.card.card_number == first.number

    replaced = swctl("card", "insert", str(second.path), *data_dir)
    assert replaced.code == 0, replaced.stderr

    async def second_card_in() -> bool | None:
        try:
            view = await card_bus.call(card_gateway.READ_CARD, {})
        except Exception:
            return None
        return True if view.card.card_number == second.number else None

    await eventually(second_card_in)
    assert cards_in_readers(swctl) == {READERS[0]: second.number, READERS[1]: None}

    removed = swctl("card", "remove", *data_dir)
    assert removed.code == 0, removed.stderr
    assert f"removed {second.number}" in removed.stdout
    await slots.wait_for(READERS[0], present=False)
    again = swctl("card", "remove", *data_dir)
    assert again.code == 0
    assert "no card was in the reader" in again.stdout


def test_insert_without_a_card_or_a_reader(
    swctl: Swctl, data_dir: list[str], issue_card: IssueCard
) -> None:
    unknown = swctl("card", "insert", "EP00000000000000", *data_dir)
    assert unknown.code == 1
    assert "no card file" in unknown.stderr
    nowhere = swctl(
        "card", "insert", str(issue_card().path), *data_dir,
        "--reader-port", str(free_port()), "--timeout", "1",
    )  # fmt: skip
    assert nowhere.code == 1
    assert "did not go into the reader" in nowhere.stderr
