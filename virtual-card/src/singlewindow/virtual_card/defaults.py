"""Defaults of a virtual card, importable without the card's cryptography (swctl's parser)."""

from __future__ import annotations

from typing import Final

DEFAULT_PIN: Final = "88888888"
DEFAULT_TRIES: Final = 10
