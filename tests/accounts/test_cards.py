"""What the accounts service checks of a card, without I/O: card data against its certificate,
and the trusted CA and CRL files as they change."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from singlewindow.accounts.domain import card_data_mismatch, card_data_problem, division_of
from singlewindow.accounts.trust import TrustStore
from singlewindow.cardcrypto import (
    CardIdentity,
    RevokedCertificate,
    certificate_from_pem,
    crl_from_pem,
)
from singlewindow.contracts.card_gateway import CardData
from singlewindow.contracts.errors import DomainError, ErrorCode

from tests.support.cards import CardAuthority

IDENTITY = CardIdentity(
    holder_name="周七",
    enterprise_name="重庆某某贸易有限公司",
    uscc="91500000MA5U7X1C69",
    card_number="8800000012345678",
    card_type="operator",
    operator_level="entry",
)


def card(**changes: object) -> CardData:
    data = {
        "card_number": "8800000012345678",
        "card_type": "operator",
        "operator_level": "entry",
        "holder_name": "周七",
        "holder_id_number": "11010519491231002X",
        "enterprise_uscc": "91500000MA5U7X1C69",
        "enterprise_name": "重庆某某贸易有限公司",
        "organisation_code": "MA5U7X1C6",
        "customs_code": None,
    }
    return CardData.model_validate(data | changes)


def test_card_data_that_says_what_its_certificate_says_passes() -> None:
    assert card_data_mismatch(card(), IDENTITY) is None


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"holder_name": "赵六"}, "holder name"),
        ({"enterprise_uscc": "91500000MA5U7X1D6X"}, "enterprise USCC"),
        ({"enterprise_name": "另一家公司"}, "enterprise name"),
        ({"card_number": "8800000000000001"}, "card number"),
        ({"card_type": "legal-person", "operator_level": None}, "card type"),
        ({"operator_level": "declaration"}, "operator level"),
    ],
)
def test_each_difference_from_the_certificate_is_named(
    change: dict[str, object], what: str
) -> None:
    assert card_data_mismatch(card(**change), IDENTITY) == (
        f"card data does not match the card's certificate: the {what} differs"
    )


def test_a_certificate_without_a_card_type_leaves_nothing_to_the_data_file() -> None:
    untyped = CardIdentity(
        holder_name="周七",
        enterprise_name="重庆某某贸易有限公司",
        uscc="91500000MA5U7X1C69",
        card_number="8800000012345678",
    )
    assert card_data_mismatch(card(operator_level="declaration"), untyped) == (
        "card data does not match the card's certificate: the card type differs"
    )


def test_the_division_is_read_from_the_uscc() -> None:
    assert division_of("91500000MA5U7X1C69") == "500000"


def test_no_trusted_ca_refuses_card_requests_plainly() -> None:
    with pytest.raises(DomainError) as raised:
        TrustStore(None, None).current()
    assert raised.value.code is ErrorCode.CARD_REFUSED
    assert "no trusted card CA is configured" in raised.value.message


def test_the_crl_is_read_again_when_its_file_changes(tmp_path: Path) -> None:
    authority = CardAuthority(tmp_path)
    store = TrustStore(authority.anchor_path, authority.crl_path)
    first = store.current()
    assert first.anchor == certificate_from_pem(authority.anchor_path.read_text())
    assert first.crl == crl_from_pem(authority.crl_path.read_text())
    assert store.current() is not first  # a fresh view, with the cached bytes
    assert store.current().crl is first.crl
    authority.revoked.append(RevokedCertificate(12345, datetime.now(UTC)))
    authority.publish_crl()
    assert store.current().crl == crl_from_pem(authority.crl_path.read_text()) != first.crl


def test_an_unreadable_trust_file_refuses_card_requests(tmp_path: Path) -> None:
    authority = CardAuthority(tmp_path)
    store = TrustStore(authority.anchor_path, authority.crl_path)
    store.current()
    os.remove(authority.crl_path)
    with pytest.raises(DomainError) as missing:
        store.current()
    assert missing.value.message == (
        "card requests are not available: the platform cannot read its card revocation list"
    )
    authority.crl_path.write_text("-----BEGIN X509 CRL-----\nnot base64!\n-----END X509 CRL-----\n")
    with pytest.raises(DomainError):
        store.current()


def test_card_data_the_platform_cannot_store_is_named() -> None:
    assert card_data_problem(card()) is None
    assert card_data_problem(card(enterprise_uscc="91500000MA5U7X1C68")) == (
        "the card's enterprise USCC is not a valid unified social credit code"
    )
    assert card_data_problem(card(card_number="8" * 41)) == (
        "the card's card number is longer than the platform accepts (40 characters)"
    )
