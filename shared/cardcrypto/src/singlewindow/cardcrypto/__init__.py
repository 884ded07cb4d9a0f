"""E-Port card cryptography: SM2/SM3 keys and signatures, the development CA, card login checks.

Every SM2 signature here (challenges, certificates, CRLs) binds the GB/T 32918 default user ID
"1234567812345678" (GM/T 0009 clause 10), as real SM2 CAs and cards do. OpenSSL 3.0 defaults to
an empty ID instead: pass it `-pkeyopt distid:1234567812345678` (pkeyutl),
`-sigopt distid:1234567812345678` (dgst) or `-vfyopt distid:1234567812345678` (verify).

Importing the package loads nothing heavy: each name is imported from its module on first use
(PEP 562), so a process that never touches a card (an accounts service on the cardless path) does
not pay for asn1crypto and the X.509/CRL machinery (about 8 MiB of RSS).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from singlewindow.cardcrypto.certificates import (
        CardCertificateFields,
        CardIdentity,
        RevokedCertificate,
        card_certificate_fields,
        certificate_from_pem,
        certificate_to_pem,
        crl_from_pem,
        crl_to_pem,
        issue_ca_certificate,
        issue_card_certificate,
        issue_crl,
        random_serial_number,
    )
    from singlewindow.cardcrypto.errors import CertificateError, CertificateProblem
    from singlewindow.cardcrypto.sm2 import (
        DEFAULT_USER_ID,
        SM2_CURVE_OID,
        SM2_WITH_SM3_OID,
        SM2Error,
        SM2PrivateKey,
        SM2PublicKey,
        sm3,
    )
    from singlewindow.cardcrypto.verification import (
        RevocationList,
        load_revocation_list,
        verify_certificate,
        verify_challenge_signature,
    )

_MODULE_OF: dict[str, str] = {
    "CardCertificateFields": "certificates",
    "CardIdentity": "certificates",
    "RevokedCertificate": "certificates",
    "card_certificate_fields": "certificates",
    "certificate_from_pem": "certificates",
    "certificate_to_pem": "certificates",
    "crl_from_pem": "certificates",
    "crl_to_pem": "certificates",
    "issue_ca_certificate": "certificates",
    "issue_card_certificate": "certificates",
    "issue_crl": "certificates",
    "random_serial_number": "certificates",
    "CertificateError": "errors",
    "CertificateProblem": "errors",
    "DEFAULT_USER_ID": "sm2",
    "SM2_CURVE_OID": "sm2",
    "SM2_WITH_SM3_OID": "sm2",
    "SM2Error": "sm2",
    "SM2PrivateKey": "sm2",
    "SM2PublicKey": "sm2",
    "sm3": "sm2",
    "RevocationList": "verification",
    "load_revocation_list": "verification",
    "verify_certificate": "verification",
    "verify_challenge_signature": "verification",
}


def __getattr__(name: str) -> Any:
    """Import `name` from its module the first time it is asked for, then keep it here."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_USER_ID",
    "SM2_CURVE_OID",
    "SM2_WITH_SM3_OID",
    "CardCertificateFields",
    "CardIdentity",
    "CertificateError",
    "CertificateProblem",
    "RevocationList",
    "RevokedCertificate",
    "SM2Error",
    "SM2PrivateKey",
    "SM2PublicKey",
    "card_certificate_fields",
    "certificate_from_pem",
    "certificate_to_pem",
    "crl_from_pem",
    "crl_to_pem",
    "issue_ca_certificate",
    "issue_card_certificate",
    "issue_crl",
    "load_revocation_list",
    "random_serial_number",
    "sm3",
    "verify_certificate",
    "verify_challenge_signature",
]
