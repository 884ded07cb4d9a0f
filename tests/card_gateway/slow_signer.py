"""The card's real SM2 key, but slow: it takes ``DELAY`` seconds to sign, long enough to pull the
card out or to queue another request in the meantime. Loaded by the emulator process with
``--signer-factory slow_signer:from_key`` (this folder on PYTHONPATH)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from singlewindow.virtual_card.signer import SM2Signer, private_key

DELAY = 3.0


class SlowSigner(SM2Signer):
    def sign(self, message: bytes) -> bytes:
        time.sleep(DELAY)
        return super().sign(message)


def from_key(key: Mapping[str, Any]) -> SlowSigner:
    return SlowSigner(private_key(key))
