"""The virtual card's private key: an SM2 key kept in the card file, signing SM2 with SM3.

The card file's ``key`` object for it is ``{"type": "sm2", "private_key": "<PKCS#8 PEM>"}``.
``from_key`` is the signer factory the vpcd emulator uses by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from singlewindow.cardcrypto import SM2Error, SM2PrivateKey
from singlewindow.virtual_card.card import CardFileError

KEY_TYPE: Final = "sm2"


class SM2Signer:
    """Signs a challenge as an E-Port card does: SM2 with SM3 and the default user ID, DER."""

    def __init__(self, key: SM2PrivateKey) -> None:
        self._key = key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def key_record(key: SM2PrivateKey) -> dict[str, str]:
    """The card file's ``key`` object for an SM2 key."""
    return {"type": KEY_TYPE, "private_key": key.to_pem()}


def private_key(key: Mapping[str, Any]) -> SM2PrivateKey:
    """The SM2 private key of a card file's ``key`` object."""
    if key.get("type") != KEY_TYPE:
        raise CardFileError(f"no signer for key type {key.get('type')!r}")
    pem = key.get("private_key")
    if not isinstance(pem, str):
        raise CardFileError("the card file's sm2 key has no private_key")
    try:
        return SM2PrivateKey.from_pem(pem)
    except (SM2Error, ValueError) as exc:
        raise CardFileError(f"the card file's sm2 key is unreadable: {exc}") from exc


def from_key(key: Mapping[str, Any]) -> SM2Signer:
    """The signer factory of the vpcd emulator: the card's SM2 key as its ``Signer``."""
    return SM2Signer(private_key(key))
