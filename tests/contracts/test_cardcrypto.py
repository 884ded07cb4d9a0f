"""E-Port card crypto: SM2/SM3, the development CA and card login checks, cross-checked by OpenSSL 3.

OpenSSL 3.0 computes SM2 signatures with an empty user ID unless told otherwise, while SM2
certificates, CRLs and cards use the GB/T 32918 default ID. So every OpenSSL command that signs or
verifies gets the ID explicitly (`distid:1234567812345678`). `openssl verify -vfyopt` applies it
to the leaf certificate only (openssl/openssl#23471, #32744), and `openssl crl -verify` takes no
ID at all: the CA's self-signature and the CRL signature are checked with `openssl pkeyutl`
over the to-be-signed bytes instead.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import crl, x509  # type: ignore[import-untyped]
from gmssl import sm2 as gmssl_sm2  # type: ignore[import-untyped]
from singlewindow.cardcrypto import (
    CardIdentity,
    CertificateError,
    CertificateProblem,
    RevokedCertificate,
    SM2Error,
    SM2PrivateKey,
    SM2PublicKey,
    card_certificate_fields,
    certificate_from_pem,
    certificate_to_pem,
    crl_to_pem,
    issue_ca_certificate,
    issue_card_certificate,
    issue_crl,
    load_revocation_list,
    sm3,
    verify_certificate,
    verify_challenge_signature,
)
from singlewindow.cardcrypto.sm2 import (
    PrivateKeyFormat,
    decode_signature,
    encode_signature,
)

SM2_ID = "distid:1234567812345678"
ENCODINGS: tuple[PrivateKeyFormat, ...] = ("pkcs8", "sec1")
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
NOW = datetime.now(UTC).replace(microsecond=0)
IDENTITY = CardIdentity(
    holder_name="张三",
    enterprise_name="厦门远洋进出口贸易有限公司",
    uscc="91350200MA2Y0A1B2C",
    card_number="8800000012345678",
    card_type="legal-person",
)


def openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the system OpenSSL 3; the caller asserts on the outcome."""
    binary = shutil.which("openssl")
    assert binary is not None, "OpenSSL 3 must be installed for the cross-checks"
    return subprocess.run(
        [binary, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@dataclass(frozen=True)
class DevCA:
    key: SM2PrivateKey
    certificate: bytes

    def issue(
        self,
        card_key: SM2PublicKey,
        *,
        not_before: datetime = NOW - timedelta(days=1),
        not_after: datetime = NOW + timedelta(days=365),
    ) -> bytes:
        return issue_card_certificate(
            self.key,
            self.certificate,
            card_key,
            IDENTITY,
            not_before=not_before,
            not_after=not_after,
        )


def make_ca(common_name: str = "单一窗口开发 CA") -> DevCA:
    key = SM2PrivateKey.generate()
    certificate = issue_ca_certificate(
        key,
        common_name=common_name,
        organization="Single Window Development",
        not_before=NOW - timedelta(days=30),
        not_after=NOW + timedelta(days=3650),
    )
    return DevCA(key, certificate)


@pytest.fixture(scope="module")
def ca() -> DevCA:
    return make_ca()


@pytest.fixture(scope="module")
def card_key() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


@pytest.fixture(scope="module")
def card_certificate(ca: DevCA, card_key: SM2PrivateKey) -> bytes:
    return ca.issue(card_key.public_key)


@pytest.fixture
def files(tmp_path: Path, ca: DevCA, card_certificate: bytes) -> Path:
    (tmp_path / "ca.pem").write_text(certificate_to_pem(ca.certificate))
    (tmp_path / "card.pem").write_text(certificate_to_pem(card_certificate))
    return tmp_path


def refusal(
    cert_der: bytes,
    anchor_der: bytes,
    *,
    crl_der: bytes | None = None,
    at: datetime | None = None,
) -> CertificateProblem:
    with pytest.raises(CertificateError) as refused:
        verify_certificate(cert_der, anchor_der, crl_der=crl_der, at=at)
    return refused.value.problem


# SM2 and SM3


def test_sm3_matches_the_gbt_32905_example() -> None:
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_private_key_round_trips_through_pkcs8_and_sec1() -> None:
    key = SM2PrivateKey.generate()
    for encoding in ENCODINGS:
        assert SM2PrivateKey.from_pem(key.to_pem(encoding)).scalar == key.scalar
        assert SM2PrivateKey.from_der(key.to_der(encoding)).scalar == key.scalar
    assert SM2PrivateKey(key.scalar).public_key == key.public_key
    assert len(key.scalar) == 32


def test_public_key_round_trips_through_subject_public_key_info() -> None:
    public_key = SM2PrivateKey.generate().public_key
    assert SM2PublicKey.from_pem(public_key.to_pem()) == public_key
    assert SM2PublicKey.from_der(public_key.to_der()) == public_key
    assert SM2PublicKey(public_key.point) == public_key
    assert len(public_key.point) == 65
    assert public_key.point[0] == 0x04


def test_point_off_the_curve_is_refused_as_a_public_key() -> None:
    point = bytearray(SM2PrivateKey.generate().public_key.point)
    point[-1] ^= 1
    with pytest.raises(SM2Error, match="not a point of the SM2 curve"):
        SM2PublicKey(bytes(point))


def test_private_key_repr_does_not_reveal_the_scalar() -> None:
    key = SM2PrivateKey.generate()
    assert key.scalar.hex() not in repr(key)


def test_signature_verifies_for_the_signed_message_only() -> None:
    key = SM2PrivateKey.generate()
    challenge = bytes(range(32))
    signature = key.sign(challenge)
    assert key.public_key.verify(challenge, signature)
    assert not key.public_key.verify(challenge[:-1] + b"\xff", signature)
    assert not SM2PrivateKey.generate().public_key.verify(challenge, signature)
    assert not key.public_key.verify(challenge, signature, user_id=b"ALICE123@YAHOO.COM")


def test_tampered_or_malleated_signature_is_refused() -> None:
    key = SM2PrivateKey.generate()
    challenge = b"login challenge"
    r, s = decode_signature(key.sign(challenge))
    assert not key.public_key.verify(challenge, encode_signature(r, (s + 1) % N))
    assert not key.public_key.verify(challenge, encode_signature(r, s + N))
    assert not key.public_key.verify(challenge, encode_signature(0, s))
    assert not key.public_key.verify(challenge, encode_signature(r, s) + b"\x00")
    assert not key.public_key.verify(challenge, b"not DER at all")


def test_gmssl_and_our_signatures_verify_each_other() -> None:
    key = SM2PrivateKey.generate()
    message = b"interoperability"
    gm = gmssl_sm2.CryptSM2(private_key=key.scalar.hex(), public_key="", asn1=True)
    # Set after construction: CryptSM2 lstrips "04" characters, which can eat into x.
    gm.public_key = key.public_key.point[1:].hex()
    assert gm.verify_with_sm3(key.sign(message).hex(), message)
    gm_signature = bytes.fromhex(gm.sign_with_sm3(message))
    assert key.public_key.verify(message, gm_signature)


# OpenSSL with our keys and signatures


def test_openssl_reads_our_private_key_in_both_encodings(tmp_path: Path) -> None:
    key = SM2PrivateKey.generate()
    for encoding in ENCODINGS:
        (tmp_path / "key.pem").write_text(key.to_pem(encoding))
        derived = openssl("pkey", "-in", "key.pem", "-pubout", cwd=tmp_path)
        assert derived.returncode == 0, derived.stderr
        assert SM2PublicKey.from_pem(derived.stdout) == key.public_key
        text = openssl("pkey", "-in", "key.pem", "-noout", "-text", cwd=tmp_path)
        assert "ASN1 OID: SM2" in text.stdout


def test_we_read_a_key_openssl_generated(tmp_path: Path) -> None:
    generated = openssl("genpkey", "-algorithm", "SM2", "-out", "key.pem", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    public = openssl("pkey", "-in", "key.pem", "-pubout", cwd=tmp_path)
    key = SM2PrivateKey.from_pem((tmp_path / "key.pem").read_text())
    assert key.public_key == SM2PublicKey.from_pem(public.stdout)


def test_openssl_verifies_our_challenge_signature(tmp_path: Path) -> None:
    key = SM2PrivateKey.generate()
    (tmp_path / "pub.pem").write_text(key.public_key.to_pem())
    (tmp_path / "challenge").write_bytes(b"\x17" * 32)
    (tmp_path / "sig").write_bytes(key.sign(b"\x17" * 32))
    pkeyutl = openssl(
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "pub.pem",
        "-rawin",
        "-in",
        "challenge",
        "-sigfile",
        "sig",
        "-digest",
        "sm3",
        "-pkeyopt",
        SM2_ID,
        cwd=tmp_path,
    )
    assert pkeyutl.returncode == 0, pkeyutl.stdout + pkeyutl.stderr
    assert "Signature Verified Successfully" in pkeyutl.stdout
    dgst = openssl(
        "dgst",
        "-sm3",
        "-verify",
        "pub.pem",
        "-sigopt",
        SM2_ID,
        "-signature",
        "sig",
        "challenge",
        cwd=tmp_path,
    )
    assert dgst.returncode == 0, dgst.stdout + dgst.stderr
    assert "Verified OK" in dgst.stdout
    (tmp_path / "challenge").write_bytes(b"\x18" * 32)
    tampered = openssl(
        "dgst",
        "-sm3",
        "-verify",
        "pub.pem",
        "-sigopt",
        SM2_ID,
        "-signature",
        "sig",
        "challenge",
        cwd=tmp_path,
    )
    assert tampered.returncode != 0


def test_we_verify_a_signature_openssl_made_with_our_exported_key(tmp_path: Path) -> None:
    key = SM2PrivateKey.generate()
    (tmp_path / "key.pem").write_text(key.to_pem())
    (tmp_path / "challenge").write_bytes(b"fresh challenge")
    signed = openssl(
        "pkeyutl",
        "-sign",
        "-inkey",
        "key.pem",
        "-rawin",
        "-in",
        "challenge",
        "-digest",
        "sm3",
        "-pkeyopt",
        SM2_ID,
        "-out",
        "sig",
        cwd=tmp_path,
    )
    assert signed.returncode == 0, signed.stderr
    assert key.public_key.verify(b"fresh challenge", (tmp_path / "sig").read_bytes())
    assert not key.public_key.verify(b"other challenge", (tmp_path / "sig").read_bytes())


# Certificates and CRLs under OpenSSL


def test_openssl_verify_accepts_our_card_certificate(files: Path) -> None:
    verified = openssl(
        "verify", "-vfyopt", SM2_ID, "-x509_strict", "-CAfile", "ca.pem", "card.pem", cwd=files
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip() == "card.pem: OK"


def test_openssl_parses_our_certificates(files: Path) -> None:
    card = openssl(
        "x509", "-in", "card.pem", "-noout", "-text", "-nameopt", "utf8,sep_comma_plus", cwd=files
    )
    assert card.returncode == 0, card.stderr
    assert "Signature Algorithm: SM2-with-SM3" in card.stdout
    assert (
        f"Subject: serialNumber={IDENTITY.uscc},C=CN,O={IDENTITY.enterprise_name},"
        f"OU={IDENTITY.card_number},title={IDENTITY.card_type},CN={IDENTITY.holder_name}"
        in card.stdout
    )
    assert "Digital Signature" in card.stdout
    assert "X509v3 Authority Key Identifier" in card.stdout
    ca = openssl("x509", "-in", "ca.pem", "-noout", "-text", cwd=files)
    assert "CA:TRUE" in ca.stdout
    assert "Certificate Sign, CRL Sign" in ca.stdout
    assert "X509v3 Subject Key Identifier" in ca.stdout


def openssl_checks_signature(
    tmp_path: Path, signer: SM2PublicKey, tbs: bytes, signature: bytes
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "signer.pem").write_text(signer.to_pem())
    (tmp_path / "tbs.der").write_bytes(tbs)
    (tmp_path / "tbs.sig").write_bytes(signature)
    return openssl(
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "signer.pem",
        "-rawin",
        "-in",
        "tbs.der",
        "-sigfile",
        "tbs.sig",
        "-digest",
        "sm3",
        "-pkeyopt",
        SM2_ID,
        cwd=tmp_path,
    )


def test_openssl_confirms_the_ca_self_signature(tmp_path: Path, ca: DevCA) -> None:
    parsed = x509.Certificate.load(ca.certificate)
    checked = openssl_checks_signature(
        tmp_path,
        ca.key.public_key,
        parsed["tbs_certificate"].dump(),
        parsed["signature_value"].native,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_openssl_parses_our_crl_and_confirms_its_signature(
    tmp_path: Path, ca: DevCA, card_certificate: bytes
) -> None:
    serial = card_certificate_fields(card_certificate).serial_number
    crl_der = issue_crl(ca.key, ca.certificate, [RevokedCertificate(serial, NOW)], crl_number=7)
    (tmp_path / "ca.crl").write_text(crl_to_pem(crl_der))
    text = openssl("crl", "-in", "ca.crl", "-noout", "-text", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "Version 2" in text.stdout
    assert "Signature Algorithm: SM2-with-SM3" in text.stdout
    assert f"Serial Number: {serial:X}" in text.stdout
    parsed = crl.CertificateList.load(crl_der)
    checked = openssl_checks_signature(
        tmp_path, ca.key.public_key, parsed["tbs_cert_list"].dump(), parsed["signature"].native
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_we_accept_a_card_certificate_openssl_issued_with_our_ca_key(
    tmp_path: Path, ca: DevCA, card_key: SM2PrivateKey
) -> None:
    (tmp_path / "ca.pem").write_text(certificate_to_pem(ca.certificate))
    (tmp_path / "ca.key").write_text(ca.key.to_pem())
    (tmp_path / "card.key").write_text(card_key.to_pem())
    (tmp_path / "ext.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    subject = (
        f"/serialNumber={IDENTITY.uscc}/C=CN/O={IDENTITY.enterprise_name}"
        f"/OU={IDENTITY.card_number}/title={IDENTITY.card_type}/CN={IDENTITY.holder_name}"
    )
    request = openssl(
        "req",
        "-new",
        "-key",
        "card.key",
        "-utf8",
        "-subj",
        subject,
        "-sm3",
        "-sigopt",
        SM2_ID,
        "-out",
        "card.csr",
        cwd=tmp_path,
    )
    assert request.returncode == 0, request.stderr
    issued = openssl(
        "x509",
        "-req",
        "-in",
        "card.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "0x5eed5eed5eed5eed5eed",
        "-days",
        "30",
        "-sm3",
        "-sigopt",
        SM2_ID,
        "-vfyopt",
        SM2_ID,
        "-extfile",
        "ext.cnf",
        "-outform",
        "DER",
        "-out",
        "card.der",
        cwd=tmp_path,
    )
    assert issued.returncode == 0, issued.stderr
    fields = verify_certificate((tmp_path / "card.der").read_bytes(), ca.certificate)
    assert fields.identity == IDENTITY
    assert fields.serial_number == 0x5EED5EED5EED5EED5EED


# What the platform's verifier accepts and refuses


def test_a_card_certificate_that_states_no_card_type_is_refused(
    ca: DevCA, card_key: SM2PrivateKey
) -> None:
    untyped = issue_card_certificate(
        ca.key,
        ca.certificate,
        card_key.public_key,
        replace(IDENTITY, card_type=None),
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=365),
    )
    assert refusal(untyped, ca.certificate, at=NOW) is CertificateProblem.NO_CARD_TYPE


def test_valid_card_certificate_is_accepted_with_its_fields(
    ca: DevCA, card_certificate: bytes
) -> None:
    empty_crl = issue_crl(ca.key, ca.certificate, [], crl_number=1)
    fields = verify_certificate(card_certificate, ca.certificate, crl_der=empty_crl)
    assert fields == card_certificate_fields(card_certificate)
    assert fields.identity == IDENTITY
    assert fields.not_before == NOW - timedelta(days=1)
    assert fields.not_after == NOW + timedelta(days=365)
    assert fields.fingerprint == sm3(card_certificate).hex()


def test_card_serial_numbers_are_random_and_at_least_64_bits(
    ca: DevCA, card_key: SM2PrivateKey
) -> None:
    serials = {
        card_certificate_fields(ca.issue(card_key.public_key)).serial_number for _ in range(3)
    }
    assert len(serials) == 3
    assert all(64 <= serial.bit_length() <= 159 for serial in serials)


def test_pem_certificate_round_trips(card_certificate: bytes) -> None:
    assert certificate_from_pem(certificate_to_pem(card_certificate)) == card_certificate


def test_certificate_from_an_untrusted_ca_is_refused(
    files: Path, ca: DevCA, card_key: SM2PrivateKey
) -> None:
    stranger = make_ca("Some Other CA")
    foreign = stranger.issue(card_key.public_key)
    assert refusal(foreign, ca.certificate) is CertificateProblem.UNTRUSTED
    (files / "foreign.pem").write_text(certificate_to_pem(foreign))
    verified = openssl("verify", "-vfyopt", SM2_ID, "-CAfile", "ca.pem", "foreign.pem", cwd=files)
    assert verified.returncode != 0
    assert "unable to get local issuer certificate" in verified.stdout + verified.stderr


def test_certificate_from_an_impostor_ca_with_the_same_name_is_refused(
    files: Path, ca: DevCA, card_key: SM2PrivateKey
) -> None:
    impostor = make_ca()
    assert (
        x509.Certificate.load(impostor.certificate).subject
        == x509.Certificate.load(ca.certificate).subject
    )
    forged = impostor.issue(card_key.public_key)
    assert refusal(forged, ca.certificate) is CertificateProblem.UNTRUSTED
    (files / "forged.pem").write_text(certificate_to_pem(forged))
    verified = openssl("verify", "-vfyopt", SM2_ID, "-CAfile", "ca.pem", "forged.pem", cwd=files)
    assert verified.returncode != 0


def test_expired_certificate_is_refused(files: Path, ca: DevCA, card_key: SM2PrivateKey) -> None:
    expired = ca.issue(
        card_key.public_key,
        not_before=NOW - timedelta(days=800),
        not_after=NOW - timedelta(days=70),
    )
    assert refusal(expired, ca.certificate) is CertificateProblem.EXPIRED
    assert str(CertificateError(CertificateProblem.EXPIRED)) == "certificate has expired"
    (files / "expired.pem").write_text(certificate_to_pem(expired))
    verified = openssl("verify", "-vfyopt", SM2_ID, "-CAfile", "ca.pem", "expired.pem", cwd=files)
    assert verified.returncode != 0
    assert "certificate has expired" in verified.stdout + verified.stderr


def test_certificate_is_judged_at_the_given_moment(ca: DevCA, card_certificate: bytes) -> None:
    later = NOW + timedelta(days=366)
    assert refusal(card_certificate, ca.certificate, at=later) is CertificateProblem.EXPIRED
    earlier = NOW - timedelta(days=2)
    assert refusal(card_certificate, ca.certificate, at=earlier) is CertificateProblem.NOT_YET_VALID


def test_revoked_certificate_is_refused(ca: DevCA, card_certificate: bytes) -> None:
    serial = card_certificate_fields(card_certificate).serial_number
    revoked = [RevokedCertificate(12345, NOW), RevokedCertificate(serial, NOW)]
    crl_der = issue_crl(ca.key, ca.certificate, revoked, crl_number=2)
    with pytest.raises(CertificateError, match=r"^certificate has been revoked$") as refused:
        verify_certificate(card_certificate, ca.certificate, crl_der=crl_der)
    assert refused.value.problem is CertificateProblem.REVOKED
    assert verify_certificate(card_certificate, ca.certificate).identity == IDENTITY


def test_crl_not_signed_by_the_trusted_ca_is_refused(ca: DevCA, card_certificate: bytes) -> None:
    stranger = make_ca()
    crl_der = issue_crl(stranger.key, stranger.certificate, [], crl_number=1)
    problem = refusal(card_certificate, ca.certificate, crl_der=crl_der)
    assert problem is CertificateProblem.CRL_INVALID


def test_outdated_crl_is_refused(ca: DevCA, card_certificate: bytes) -> None:
    crl_der = issue_crl(
        ca.key,
        ca.certificate,
        [],
        crl_number=1,
        this_update=NOW - timedelta(days=20),
        next_update=NOW - timedelta(days=13),
    )
    problem = refusal(card_certificate, ca.certificate, crl_der=crl_der)
    assert problem is CertificateProblem.CRL_NOT_CURRENT


def test_a_revocation_list_is_read_once_and_checked_per_serial(ca: DevCA) -> None:
    crl_der = issue_crl(
        ca.key,
        ca.certificate,
        [RevokedCertificate(777, NOW)],
        crl_number=3,
        this_update=NOW - timedelta(hours=1),
        next_update=NOW + timedelta(days=7),
    )
    revocations = load_revocation_list(crl_der, ca.certificate, at=NOW)
    assert revocations.revoked == frozenset({777})
    revocations.check(778, at=NOW)
    with pytest.raises(CertificateError) as revoked:
        revocations.check(777, at=NOW)
    assert revoked.value.problem is CertificateProblem.REVOKED
    with pytest.raises(CertificateError) as outdated:
        revocations.check(778, at=NOW + timedelta(days=8))
    assert outdated.value.problem is CertificateProblem.CRL_NOT_CURRENT
    stranger = make_ca()
    with pytest.raises(CertificateError) as unsigned:
        load_revocation_list(
            issue_crl(stranger.key, stranger.certificate, [], crl_number=1), ca.certificate
        )
    assert unsigned.value.problem is CertificateProblem.CRL_INVALID


def test_tampered_certificate_is_refused(ca: DevCA, card_certificate: bytes) -> None:
    card_number = IDENTITY.card_number.encode()
    assert card_certificate.count(card_number) == 1
    tampered = card_certificate.replace(card_number, b"8800000012345679")
    assert refusal(tampered, ca.certificate) is CertificateProblem.UNTRUSTED
    assert refusal(card_certificate[:-1], ca.certificate) is CertificateProblem.MALFORMED


def test_ca_certificate_is_not_accepted_as_a_card(ca: DevCA) -> None:
    assert refusal(ca.certificate, ca.certificate) is CertificateProblem.NOT_A_CARD_CERTIFICATE


def test_card_certificate_cannot_serve_as_trust_anchor(card_certificate: bytes) -> None:
    problem = refusal(card_certificate, card_certificate)
    assert problem is CertificateProblem.TRUST_ANCHOR_INVALID


def test_challenge_signature_is_checked_against_the_certificate_key(
    card_key: SM2PrivateKey, card_certificate: bytes
) -> None:
    challenge = bytes(range(32))
    signature = card_key.sign(challenge)
    assert verify_challenge_signature(card_certificate, challenge, signature)
    assert not verify_challenge_signature(card_certificate, challenge[::-1], signature)
    other = SM2PrivateKey.generate().sign(challenge)
    assert not verify_challenge_signature(card_certificate, challenge, other)
    with pytest.raises(CertificateError):
        verify_challenge_signature(b"\x30\x00", challenge, signature)
