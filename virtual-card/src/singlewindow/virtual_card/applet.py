"""The E-Port card applet: ISO/IEC 7816-4 command APDUs in, response APDUs out, no I/O.

Application identifier (proprietary, RID category F): ``F0 53 57 45 50 4F 52 54 01``
(``F0`` + ASCII ``SWEPORT`` + version ``01``). Inside the application:

====== ============================================================================
EF     content
====== ============================================================================
0101   card data: compact UTF-8 JSON (see ``singlewindow.virtual_card.card.CardData``)
0102   the card's X.509 certificate, DER
====== ============================================================================

Commands (CLA ``00``, short APDUs only; responses never exceed 256 bytes, so the ~600-byte
certificate is read with READ BINARY at successive offsets):

========================= ====== ======= ==================== ===============================
command                   INS    P1 P2   data                 response
========================= ====== ======= ==================== ===============================
SELECT application        A4     04 00   AID                  FCI ``6F 84 AID``; ``0C``: none
SELECT EF                 A4     02 0C   file id (2 bytes)    ``04``/``00`` in P2: FCP (size)
READ BINARY               B0     offset  (Le)                 file bytes; ``6282`` at the end
VERIFY                    20     00 01   8 ASCII digits       ``9000`` / ``63Cx`` / ``6983``
VERIFY (status)           20     00 01   none                 ``9000`` if verified, ``63Cx``
PSO: COMPUTE DIG. SIGN.   2A     9E 9A   challenge (1..64 B)  DER SM2 signature (Le ``00``)
========================= ====== ======= ==================== ===============================
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Protocol

EPORT_AID: Final = bytes.fromhex("F0535745504F525401")
EF_CARD_DATA: Final = 0x0101
EF_CERTIFICATE: Final = 0x0102
PIN_REFERENCE: Final = 0x01
PIN_LENGTH: Final = 8
MAX_CHALLENGE: Final = 64
MAX_PIN_TRIES: Final = 15

CLA: Final = 0x00
INS_SELECT: Final = 0xA4
INS_READ_BINARY: Final = 0xB0
INS_VERIFY: Final = 0x20
INS_PSO: Final = 0x2A
PSO_COMPUTE_SIGNATURE: Final = (0x9E, 0x9A)

SW_OK: Final = 0x9000
SW_END_OF_FILE: Final = 0x6282
SW_MEMORY_FAILURE: Final = 0x6581
SW_WRONG_LENGTH: Final = 0x6700
SW_SECURITY_NOT_SATISFIED: Final = 0x6982
SW_PIN_BLOCKED: Final = 0x6983
SW_CONDITIONS_NOT_SATISFIED: Final = 0x6985
SW_NO_CURRENT_EF: Final = 0x6986
SW_WRONG_DATA: Final = 0x6A80
SW_FUNCTION_NOT_SUPPORTED: Final = 0x6A81
SW_FILE_NOT_FOUND: Final = 0x6A82
SW_WRONG_P1P2: Final = 0x6A86
SW_REFERENCE_NOT_FOUND: Final = 0x6A88
SW_OFFSET_OUTSIDE_EF: Final = 0x6B00
SW_INS_NOT_SUPPORTED: Final = 0x6D00
SW_CLA_NOT_SUPPORTED: Final = 0x6E00
SW_UNKNOWN: Final = 0x6F00

PIN_KDF: Final = "pbkdf2-sha256"
DEFAULT_PIN_ITERATIONS: Final = 10_000


def _atr(historical: bytes) -> bytes:
    """A T=1-only ATR: TS, T0 (TD1 present, K historical bytes), TD1 = T=1, TCK."""
    body = bytes([0x80 | len(historical), 0x01]) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return bytes([0x3B]) + body + bytes([tck])


EPORT_ATR: Final = _atr(b"EPORT-VC")
FOREIGN_ATR: Final = _atr(b"OTHER-VC")


class Signer(Protocol):
    """The card's private key: signs a message (SM2 with SM3 in production)."""

    def sign(self, message: bytes) -> bytes:
        """The DER-encoded signature of ``message``."""
        ...


class CardApplet(Protocol):
    """What the vpcd emulator serves: an ATR, power events and command APDUs."""

    @property
    def atr(self) -> bytes: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def process(self, command: bytes) -> bytes: ...


def hash_pin(pin: str, salt: bytes, iterations: int) -> bytes:
    """The PIN's PBKDF2-HMAC-SHA256 hash, as the card file stores it."""
    return hashlib.pbkdf2_hmac("sha256", pin.encode("ascii"), salt, iterations)


def is_valid_pin(pin: str) -> bool:
    """True for exactly eight ASCII digits, the E-Port PIN format."""
    return len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()


@dataclass(frozen=True)
class PinRecord:
    """The card's PIN reference data and retry counter (the PIN itself is never kept)."""

    salt: bytes
    hash: bytes
    iterations: int
    tries_max: int
    tries_left: int

    def __post_init__(self) -> None:
        # 63Cx carries the tries left in one nibble, so a counter above 15 could not be reported.
        if not 1 <= self.tries_max <= MAX_PIN_TRIES:
            raise ValueError(f"PIN tries must be between 1 and {MAX_PIN_TRIES}")
        if not 0 <= self.tries_left <= self.tries_max:
            raise ValueError("PIN tries left must be between 0 and the maximum")

    @classmethod
    def new(
        cls,
        pin: str,
        *,
        salt: bytes,
        tries_max: int = 10,
        iterations: int = DEFAULT_PIN_ITERATIONS,
    ) -> PinRecord:
        """A fresh record for ``pin`` with a full retry counter."""
        if not is_valid_pin(pin):
            raise ValueError(f"the PIN must be {PIN_LENGTH} digits")
        return cls(salt, hash_pin(pin, salt, iterations), iterations, tries_max, tries_max)

    def matches(self, pin: str) -> bool:
        """True if ``pin`` is the card's PIN."""
        return hmac.compare_digest(hash_pin(pin, self.salt, self.iterations), self.hash)


@dataclass(frozen=True)
class Command:
    """A parsed short command APDU."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None  # expected response length, 1..256; None when absent


class WrongLength(Exception):
    """The APDU's length bytes do not match its body."""


def parse_command(apdu: bytes) -> Command:
    """Split a short command APDU (cases 1 to 4); extended length is not supported."""
    if len(apdu) < 4:
        raise WrongLength
    cla, ins, p1, p2 = apdu[:4]
    body = apdu[4:]
    if not body:
        return Command(cla, ins, p1, p2, b"", None)
    if len(body) == 1:
        return Command(cla, ins, p1, p2, b"", body[0] or 256)
    lc = body[0]
    if lc == 0:
        raise WrongLength
    if len(body) == 1 + lc:
        return Command(cla, ins, p1, p2, body[1:], None)
    if len(body) == 2 + lc:
        return Command(cla, ins, p1, p2, body[1 : 1 + lc], body[-1] or 256)
    raise WrongLength


def _sw(status: int, data: bytes = b"") -> bytes:
    return data + status.to_bytes(2, "big")


def _fcp(file_id: int, size: int) -> bytes:
    # 80: file size, 82: working EF with transparent structure, 83: file identifier.
    body = (
        b"\x80\x02"
        + size.to_bytes(2, "big")
        + b"\x82\x01\x01"
        + b"\x83\x02"
        + file_id.to_bytes(2, "big")
    )
    return b"\x62" + bytes([len(body)]) + body


class EPortApplet:
    """The E-Port application of a virtual card.

    ``persist_pin_tries`` is called with the new counter before a VERIFY's outcome is answered,
    so a card pulled mid-command never forgets a wrong try; if it raises, the card answers
    ``6581`` (memory failure) and reveals nothing.
    """

    def __init__(
        self,
        files: Mapping[int, bytes],
        pin: PinRecord,
        signer: Signer,
        *,
        persist_pin_tries: Callable[[int], None] | None = None,
    ) -> None:
        self._files = dict(files)
        self._pin = pin
        self._signer = signer
        self._persist = persist_pin_tries
        self._selected = False
        self._current_ef: int | None = None
        self._verified = False

    @property
    def atr(self) -> bytes:
        return EPORT_ATR

    @property
    def pin_tries_left(self) -> int:
        return self._pin.tries_left

    @property
    def verified(self) -> bool:
        return self._verified

    def power_off(self) -> None:
        self._clear_session()

    def reset(self) -> None:
        self._clear_session()

    def _clear_session(self) -> None:
        self._selected = False
        self._current_ef = None
        self._verified = False

    def process(self, command: bytes) -> bytes:
        """Answer one command APDU with its response APDU (data + SW1 SW2)."""
        if len(command) >= 1 and command[0] != CLA:
            return _sw(SW_CLA_NOT_SUPPORTED)
        try:
            apdu = parse_command(command)
        except WrongLength:
            return _sw(SW_WRONG_LENGTH)
        handler = {
            INS_SELECT: self._select,
            INS_READ_BINARY: self._read_binary,
            INS_VERIFY: self._verify,
            INS_PSO: self._pso,
        }.get(apdu.ins)
        if handler is None:
            return _sw(SW_INS_NOT_SUPPORTED)
        return handler(apdu)

    def _select(self, apdu: Command) -> bytes:
        if apdu.p2 not in (0x00, 0x04, 0x0C):
            return _sw(SW_WRONG_P1P2)
        if apdu.p1 == 0x04:
            if apdu.data != EPORT_AID:
                return _sw(SW_FILE_NOT_FOUND)
            self._clear_session()
            self._selected = True
            if apdu.p2 == 0x0C:
                return _sw(SW_OK)
            return _sw(
                SW_OK, b"\x6f" + bytes([len(EPORT_AID) + 2, 0x84, len(EPORT_AID)]) + EPORT_AID
            )
        if apdu.p1 in (0x00, 0x02):
            if len(apdu.data) != 2:
                return _sw(SW_WRONG_LENGTH)
            file_id = int.from_bytes(apdu.data, "big")
            if not self._selected or file_id not in self._files:
                return _sw(SW_FILE_NOT_FOUND)
            self._current_ef = file_id
            if apdu.p2 == 0x0C:
                return _sw(SW_OK)
            return _sw(SW_OK, _fcp(file_id, len(self._files[file_id])))
        return _sw(SW_WRONG_P1P2)

    def _read_binary(self, apdu: Command) -> bytes:
        if apdu.p1 & 0x80:
            return _sw(SW_FUNCTION_NOT_SUPPORTED)  # short EF identifiers
        if apdu.data or apdu.le is None:
            return _sw(SW_WRONG_LENGTH)
        if not self._selected:
            return _sw(SW_CONDITIONS_NOT_SATISFIED)
        if self._current_ef is None:
            return _sw(SW_NO_CURRENT_EF)
        content = self._files[self._current_ef]
        offset = (apdu.p1 << 8) | apdu.p2
        if offset > len(content):
            return _sw(SW_OFFSET_OUTSIDE_EF)
        chunk = content[offset : offset + apdu.le]
        return _sw(SW_OK if len(chunk) == apdu.le else SW_END_OF_FILE, chunk)

    def _verify(self, apdu: Command) -> bytes:
        if apdu.p1 != 0x00:
            return _sw(SW_WRONG_P1P2)
        if apdu.p2 != PIN_REFERENCE:
            return _sw(SW_REFERENCE_NOT_FOUND)
        if apdu.le is not None:
            return _sw(SW_WRONG_LENGTH)
        if not self._selected:
            return _sw(SW_CONDITIONS_NOT_SATISFIED)
        tries_left = self._pin.tries_left
        if not apdu.data:
            if tries_left == 0:
                return _sw(SW_PIN_BLOCKED)
            return _sw(SW_OK if self._verified else 0x63C0 | tries_left)
        if len(apdu.data) != PIN_LENGTH:
            return _sw(SW_WRONG_LENGTH)
        try:
            pin = apdu.data.decode("ascii")
        except UnicodeDecodeError:
            return _sw(SW_WRONG_DATA)
        if not is_valid_pin(pin):
            return _sw(SW_WRONG_DATA)
        if tries_left == 0:
            return _sw(SW_PIN_BLOCKED)
        self._verified = False
        # Count the try before comparing, as a card does, so tearing cannot win a free guess.
        if not self._set_tries(tries_left - 1):
            return _sw(SW_MEMORY_FAILURE)
        if not self._pin.matches(pin):
            return _sw(0x63C0 | self._pin.tries_left)
        if not self._set_tries(self._pin.tries_max):
            return _sw(SW_MEMORY_FAILURE)
        self._verified = True
        return _sw(SW_OK)

    def _set_tries(self, tries_left: int) -> bool:
        if self._persist is not None:
            try:
                self._persist(tries_left)
            except Exception:
                return False
        self._pin = replace(self._pin, tries_left=tries_left)
        return True

    def _pso(self, apdu: Command) -> bytes:
        if (apdu.p1, apdu.p2) != PSO_COMPUTE_SIGNATURE:
            return _sw(SW_WRONG_P1P2)
        if not 1 <= len(apdu.data) <= MAX_CHALLENGE:
            return _sw(SW_WRONG_LENGTH)
        if not self._selected:
            return _sw(SW_CONDITIONS_NOT_SATISFIED)
        if not self._verified:
            return _sw(SW_SECURITY_NOT_SATISFIED)
        try:
            signature = self._signer.sign(apdu.data)
        except Exception:
            return _sw(SW_UNKNOWN)
        if len(signature) > (apdu.le or 256):
            return _sw(SW_UNKNOWN)
        return _sw(SW_OK, signature)


class ForeignApplet:
    """A card that is not an E-Port card: it knows no E-Port AID and no E-Port command."""

    AID: Final = bytes.fromhex("A000000003101001")

    def __init__(self) -> None:
        self._selected = False

    @property
    def atr(self) -> bytes:
        return FOREIGN_ATR

    def power_off(self) -> None:
        self._selected = False

    def reset(self) -> None:
        self._selected = False

    def process(self, command: bytes) -> bytes:
        """Answer SELECT of its own AID; everything else is unknown to it."""
        if len(command) >= 1 and command[0] != CLA:
            return _sw(SW_CLA_NOT_SUPPORTED)
        try:
            apdu = parse_command(command)
        except WrongLength:
            return _sw(SW_WRONG_LENGTH)
        if apdu.ins != INS_SELECT:
            return _sw(SW_INS_NOT_SUPPORTED)
        if apdu.p1 != 0x04 or apdu.data != self.AID:
            return _sw(SW_FILE_NOT_FOUND)
        self._selected = True
        return _sw(SW_OK)
