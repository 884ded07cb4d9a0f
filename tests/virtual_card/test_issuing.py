"""The development CA: created once, issues SM2 cards whose certificates say what the card is,
revokes them into its CRL; the card's key signs as the platform (and OpenSSL) expect."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from singlewindow.cardcrypto import (
    CardIdentity,
    CertificateError,
    CertificateProblem,
    SM2PrivateKey,
    card_certificate_fields,
    certificate_to_pem,
    crl_from_pem,
    issue_card_certificate,
    verify_certificate,
    verify_challenge_signature,
)
from singlewindow.virtual_card.card import load_card_file
from singlewindow.virtual_card.issuing import DevCA, IssuedCard, IssuingError
from singlewindow.virtual_card.signer import from_key, key_record

from tests.support.identifiers import make_uscc

SM2_ID = "distid:1234567812345678"
ID_NUMBER = "11010519491231002X"


@pytest.fixture
def ca(tmp_path: Path) -> DevCA:
    return DevCA.open(tmp_path / "dev-ca")


def issue(ca: DevCA, directory: Path, **overrides: object) -> IssuedCard:
    fields: dict[str, object] = {
        "card_type": "legal-person",
        "uscc": make_uscc(),
        "enterprise_name": "重庆某某贸易有限公司",
        "holder_name": "张三",
        "holder_id_number": ID_NUMBER,
    }
    return ca.issue_card(directory, **(fields | overrides))  # type: ignore[arg-type]


def crl_of(ca: DevCA) -> bytes:
    return crl_from_pem(ca.crl_path.read_text())


def test_the_ca_is_created_once_with_its_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = DevCA.open(tmp_path / "dev-ca")
    assert sorted(p.name for p in (tmp_path / "dev-ca").iterdir()) == [
        ".lock",
        "ca.json",
        "ca.key.pem",
        "ca.pem",
        "crl.pem",
    ]
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    assert first.certificate_pem == first.certificate_path.read_text()
    again = DevCA.open(tmp_path / "dev-ca")
    assert again.certificate == first.certificate


def test_a_legal_person_card_holds_what_was_asked_and_the_pin(ca: DevCA, tmp_path: Path) -> None:
    uscc = make_uscc()
    card = issue(ca, tmp_path / "cards", uscc=uscc, customs_code="5001234567")
    assert re.fullmatch(r"EP[0-9]{14}", card.number)
    assert card.path == tmp_path / "cards" / f"{card.number}.json"
    assert stat.S_IMODE(card.path.stat().st_mode) == 0o600
    stored = load_card_file(card.path)
    assert stored == card.card
    data = stored.data
    assert (data.card_type, data.operator_level) == ("legal-person", None)
    assert (data.holder_name, data.holder_id_number) == ("张三", ID_NUMBER)
    assert (data.enterprise_uscc, data.organisation_code) == (uscc, uscc[8:17])
    assert data.customs_code == "5001234567"
    assert stored.pin.matches("88888888")
    assert (stored.pin.tries_max, stored.pin.tries_left) == (10, 10)
    assert "88888888" not in card.path.read_text()


def test_the_certificate_states_the_card_and_verifies_against_the_ca(
    ca: DevCA, tmp_path: Path
) -> None:
    card = issue(
        ca, tmp_path, card_type="operator", operator_level="entry", pin="24681357", tries=3
    )
    fields = verify_certificate(card.card.certificate, ca.certificate, crl_der=crl_of(ca))
    assert fields.identity == CardIdentity(
        holder_name="张三",
        enterprise_name="重庆某某贸易有限公司",
        uscc=card.card.data.enterprise_uscc,
        card_number=card.number,
        card_type="operator",
        operator_level="entry",
    )
    assert fields.serial_number == card.serial_number
    assert card.card.pin.matches("24681357")
    assert card.card.pin.tries_max == 3
    assert ca.issued()[card.number] == card.serial_number


def test_the_card_key_signs_what_the_certificate_verifies(ca: DevCA, tmp_path: Path) -> None:
    card = issue(ca, tmp_path)
    signer = from_key(card.card.key)
    challenge = os.urandom(32)
    signature = signer.sign(challenge)
    assert verify_challenge_signature(card.card.certificate, challenge, signature)
    assert not verify_challenge_signature(card.card.certificate, challenge[::-1], signature)


def test_openssl_verifies_the_card_certificate_and_the_card_signature(
    ca: DevCA, tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    assert openssl is not None
    card = issue(ca, tmp_path / "cards", card_type="operator", operator_level="declaration")
    (tmp_path / "card.pem").write_text(card.certificate_pem)
    shutil.copy(ca.certificate_path, tmp_path / "ca.pem")
    challenge = os.urandom(32)
    (tmp_path / "challenge").write_bytes(challenge)
    (tmp_path / "signature").write_bytes(from_key(card.card.key).sign(challenge))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [openssl, *args], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
        )

    verified = run("verify", "-vfyopt", SM2_ID, "-x509_strict", "-CAfile", "ca.pem", "card.pem")
    assert verified.stdout.strip() == "card.pem: OK", verified.stderr
    subject = run(
        "x509", "-in", "card.pem", "-noout", "-subject", "-nameopt", "utf8,sep_comma_plus"
    )
    assert f"OU={card.number},title=operator:declaration,CN=张三" in subject.stdout
    assert run("x509", "-in", "card.pem", "-noout", "-pubkey", "-out", "pub.pem").returncode == 0
    checked = run(
        "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "challenge",
        "-sigfile", "signature", "-digest", "sm3", "-pkeyopt", SM2_ID,
    )  # fmt: skip
    assert "Signature Verified Successfully" in checked.stdout, checked.stderr


def test_an_expired_card_is_refused_by_the_platform(ca: DevCA, tmp_path: Path) -> None:
    card = issue(ca, tmp_path, expired=True)
    assert card.not_after < datetime.now(UTC)
    with pytest.raises(CertificateError) as refused:
        verify_certificate(card.card.certificate, ca.certificate, crl_der=crl_of(ca))
    assert refused.value.problem == CertificateProblem.EXPIRED


def test_a_card_issued_without_a_certified_type_is_refused_by_the_platform(
    ca: DevCA, tmp_path: Path
) -> None:
    # The data file says operator; the certificate says nothing of the type.
    card = issue(
        ca, tmp_path, card_type="operator", operator_level="entry", certify_card_type=False
    )
    assert card.card.data.card_type == "operator"
    assert card_certificate_fields(card.card.certificate).identity.card_type is None
    with pytest.raises(CertificateError) as refused:
        verify_certificate(card.card.certificate, ca.certificate, crl_der=crl_of(ca))
    assert refused.value.problem == CertificateProblem.NO_CARD_TYPE
    assert str(refused.value) == "certificate does not state the card type"


def test_revoking_by_card_number_or_serial_puts_the_card_on_the_crl(
    ca: DevCA, tmp_path: Path
) -> None:
    first, second, kept = issue(ca, tmp_path), issue(ca, tmp_path), issue(ca, tmp_path)
    revoked = ca.revoke(first.number)
    assert (revoked.card_number, revoked.serial_number) == (first.number, first.serial_number)
    assert ca.revoke(f"{second.serial_number:X}").card_number == second.number
    assert ca.revoke(first.number) == revoked  # once is enough
    for card in (first, second):
        with pytest.raises(CertificateError) as refused:
            verify_certificate(card.card.certificate, ca.certificate, crl_der=crl_of(ca))
        assert refused.value.problem == CertificateProblem.REVOKED
    verify_certificate(kept.card.certificate, ca.certificate, crl_der=crl_of(ca))
    assert [r.card_number for r in ca.revoked()] == [first.number, second.number]
    with pytest.raises(IssuingError, match="issued no card"):
        ca.revoke("EP00000000000000")


def test_a_crl_close_to_its_next_update_is_signed_again_on_open(ca: DevCA, tmp_path: Path) -> None:
    register_path = ca.directory / "ca.json"
    register = json.loads(register_path.read_text())
    register["crl_next_update"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    register_path.write_text(json.dumps(register))
    before = ca.crl_path.read_text()
    DevCA.open(ca.directory)
    assert ca.crl_path.read_text() != before
    refreshed = json.loads(register_path.read_text())
    assert datetime.fromisoformat(refreshed["crl_next_update"]) > datetime.now(UTC) + timedelta(
        days=20
    )


def test_card_numbers_are_unique(ca: DevCA, tmp_path: Path) -> None:
    numbers = {issue(ca, tmp_path).number for _ in range(20)}
    assert len(numbers) == 20


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"uscc": "91500000MA5U7XXX1X"}, "invalid USCC"),
        ({"holder_id_number": "110105194912310021"}, "invalid holder ID number"),
        ({"card_type": "operator"}, "an operator card needs a level"),
        ({"operator_level": "entry"}, "a legal-person card has no operator level"),
        ({"card_type": "admin"}, "the card type must be legal-person or operator"),
        ({"pin": "1234567"}, "the PIN must be exactly 8 digits"),
        ({"pin": "1234567a"}, "the PIN must be exactly 8 digits"),
        ({"tries": 0}, "PIN tries must be between 1 and 15"),
        ({"tries": 16}, "PIN tries must be between 1 and 15"),
        ({"customs_code": "12345"}, "the customs code must be exactly 10 digits or letters"),
        ({"holder_name": "  "}, "the holder name must not be empty"),
        ({"enterprise_name": "x" * 101}, "the enterprise name must be at most 100 characters"),
    ],
)
def test_a_card_that_breaks_a_rule_is_not_issued(
    ca: DevCA, tmp_path: Path, overrides: dict[str, object], complaint: str
) -> None:
    with pytest.raises(IssuingError, match=complaint):
        issue(ca, tmp_path / "cards", **overrides)
    assert not (tmp_path / "cards").exists() or not list((tmp_path / "cards").iterdir())
    assert ca.issued() == {}


def test_a_forged_data_file_does_not_change_what_the_certificate_says(
    ca: DevCA, tmp_path: Path
) -> None:
    card = issue(ca, tmp_path, card_type="operator", operator_level="entry")
    raw = json.loads(card.path.read_text())
    raw["card"]["operator_level"] = "declaration"
    card.path.write_text(json.dumps(raw))
    forged = load_card_file(card.path)
    assert forged.data.operator_level == "declaration"
    assert card_certificate_fields(forged.certificate).identity.operator_level == "entry"


@pytest.mark.parametrize(
    ("card_type", "level", "title"),
    [("legal-person", None, "legal-person"), ("operator", "entry", "operator:entry")],
)
def test_the_card_type_travels_in_the_subject_title(
    ca: DevCA, card_type: str, level: str | None, title: str
) -> None:
    identity = CardIdentity("张三", "某公司", make_uscc(), "EP12345678901234", card_type, level)
    assert identity.title == title
    key = SM2PrivateKey.generate()
    certificate = issue_card_certificate(
        SM2PrivateKey.from_pem(ca.key_path.read_text()), ca.certificate, key.public_key, identity
    )
    assert card_certificate_fields(certificate).identity == identity
    untyped = CardIdentity("张三", "某公司", make_uscc(), "EP12345678901234")
    assert untyped.title is None
    plain = issue_card_certificate(
        SM2PrivateKey.from_pem(ca.key_path.read_text()), ca.certificate, key.public_key, untyped
    )
    assert card_certificate_fields(plain).identity == untyped
    assert "title" not in certificate_to_pem(plain)


@pytest.mark.parametrize(
    ("card_type", "level"),
    [("operator", None), ("legal-person", "entry"), ("admin", None), (None, "entry")],
)
def test_an_identity_with_a_wrong_card_type_is_refused(
    card_type: str | None, level: str | None
) -> None:
    with pytest.raises(ValueError, match=r"card type|operator level"):
        CardIdentity("张三", "某公司", make_uscc(), "EP12345678901234", card_type, level)


def test_a_key_record_round_trips(tmp_path: Path) -> None:
    key = SM2PrivateKey.generate()
    record = key_record(key)
    assert record["type"] == "sm2"
    message = b"challenge bytes"
    assert key.public_key.verify(message, from_key(record).sign(message))
