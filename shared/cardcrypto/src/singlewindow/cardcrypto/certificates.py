"""Issuing SM2 certificates and CRLs (the development CA) and reading card certificates.

Card certificate subject, from most to least significant RDN:

    serialNumber (2.5.4.5)  the enterprise's USCC, where the CA/Browser Forum EV guidelines put
                            an organisation's registration number
    C  (2.5.4.6)            CN
    O  (2.5.4.10)           the enterprise name
    OU (2.5.4.11)           the card number
    title (2.5.4.12)        the card type, with the operator level for an operator card:
                            ``legal-person``, ``operator:entry`` or ``operator:declaration``
                            (absent from certificates issued without a card type, which
                            `verify_certificate` refuses)
    CN (2.5.4.3)            the holder's name

Names are UTF8String except serialNumber and C, which are PrintableString. The card type and level
are in the signed certificate so that editing a card's data file cannot raise an operator's level.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from asn1crypto import crl, x509  # type: ignore[import-untyped]
from singlewindow.cardcrypto._pem import pem_decode, pem_encode
from singlewindow.cardcrypto._x509 import (
    certificate_public_key,
    encode_time,
    key_identifier,
    load_certificate,
    signed_by,
    sm2_with_sm3,
    validity,
)
from singlewindow.cardcrypto.errors import CertificateError, CertificateProblem
from singlewindow.cardcrypto.sm2 import SM2PrivateKey, SM2PublicKey, public_key_info, sm3

CA_VALIDITY: Final = timedelta(days=3650)
CARD_VALIDITY: Final = timedelta(days=730)
_CLOCK_SKEW: Final = timedelta(minutes=5)

_COMMON_NAME: Final = "2.5.4.3"
_SERIAL_NUMBER: Final = "2.5.4.5"
_ORGANIZATION: Final = "2.5.4.10"
_ORGANIZATIONAL_UNIT: Final = "2.5.4.11"
_TITLE: Final = "2.5.4.12"
CARD_TYPES: Final = ("legal-person", "operator")
OPERATOR_LEVELS: Final = ("entry", "declaration")
_PRINTABLE: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)


@dataclass(frozen=True)
class CardIdentity:
    """Who a card belongs to, as its certificate subject states it."""

    holder_name: str
    enterprise_name: str
    uscc: str
    card_number: str
    card_type: str | None = None
    """``legal-person`` or ``operator``; None for a certificate that does not say."""
    operator_level: str | None = None
    """``entry`` or ``declaration``, for an operator card only (and required for one)."""

    def __post_init__(self) -> None:
        for name in ("holder_name", "enterprise_name", "uscc", "card_number"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
        if not set(self.uscc) <= _PRINTABLE:
            raise ValueError("uscc must be printable ASCII")
        if self.card_type is not None and self.card_type not in CARD_TYPES:
            raise ValueError(f"unknown card type {self.card_type!r}")
        if self.card_type == "operator":
            if self.operator_level not in OPERATOR_LEVELS:
                raise ValueError("an operator card needs an operator level (entry or declaration)")
        elif self.operator_level is not None:
            raise ValueError("only an operator card has an operator level")

    @property
    def title(self) -> str | None:
        """The subject title attribute that states the card type (and operator level)."""
        if self.card_type is None:
            return None
        if self.operator_level is None:
            return self.card_type
        return f"{self.card_type}:{self.operator_level}"

    @staticmethod
    def parse_title(title: str) -> tuple[str, str | None]:
        """The card type and operator level a title attribute states; ValueError if neither."""
        card_type, _, level = title.partition(":")
        if card_type not in CARD_TYPES or (level and level not in OPERATOR_LEVELS):
            raise ValueError(f"not a card type: {title!r}")
        return card_type, level or None


@dataclass(frozen=True)
class RevokedCertificate:
    """A CRL entry: the revoked certificate's serial number and when it was revoked."""

    serial_number: int
    revoked_at: datetime


@dataclass(frozen=True)
class CardCertificateFields:
    """What the platform reads from a card certificate."""

    identity: CardIdentity
    serial_number: int
    not_before: datetime
    not_after: datetime
    fingerprint: str
    """SM3 of the certificate DER, lowercase hex: binds a session to this very certificate."""


def random_serial_number() -> int:
    """A positive certificate serial of 127 bits, 126 of them from the CSPRNG (16 DER octets)."""
    return (1 << 126) | secrets.randbits(126)


def issue_ca_certificate(
    ca_key: SM2PrivateKey,
    *,
    common_name: str,
    organization: str,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial_number: int | None = None,
) -> bytes:
    """A self-signed SM2 CA certificate (CA:TRUE, pathlen 0, keyCertSign and cRLSign), DER."""
    start = _start(not_before)
    name = x509.Name.build(
        {"country_name": "CN", "organization_name": organization, "common_name": common_name}
    )
    ski = key_identifier(ca_key.public_key)
    extensions = [
        _extension("basic_constraints", {"ca": True, "path_len_constraint": 0}, critical=True),
        _extension("key_usage", {"key_cert_sign", "crl_sign"}, critical=True),
        _extension("key_identifier", ski),
    ]
    return _sign_certificate(
        ca_key,
        serial_number=serial_number,
        issuer=name,
        subject=name,
        subject_key=ca_key.public_key,
        not_before=start,
        not_after=not_after or start + CA_VALIDITY,
        extensions=extensions,
    )


def issue_card_certificate(
    ca_key: SM2PrivateKey,
    ca_certificate: bytes,
    card_key: SM2PublicKey,
    identity: CardIdentity,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial_number: int | None = None,
) -> bytes:
    """An end-entity card certificate (keyUsage digitalSignature) signed by the CA, DER."""
    ca = _issuer(ca_key, ca_certificate)
    start = _start(not_before)
    attributes = {
        "serial_number": identity.uscc,
        "country_name": "CN",
        "organization_name": identity.enterprise_name,
        "organizational_unit_name": identity.card_number,
        "common_name": identity.holder_name,
    }
    if identity.title is not None:
        attributes["title"] = identity.title
    subject = x509.Name.build(attributes)
    extensions = [
        _extension("basic_constraints", {"ca": False}, critical=True),
        _extension("key_usage", {"digital_signature"}, critical=True),
        _extension("key_identifier", key_identifier(card_key)),
        _extension("authority_key_identifier", {"key_identifier": ca.key_identifier}),
    ]
    return _sign_certificate(
        ca_key,
        serial_number=serial_number,
        issuer=ca.subject,
        subject=subject,
        subject_key=card_key,
        not_before=start,
        not_after=not_after or start + CARD_VALIDITY,
        extensions=extensions,
    )


def issue_crl(
    ca_key: SM2PrivateKey,
    ca_certificate: bytes,
    revoked: Iterable[RevokedCertificate],
    *,
    crl_number: int,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
) -> bytes:
    """A v2 CRL signed SM2-with-SM3 by the CA, listing the revoked serials, DER."""
    ca = _issuer(ca_key, ca_certificate)
    start = _start(this_update)
    tbs: dict[str, Any] = {
        "version": "v2",
        "signature": sm2_with_sm3(),
        "issuer": ca.subject,
        "this_update": encode_time(start),
        "next_update": encode_time(next_update or start + timedelta(days=7)),
        "crl_extensions": [
            _extension("crl_number", crl_number),
            _extension("authority_key_identifier", {"key_identifier": ca.key_identifier}),
        ],
    }
    entries = [
        {"user_certificate": entry.serial_number, "revocation_date": encode_time(entry.revoked_at)}
        for entry in revoked
    ]
    # RFC 5280 5.1.2.6: an empty list is omitted, not encoded as an empty SEQUENCE.
    if entries:
        tbs["revoked_certificates"] = entries
    tbs_cert_list = crl.TbsCertList(tbs)
    certificate_list = crl.CertificateList(
        {
            "tbs_cert_list": tbs_cert_list,
            "signature_algorithm": sm2_with_sm3(),
            "signature": signed_by(ca_key, tbs_cert_list),
        }
    )
    return bytes(certificate_list.dump())


def card_certificate_fields(cert_der: bytes) -> CardCertificateFields:
    """The holder, enterprise, USCC, card number, card type, serial and validity of a card
    certificate."""
    certificate = load_certificate(cert_der)
    attributes: dict[str, list[str]] = {}
    for rdn in certificate.subject.chosen:
        for type_and_value in rdn:
            value = type_and_value["value"].native
            if isinstance(value, str):
                attributes.setdefault(type_and_value["type"].dotted, []).append(value)

    def single(oid: str) -> str:
        values = attributes.get(oid, [])
        if len(values) != 1:
            raise CertificateError(CertificateProblem.NOT_A_CARD_CERTIFICATE)
        return values[0]

    try:
        card_type, operator_level = (
            CardIdentity.parse_title(single(_TITLE)) if _TITLE in attributes else (None, None)
        )
        identity = CardIdentity(
            holder_name=single(_COMMON_NAME),
            enterprise_name=single(_ORGANIZATION),
            uscc=single(_SERIAL_NUMBER),
            card_number=single(_ORGANIZATIONAL_UNIT),
            card_type=card_type,
            operator_level=operator_level,
        )
    except ValueError as exc:
        raise CertificateError(CertificateProblem.NOT_A_CARD_CERTIFICATE) from exc
    not_before, not_after = validity(certificate)
    return CardCertificateFields(
        identity=identity,
        serial_number=int(certificate.serial_number),
        not_before=not_before,
        not_after=not_after,
        fingerprint=sm3(cert_der).hex(),
    )


def certificate_to_pem(cert_der: bytes) -> str:
    """A PEM 'CERTIFICATE' block."""
    return pem_encode("CERTIFICATE", cert_der)


def certificate_from_pem(pem: str | bytes) -> bytes:
    """The DER of the first PEM 'CERTIFICATE' block."""
    return pem_decode(pem, "CERTIFICATE")


def crl_to_pem(crl_der: bytes) -> str:
    """A PEM 'X509 CRL' block."""
    return pem_encode("X509 CRL", crl_der)


def crl_from_pem(pem: str | bytes) -> bytes:
    """The DER of the first PEM 'X509 CRL' block."""
    return pem_decode(pem, "X509 CRL")


@dataclass(frozen=True)
class _Issuer:
    subject: x509.Name
    key_identifier: bytes


def _issuer(ca_key: SM2PrivateKey, ca_certificate: bytes) -> _Issuer:
    certificate = load_certificate(ca_certificate)
    if certificate_public_key(certificate) != ca_key.public_key:
        raise ValueError("CA key does not match the CA certificate")
    ski = certificate.key_identifier
    return _Issuer(
        subject=certificate.subject,
        key_identifier=bytes(ski) if ski is not None else key_identifier(ca_key.public_key),
    )


def _start(moment: datetime | None) -> datetime:
    if moment is not None:
        return moment
    # Backdated so that a verifier whose clock lags the CA's still accepts a fresh certificate.
    return datetime.now(UTC).replace(microsecond=0) - _CLOCK_SKEW


def _extension(name: str, value: object, *, critical: bool = False) -> dict[str, object]:
    return {"extn_id": name, "critical": critical, "extn_value": value}


def _sign_certificate(
    issuer_key: SM2PrivateKey,
    *,
    serial_number: int | None,
    issuer: x509.Name,
    subject: x509.Name,
    subject_key: SM2PublicKey,
    not_before: datetime,
    not_after: datetime,
    extensions: list[dict[str, object]],
) -> bytes:
    if not_after <= not_before:
        raise ValueError("not_after must be later than not_before")
    serial = serial_number if serial_number is not None else random_serial_number()
    if serial <= 0:
        raise ValueError("serial number must be positive")
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": sm2_with_sm3(),
            "issuer": issuer,
            "validity": {
                "not_before": encode_time(not_before),
                "not_after": encode_time(not_after),
            },
            "subject": subject,
            "subject_public_key_info": public_key_info(subject_key),
            "extensions": extensions,
        }
    )
    certificate = x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": sm2_with_sm3(),
            "signature_value": signed_by(issuer_key, tbs),
        }
    )
    return bytes(certificate.dump())
