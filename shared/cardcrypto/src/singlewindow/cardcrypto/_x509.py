"""asn1crypto plumbing shared by issuing and verifying: parsing, times, key identifiers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from asn1crypto import crl, x509  # type: ignore[import-untyped]
from singlewindow.cardcrypto.errors import CertificateError, CertificateProblem
from singlewindow.cardcrypto.sm2 import (
    SM2_WITH_SM3_OID,
    SM2Error,
    SM2PrivateKey,
    SM2PublicKey,
    public_key_from_info,
)

# UTCTime cannot express 2050 or later (RFC 5280 4.1.2.5).
_GENERALIZED_TIME_FROM = datetime(2050, 1, 1, tzinfo=UTC)


def sm2_with_sm3() -> dict[str, str]:
    """The AlgorithmIdentifier of SM2-with-SM3; parameters absent, as OpenSSL writes it."""
    return {"algorithm": SM2_WITH_SM3_OID}


def encode_time(moment: datetime) -> x509.Time:
    """A certificate Time, whole seconds in UTC, UTCTime before 2050."""
    if moment.tzinfo is None:
        raise ValueError("certificate times must be timezone-aware")
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if moment < _GENERALIZED_TIME_FROM:
        return x509.Time(name="utc_time", value=moment)
    return x509.Time(name="general_time", value=moment)


def key_identifier(public_key: SM2PublicKey) -> bytes:
    """RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits, as OpenSSL computes it."""
    return hashlib.sha1(public_key.point, usedforsecurity=False).digest()


def signed_by(key: SM2PrivateKey, tbs: Any) -> bytes:
    """The SM2-with-SM3 signature of a to-be-signed structure's DER."""
    return key.sign(bytes(tbs.dump()))


def load_certificate(der: bytes) -> x509.Certificate:
    """A fully parsed certificate signed SM2-with-SM3, or CertificateError."""
    try:
        certificate = x509.Certificate.load(der, strict=True)
        # .native parses every nested field, so a malformed inner value fails here and not later.
        certificate.native  # noqa: B018
        outer = certificate["signature_algorithm"]["algorithm"].dotted
        inner = certificate["tbs_certificate"]["signature"]["algorithm"].dotted
    except Exception as exc:
        # asn1crypto reports malformed input with whatever exception its code path hits (even
        # AttributeError); a certificate from outside that fails to parse is malformed, not a crash.
        raise CertificateError(CertificateProblem.MALFORMED) from exc
    if outer != SM2_WITH_SM3_OID or inner != SM2_WITH_SM3_OID:
        raise CertificateError(CertificateProblem.UNSUPPORTED_ALGORITHM)
    return certificate


def load_crl(der: bytes) -> crl.CertificateList:
    """A fully parsed CRL signed SM2-with-SM3, or CertificateError (CRL_INVALID)."""
    try:
        certificate_list = crl.CertificateList.load(der, strict=True)
        certificate_list.native  # noqa: B018
        outer = certificate_list["signature_algorithm"]["algorithm"].dotted
        inner = certificate_list["tbs_cert_list"]["signature"]["algorithm"].dotted
    except Exception as exc:  # as in load_certificate
        raise CertificateError(CertificateProblem.CRL_INVALID) from exc
    if outer != SM2_WITH_SM3_OID or inner != SM2_WITH_SM3_OID:
        raise CertificateError(CertificateProblem.CRL_INVALID)
    return certificate_list


def certificate_public_key(certificate: x509.Certificate) -> SM2PublicKey:
    """The SM2 subject key of a parsed certificate, or CertificateError."""
    try:
        return public_key_from_info(certificate["tbs_certificate"]["subject_public_key_info"])
    except SM2Error as exc:
        raise CertificateError(CertificateProblem.UNSUPPORTED_ALGORITHM) from exc


def signature_is_valid(issuer_key: SM2PublicKey, tbs: Any, signature: Any) -> bool:
    """Whether a parsed BIT STRING signature over a parsed to-be-signed structure verifies."""
    return issuer_key.verify(bytes(tbs.dump()), bytes(signature.native))


def validity(certificate: x509.Certificate) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of a parsed certificate, timezone-aware."""
    period = certificate["tbs_certificate"]["validity"]
    not_before: datetime = period["not_before"].native
    not_after: datetime = period["not_after"].native
    return not_before, not_after
