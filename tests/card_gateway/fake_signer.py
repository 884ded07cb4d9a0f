"""A stand-in for the card's SM2 key: HMAC-SHA256 shaped as a DER ECDSA-Sig-Value.

Loaded by the emulator process with ``--signer-factory fake_signer:from_key`` (this folder on
PYTHONPATH), and by the tests to check what the card signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

KEY_TYPE = "test-hmac-sha256"


def _der_integer(value: bytes) -> bytes:
    value = value.lstrip(b"\x00") or b"\x00"
    if value[0] & 0x80:
        value = b"\x00" + value
    return b"\x02" + bytes([len(value)]) + value


class HmacSigner:
    """Signs with HMAC-SHA256 under a secret; ``r`` and ``s`` are two domain-separated MACs."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, message: bytes) -> bytes:
        r = hmac.new(self._secret, b"r" + message, hashlib.sha256).digest()
        s = hmac.new(self._secret, b"s" + message, hashlib.sha256).digest()
        body = _der_integer(r) + _der_integer(s)
        return b"\x30" + bytes([len(body)]) + body


def key_record(secret: bytes) -> dict[str, str]:
    """The card file's ``key`` object for a fake key."""
    return {"type": KEY_TYPE, "secret": secret.hex()}


def from_key(key: Mapping[str, Any]) -> HmacSigner:
    """The signer factory the emulator loads."""
    if key.get("type") != KEY_TYPE:
        raise ValueError(f"not a fake key: {key.get('type')!r}")
    return HmacSigner(bytes.fromhex(key["secret"]))
