"""Why a card certificate was refused."""

from __future__ import annotations

from enum import StrEnum


class CertificateProblem(StrEnum):
    """A stable reason for refusing a certificate; the value is the plain message."""

    MALFORMED = "certificate is malformed"
    UNSUPPORTED_ALGORITHM = "certificate is not signed with SM2 and SM3"
    UNTRUSTED = "certificate is not issued by a trusted CA"
    NOT_YET_VALID = "certificate is not yet valid"
    EXPIRED = "certificate has expired"
    NOT_A_CARD_CERTIFICATE = "certificate is not a card certificate"
    NO_CARD_TYPE = "certificate does not state the card type"
    UNSUPPORTED_CRITICAL_EXTENSION = "certificate has an unsupported critical extension"
    REVOKED = "certificate has been revoked"
    TRUST_ANCHOR_INVALID = "trusted CA certificate is not a usable CA certificate"
    TRUST_ANCHOR_EXPIRED = "trusted CA certificate is not valid at this time"
    CRL_INVALID = "revocation list is not validly signed by the trusted CA"
    CRL_NOT_CURRENT = "revocation list is not current"


class CertificateError(Exception):
    """A certificate, its CA or its revocation list failed a check."""

    def __init__(self, problem: CertificateProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem
