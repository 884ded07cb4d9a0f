"""SM2 keys and SM2-with-SM3 signatures (GB/T 32918.2), with PKCS#8, SEC1 and SPKI encodings."""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, Literal

from asn1crypto import algos, core, keys  # type: ignore[import-untyped]
from singlewindow.cardcrypto import _curve
from singlewindow.cardcrypto._pem import pem_decode, pem_encode

SM2_CURVE_OID: Final = "1.2.156.10197.1.301"
SM2_WITH_SM3_OID: Final = "1.2.156.10197.1.501"
EC_PUBLIC_KEY_OID: Final = "1.2.840.10045.2.1"
DEFAULT_USER_ID: Final = b"1234567812345678"

_CURVE_BYTES: Final = (
    _curve.A.to_bytes(32, "big")
    + _curve.B.to_bytes(32, "big")
    + _curve.GX.to_bytes(32, "big")
    + _curve.GY.to_bytes(32, "big")
)

PrivateKeyFormat = Literal["pkcs8", "sec1"]

# asn1crypto sizes the private scalar from the curve, so it must know SM2's (32 bytes); names and
# comparisons elsewhere use the dotted OIDs and do not depend on this registration.
if SM2_CURVE_OID not in keys.NamedCurve._key_sizes:
    keys.NamedCurve.register("sm2", SM2_CURVE_OID, 32)


class SM2Error(ValueError):
    """Malformed SM2 key material or signature encoding."""


def sm3(data: bytes) -> bytes:
    """SM3 digest of data (GB/T 32905)."""
    try:
        return hashlib.new("sm3", data).digest()
    except ValueError:
        # Python linked against an OpenSSL built without SM3 (some FIPS builds): use gmssl's.
        from gmssl import func  # type: ignore[import-untyped]
        from gmssl import sm3 as gm_sm3

        return bytes.fromhex(gm_sm3.sm3_hash(func.bytes_to_list(data)))


class SM2PublicKey:
    """An SM2 public key: a validated point of the SM2 curve."""

    __slots__ = ("_xy",)

    def __init__(self, point: bytes) -> None:
        """Load a public key from its 65-byte uncompressed point encoding (04 || x || y)."""
        if len(point) != 65 or point[0] != 0x04:
            raise SM2Error("public key must be an uncompressed point of 65 bytes")
        xy = int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")
        if not _curve.is_on_curve(xy):
            raise SM2Error("public key is not a point of the SM2 curve")
        self._xy = xy

    @property
    def point(self) -> bytes:
        """The uncompressed point encoding, 04 || x || y."""
        x, y = self._xy
        return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and self._xy == other._xy

    def __hash__(self) -> int:
        return hash(self._xy)

    def __repr__(self) -> str:
        return f"SM2PublicKey({self.point.hex()})"

    def z_value(self, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        """Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA), bound into every signature."""
        id_bits = len(user_id) * 8
        if id_bits > 0xFFFF:
            raise SM2Error("user ID is longer than 8191 bytes")
        return sm3(id_bits.to_bytes(2, "big") + user_id + _CURVE_BYTES + self.point[1:])

    def verify(self, message: bytes, signature: bytes, *, user_id: bytes = DEFAULT_USER_ID) -> bool:
        """Whether signature (DER r, s) is a valid SM2-with-SM3 signature of message."""
        try:
            r, s = decode_signature(signature)
        except SM2Error:
            return False
        if not (1 <= r < _curve.N and 1 <= s < _curve.N):
            return False
        t = (r + s) % _curve.N
        if t == 0:
            return False
        e = int.from_bytes(sm3(self.z_value(user_id) + message), "big")
        s_g = _curve.to_affine(_curve.multiply_base(s))
        sum_point = _curve.multiply(t, self._xy)
        if s_g is not None:
            sum_point = _curve.add_affine(sum_point, s_g)
        affine = _curve.to_affine(sum_point)
        if affine is None:
            return False
        return (e + affine[0]) % _curve.N == r

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo DER: id-ecPublicKey with namedCurve sm2."""
        return bytes(public_key_info(self).dump())

    def to_pem(self) -> str:
        """SubjectPublicKeyInfo as a PEM 'PUBLIC KEY' block."""
        return pem_encode("PUBLIC KEY", self.to_der())

    @classmethod
    def from_der(cls, der: bytes) -> SM2PublicKey:
        """Load a SubjectPublicKeyInfo DER whose curve is SM2."""
        try:
            info = keys.PublicKeyInfo.load(der, strict=True)
            return public_key_from_info(info)
        except SM2Error:
            raise
        except Exception as exc:  # asn1crypto raises assorted types on malformed input
            raise SM2Error("malformed SubjectPublicKeyInfo") from exc

    @classmethod
    def from_pem(cls, pem: str | bytes) -> SM2PublicKey:
        """Load a PEM 'PUBLIC KEY' block whose curve is SM2."""
        try:
            der = pem_decode(pem, "PUBLIC KEY")
        except ValueError as exc:
            raise SM2Error(str(exc)) from exc
        return cls.from_der(der)


class SM2PrivateKey:
    """An SM2 private key d in [1, n-2]; repr never shows it."""

    __slots__ = ("_d", "_public_key")

    def __init__(self, scalar: bytes) -> None:
        """Load a private key from its 32-byte big-endian scalar."""
        if len(scalar) != 32:
            raise SM2Error("private key must be a 32-byte scalar")
        d = int.from_bytes(scalar, "big")
        # SM2 signing inverts 1 + d, so n - 1 is excluded as well as 0.
        if not 1 <= d <= _curve.N - 2:
            raise SM2Error("private key scalar is out of range")
        self._d = d
        affine = _curve.to_affine(_curve.multiply_base(d))
        assert affine is not None
        x, y = affine
        self._public_key = SM2PublicKey(b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big"))

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """A fresh key pair from the operating system's CSPRNG."""
        return cls((secrets.randbelow(_curve.N - 2) + 1).to_bytes(32, "big"))

    @property
    def scalar(self) -> bytes:
        """The 32-byte big-endian private scalar."""
        return self._d.to_bytes(32, "big")

    @property
    def public_key(self) -> SM2PublicKey:
        """The matching public key."""
        return self._public_key

    def __repr__(self) -> str:
        return f"SM2PrivateKey(public_key={self._public_key.point.hex()})"

    def sign(self, message: bytes, *, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        """SM2-with-SM3 signature of message, DER-encoded SEQUENCE { r, s }."""
        e = int.from_bytes(sm3(self._public_key.z_value(user_id) + message), "big")
        d_plus_one_inv = pow(1 + self._d, -1, _curve.N)
        while True:
            k = secrets.randbelow(_curve.N - 1) + 1
            kg = _curve.to_affine(_curve.multiply_base(k))
            assert kg is not None
            r = (e + kg[0]) % _curve.N
            if r == 0 or r + k == _curve.N:
                continue
            s = d_plus_one_inv * (k - r * self._d) % _curve.N
            if s != 0:
                return encode_signature(r, s)

    def to_der(self, format: PrivateKeyFormat = "pkcs8") -> bytes:
        """PKCS#8 PrivateKeyInfo (as OpenSSL 3 writes SM2 keys) or SEC1 ECPrivateKey DER."""
        ec_private_key = _ec_private_key(self)
        if format == "sec1":
            return bytes(ec_private_key.dump())
        info = keys.PrivateKeyInfo(
            {
                "version": 0,
                "private_key_algorithm": {
                    "algorithm": "ec",
                    "parameters": keys.ECDomainParameters(name="named", value=SM2_CURVE_OID),
                },
                "private_key": ec_private_key,
            }
        )
        return bytes(info.dump())

    def to_pem(self, format: PrivateKeyFormat = "pkcs8") -> str:
        """PEM 'PRIVATE KEY' (PKCS#8) or 'EC PRIVATE KEY' (SEC1) block."""
        label = "PRIVATE KEY" if format == "pkcs8" else "EC PRIVATE KEY"
        return pem_encode(label, self.to_der(format))

    @classmethod
    def from_der(cls, der: bytes) -> SM2PrivateKey:
        """Load an unencrypted PKCS#8 or SEC1 DER private key on the SM2 curve."""
        try:
            return _private_key_from_der(der)
        except SM2Error:
            raise
        except Exception as exc:  # asn1crypto raises assorted types on malformed input
            raise SM2Error("malformed private key") from exc

    @classmethod
    def from_pem(cls, pem: str | bytes) -> SM2PrivateKey:
        """Load a PEM 'PRIVATE KEY' (PKCS#8) or 'EC PRIVATE KEY' (SEC1) block."""
        try:
            der = pem_decode(pem, "PRIVATE KEY", "EC PRIVATE KEY")
        except ValueError as exc:
            raise SM2Error(str(exc)) from exc
        return cls.from_der(der)


def encode_signature(r: int, s: int) -> bytes:
    """DER SEQUENCE { r INTEGER, s INTEGER }."""
    return bytes(algos.DSASignature({"r": r, "s": s}).dump())


def decode_signature(signature: bytes) -> tuple[int, int]:
    """(r, s) from a DER signature; non-canonical encodings are refused."""
    try:
        parsed = algos.DSASignature.load(signature, strict=True)
        r, s = int(parsed["r"].native), int(parsed["s"].native)
    except Exception as exc:  # asn1crypto raises assorted types on malformed input
        raise SM2Error("malformed signature") from exc
    if r < 0 or s < 0 or encode_signature(r, s) != signature:
        raise SM2Error("signature is not canonical DER")
    return r, s


def public_key_from_info(info: keys.PublicKeyInfo) -> SM2PublicKey:
    """The SM2 key of a parsed SubjectPublicKeyInfo; refuses any other algorithm or curve."""
    algorithm = info["algorithm"]
    parameters = algorithm["parameters"]
    if (
        algorithm["algorithm"].dotted != EC_PUBLIC_KEY_OID
        or not isinstance(parameters, keys.ECDomainParameters)
        or parameters.name != "named"
        or parameters.chosen.dotted != SM2_CURVE_OID
    ):
        raise SM2Error("public key is not an SM2 key")
    return SM2PublicKey(bytes(info["public_key"].native))


def public_key_info(public_key: SM2PublicKey) -> keys.PublicKeyInfo:
    """The asn1crypto SubjectPublicKeyInfo of a key, for building certificates."""
    return keys.PublicKeyInfo(
        {
            "algorithm": {
                "algorithm": "ec",
                "parameters": keys.ECDomainParameters(name="named", value=SM2_CURVE_OID),
            },
            "public_key": public_key.point,
        }
    )


def _ec_private_key(private_key: SM2PrivateKey) -> keys.ECPrivateKey:
    return keys.ECPrivateKey(
        {
            "version": "ecPrivkeyVer1",
            "private_key": int.from_bytes(private_key.scalar, "big"),
            "parameters": keys.ECDomainParameters(name="named", value=SM2_CURVE_OID),
            "public_key": private_key.public_key.point,
        }
    )


def _private_key_from_der(der: bytes) -> SM2PrivateKey:
    outer = core.Sequence.load(der, strict=True)
    # PKCS#8 starts with INTEGER 0, SEC1 with INTEGER 1.
    if int(outer[0].native) == 0:
        info = keys.PrivateKeyInfo.load(der, strict=True)
        algorithm = info["private_key_algorithm"]
        parameters = algorithm["parameters"]
        if (
            algorithm["algorithm"].dotted != EC_PUBLIC_KEY_OID
            or parameters.name != "named"
            or parameters.chosen.dotted != SM2_CURVE_OID
        ):
            raise SM2Error("private key is not an SM2 key")
        ec_private_key = info["private_key"].parsed
    else:
        ec_private_key = keys.ECPrivateKey.load(der, strict=True)
        parameters = ec_private_key["parameters"]
        if parameters.native is not None and (
            parameters.name != "named" or parameters.chosen.dotted != SM2_CURVE_OID
        ):
            raise SM2Error("private key is not an SM2 key")
    scalar = int(ec_private_key["private_key"].native)
    key = SM2PrivateKey(scalar.to_bytes(32, "big"))
    embedded = ec_private_key["public_key"].native
    if embedded is not None and bytes(embedded) != key.public_key.point:
        raise SM2Error("private key does not match its embedded public key")
    return key
