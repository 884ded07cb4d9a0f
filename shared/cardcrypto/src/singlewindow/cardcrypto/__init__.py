"""E-Port card cryptography: SM2/SM3 keys and signatures, the development CA, card login checks.

Every SM2 signature here (challenges, certificates, CRLs) binds the GB/T 32918 default user ID
"1234567812345678" (GM/T 0009 clause 10), as real SM2 CAs and cards do. OpenSSL 3.0 defaults to
an empty ID instead: pass it `-pkeyopt distid:1234567812345678` (pkeyutl),
`-sigopt distid:1234567812345678` (dgst) or `-vfyopt distid:1234567812345678` (verify).
"""

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
