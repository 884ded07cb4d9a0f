"""The virtual card's data and its card file, the JSON document that holds the card's state.

Card file (UTF-8 JSON)::

    {
      "format": 1,
      "card": {<CardData fields>},
      "certificate": "<base64 of the DER X.509 certificate>",
      "pin": {"kdf": "pbkdf2-sha256", "iterations": 10000, "salt": "<hex>", "hash": "<hex>",
              "tries_max": 10, "tries_left": 10},
      "key": {"type": "<key type>", ...}
    }

``key`` is opaque here: a signer factory turns it into the card's ``Signer``. The PIN counter is
rewritten in place (atomically) on every VERIFY, so it survives the emulator's restarts.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

from singlewindow.virtual_card.applet import (
    EF_CARD_DATA,
    EF_CERTIFICATE,
    PIN_KDF,
    PinRecord,
)

CARD_FILE_FORMAT: Final = 1

CardType = Literal["legal-person", "operator"]
OperatorLevel = Literal["entry", "declaration"]


class CardFileError(Exception):
    """The card file is missing, unreadable or not a virtual E-Port card file."""


@dataclass(frozen=True)
class CardData:
    """What EF 0101 holds: who the card belongs to. Encoded as compact JSON with these keys."""

    card_number: str
    card_type: CardType
    operator_level: OperatorLevel | None
    holder_name: str
    holder_id_number: str
    enterprise_uscc: str
    enterprise_name: str
    organisation_code: str
    customs_code: str | None

    def __post_init__(self) -> None:
        if self.card_type not in ("legal-person", "operator"):
            raise ValueError(f"unknown card type {self.card_type!r}")
        if self.card_type == "operator" and self.operator_level not in ("entry", "declaration"):
            raise ValueError("an operator card needs an operator level (entry or declaration)")
        if self.card_type == "legal-person" and self.operator_level is not None:
            raise ValueError("a legal-person card has no operator level")

    def encode(self) -> bytes:
        """The bytes of EF 0101."""
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CardData:
        return cls(
            card_number=str(raw["card_number"]),
            card_type=raw["card_type"],
            operator_level=raw.get("operator_level"),
            holder_name=str(raw["holder_name"]),
            holder_id_number=str(raw["holder_id_number"]),
            enterprise_uscc=str(raw["enterprise_uscc"]),
            enterprise_name=str(raw["enterprise_name"]),
            organisation_code=str(raw["organisation_code"]),
            customs_code=raw.get("customs_code"),
        )


@dataclass(frozen=True)
class CardFile:
    """A virtual card as stored on disk."""

    data: CardData
    certificate: bytes
    pin: PinRecord
    key: Mapping[str, Any]

    def files(self) -> dict[int, bytes]:
        """The card's elementary files by file id."""
        return {EF_CARD_DATA: self.data.encode(), EF_CERTIFICATE: self.certificate}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CARD_FILE_FORMAT,
            "card": asdict(self.data),
            "certificate": base64.b64encode(self.certificate).decode("ascii"),
            "pin": {
                "kdf": PIN_KDF,
                "iterations": self.pin.iterations,
                "salt": self.pin.salt.hex(),
                "hash": self.pin.hash.hex(),
                "tries_max": self.pin.tries_max,
                "tries_left": self.pin.tries_left,
            },
            "key": dict(self.key),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CardFile:
        try:
            if raw.get("format") != CARD_FILE_FORMAT:
                raise CardFileError(f"unsupported card file format {raw.get('format')!r}")
            pin = raw["pin"]
            if pin.get("kdf") != PIN_KDF:
                raise CardFileError(f"unsupported PIN hash {pin.get('kdf')!r}")
            return cls(
                data=CardData.from_dict(raw["card"]),
                certificate=base64.b64decode(raw["certificate"], validate=True),
                pin=PinRecord(
                    salt=bytes.fromhex(pin["salt"]),
                    hash=bytes.fromhex(pin["hash"]),
                    iterations=int(pin["iterations"]),
                    tries_max=int(pin["tries_max"]),
                    tries_left=int(pin["tries_left"]),
                ),
                key=dict(raw["key"]),
            )
        except CardFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CardFileError(f"not a valid card file: {exc!r}") from exc


def load_card_file(path: Path) -> CardFile:
    """Read a card file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CardFileError(f"cannot read card file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CardFileError(f"{path} is not a card file")
    return CardFile.from_json(raw)


def save_card_file(path: Path, card: CardFile) -> None:
    """Write a card file atomically (write a sibling, fsync, rename), readable by its owner only."""
    text = json.dumps(card.to_json(), ensure_ascii=False, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
