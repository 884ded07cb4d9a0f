"""What the accounts service checks before it accepts a card login."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from asn1crypto import x509  # type: ignore[import-untyped]
from singlewindow.cardcrypto._x509 import (
    certificate_public_key,
    load_certificate,
    load_crl,
    signature_is_valid,
    validity,
)
from singlewindow.cardcrypto.certificates import (
    CardCertificateFields,
    card_certificate_fields,
)
from singlewindow.cardcrypto.errors import CertificateError, CertificateProblem
from singlewindow.cardcrypto.sm2 import SM2PublicKey

_UNDERSTOOD_CARD_EXTENSIONS: Final = frozenset({"basic_constraints", "key_usage"})
_UNDERSTOOD_CRL_EXTENSIONS: Final = frozenset({"crl_number", "authority_key_identifier"})


def verify_certificate(
    cert_der: bytes,
    trust_anchor_der: bytes,
    *,
    crl_der: bytes | None = None,
    at: datetime | None = None,
) -> CardCertificateFields:
    """Check a card certificate against the trusted CA (and its CRL); return its fields.

    A certificate that does not state the card type is refused (`NO_CARD_TYPE`)."""
    moment = _moment(at)
    anchor = _trust_anchor(trust_anchor_der, moment)
    anchor_key = certificate_public_key(anchor)
    certificate = load_certificate(cert_der)
    if not _issued_by(certificate, anchor, anchor_key):
        raise CertificateError(CertificateProblem.UNTRUSTED)
    not_before, not_after = validity(certificate)
    if moment < not_before:
        raise CertificateError(CertificateProblem.NOT_YET_VALID)
    if moment > not_after:
        raise CertificateError(CertificateProblem.EXPIRED)
    if not _critical_extensions(certificate) <= _UNDERSTOOD_CARD_EXTENSIONS:
        raise CertificateError(CertificateProblem.UNSUPPORTED_CRITICAL_EXTENSION)
    key_usage = certificate.key_usage_value
    if certificate.ca or key_usage is None or "digital_signature" not in key_usage.native:
        raise CertificateError(CertificateProblem.NOT_A_CARD_CERTIFICATE)
    certificate_public_key(certificate)  # raises unless the card's key is an SM2 key
    if crl_der is not None:
        _check_not_revoked(int(certificate.serial_number), crl_der, anchor, anchor_key, moment)
    fields = card_certificate_fields(cert_der)
    # Only the certificate vouches for the card type: without it, the data file's word would
    # decide whether a card acts as a legal person or an operator.
    if fields.identity.card_type is None:
        raise CertificateError(CertificateProblem.NO_CARD_TYPE)
    return fields


def verify_challenge_signature(cert_der: bytes, challenge: bytes, signature_der: bytes) -> bool:
    """Whether signature_der is the certificate key's SM2-with-SM3 signature of challenge.

    Only the signature is checked: call verify_certificate for the certificate itself.
    Raises CertificateError if the certificate cannot be read or holds no SM2 key.
    """
    return certificate_public_key(load_certificate(cert_der)).verify(challenge, signature_der)


def _moment(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    return at


def _trust_anchor(der: bytes, moment: datetime) -> x509.Certificate:
    try:
        anchor = load_certificate(der)
        key_usage = anchor.key_usage_value
    except CertificateError as exc:
        raise CertificateError(CertificateProblem.TRUST_ANCHOR_INVALID) from exc
    if not anchor.ca or (key_usage is not None and "key_cert_sign" not in key_usage.native):
        raise CertificateError(CertificateProblem.TRUST_ANCHOR_INVALID)
    not_before, not_after = validity(anchor)
    if not not_before <= moment <= not_after:
        raise CertificateError(CertificateProblem.TRUST_ANCHOR_EXPIRED)
    return anchor


def _issued_by(
    certificate: x509.Certificate, anchor: x509.Certificate, anchor_key: SM2PublicKey
) -> bool:
    return (
        _same_name(certificate.issuer, anchor.subject)
        and _key_ids_agree(certificate, anchor)
        and signature_is_valid(
            anchor_key, certificate["tbs_certificate"], certificate["signature_value"]
        )
    )


def _same_name(name: x509.Name, other: x509.Name) -> bool:
    try:
        return bool(name == other)
    except ValueError:
        # RFC 4518 string preparation refuses some code points; such a name matches nothing.
        return False


def _key_ids_agree(certificate: x509.Certificate, anchor: x509.Certificate) -> bool:
    # Both identifiers are optional; when both are present they must name the same key.
    authority = certificate.authority_key_identifier
    subject = anchor.key_identifier
    return authority is None or subject is None or bytes(authority) == bytes(subject)


def _critical_extensions(signed: Any) -> set[str]:
    return {str(name) for name in signed.critical_extensions}


@dataclass(frozen=True)
class RevocationList:
    """A CRL validly signed by the trusted CA: the serial numbers it revokes, and when it is
    current. Read once per CRL (`load_revocation_list`), checked per certificate."""

    revoked: frozenset[int]
    this_update: datetime
    next_update: datetime | None

    def check(self, serial_number: int, *, at: datetime | None = None) -> None:
        """Raise `CRL_NOT_CURRENT` unless the list is current at `at` (default: now), and
        `REVOKED` if it revokes `serial_number`."""
        moment = _moment(at)
        if moment < self.this_update or (
            self.next_update is not None and moment > self.next_update
        ):
            raise CertificateError(CertificateProblem.CRL_NOT_CURRENT)
        if serial_number in self.revoked:
            raise CertificateError(CertificateProblem.REVOKED)


def load_revocation_list(
    crl_der: bytes, trust_anchor_der: bytes, *, at: datetime | None = None
) -> RevocationList:
    """Check that a CRL is signed by the trusted CA (valid at `at`) and read what it revokes.

    Raises CertificateError: `CRL_INVALID`, or the trust anchor's own problem."""
    anchor = _trust_anchor(trust_anchor_der, _moment(at))
    return _revocation_list(crl_der, anchor, certificate_public_key(anchor))


def _revocation_list(
    crl_der: bytes, anchor: x509.Certificate, anchor_key: SM2PublicKey
) -> RevocationList:
    certificate_list = load_crl(crl_der)
    tbs = certificate_list["tbs_cert_list"]
    key_usage = anchor.key_usage_value
    if (
        not _same_name(certificate_list.issuer, anchor.subject)
        or (key_usage is not None and "crl_sign" not in key_usage.native)
        or not _critical_extensions(certificate_list) <= _UNDERSTOOD_CRL_EXTENSIONS
        or not signature_is_valid(anchor_key, tbs, certificate_list["signature"])
    ):
        raise CertificateError(CertificateProblem.CRL_INVALID)
    return RevocationList(
        revoked=frozenset(
            int(entry["user_certificate"].native) for entry in tbs["revoked_certificates"]
        ),
        this_update=tbs["this_update"].native,
        next_update=tbs["next_update"].native,
    )


def _check_not_revoked(
    serial_number: int,
    crl_der: bytes,
    anchor: x509.Certificate,
    anchor_key: SM2PublicKey,
    moment: datetime,
) -> None:
    _revocation_list(crl_der, anchor, anchor_key).check(serial_number, at=moment)
