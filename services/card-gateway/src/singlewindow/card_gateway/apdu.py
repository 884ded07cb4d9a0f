"""The E-Port card protocol (ISO/IEC 7816-4), pure: command APDUs out, typed results back.

``EPortCard`` drives a card through any ``Transport`` (pyscard in ``pcsc.py``, the applet itself
in tests). The card's application is ``F0 53 57 45 50 4F 52 54 01``; EF ``0101`` holds the card
data as compact UTF-8 JSON, EF ``0102`` the DER X.509 certificate; the PIN is eight digits,
reference ``01``; signing is PSO: COMPUTE DIGITAL SIGNATURE (``00 2A 9E 9A``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NoReturn, Protocol

from pydantic import ValidationError
from singlewindow.contracts.card_gateway import CardData

EPORT_AID: Final = bytes.fromhex("F0535745504F525401")
EF_CARD_DATA: Final = 0x0101
EF_CERTIFICATE: Final = 0x0102
PIN_REFERENCE: Final = 0x01
PIN_LENGTH: Final = 8
MAX_CHALLENGE: Final = 64
READ_CHUNK: Final = 256
MAX_FILE_SIZE: Final = 0x7FFF  # READ BINARY offsets have 15 bits

SW_OK: Final = 0x9000


class Transport(Protocol):
    """Sends one command APDU and returns the response data, SW1 and SW2."""

    def transmit(self, apdu: bytes) -> tuple[bytes, int, int]: ...


class CardError(Exception):
    """A card operation failed; each subclass is one thing the user can be told."""


class NoReader(CardError):
    """The reader is not there (or PC/SC has no readers at all)."""


class PcscUnavailable(NoReader):
    """The PC/SC service (pcscd) is not running or not reachable."""


class NoCard(CardError):
    """The reader is empty."""


class CardRemoved(CardError):
    """The card was pulled out (or stopped answering) during the operation."""


class CardInUse(CardError):
    """Another application holds the card exclusively."""


class CardCommunicationError(CardError):
    """PC/SC failed to exchange with the card for another reason (e.g. reset by someone else)."""


class NotAnEPortCard(CardError):
    """The card in the reader has no E-Port application."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"the card is not an E-Port card (SELECT answered {sw:04X})")
        self.sw = sw


class PinIncorrect(CardError):
    """Wrong PIN; ``tries_left`` more wrong PINs block the card (0: it is blocked now)."""

    def __init__(self, tries_left: int) -> None:
        if tries_left:
            message = f"wrong PIN, {tries_left} {'try' if tries_left == 1 else 'tries'} left"
        else:
            message = "wrong PIN; no tries left, the card is now blocked"
        super().__init__(message)
        self.tries_left = tries_left


class CardBlocked(CardError):
    """The PIN is blocked: the card refuses every PIN, right or wrong, until it is unblocked."""

    def __init__(self) -> None:
        super().__init__("the card's PIN is blocked; have the card unblocked by its issuer")


class NotVerified(CardError):
    """The card wants its PIN verified before it signs."""

    def __init__(self) -> None:
        super().__init__("the PIN has not been verified")


class InvalidPin(CardError, ValueError):
    """The PIN is not eight digits; it was not sent to the card (no try is used up)."""


class CardProtocolError(CardError):
    """The card answered a status word or data the protocol does not expect."""

    def __init__(self, command: str, sw: int, detail: str = "") -> None:
        super().__init__(f"{command}: card answered {sw:04X}{f' ({detail})' if detail else ''}")
        self.command = command
        self.sw = sw


def decode_card_data(raw: bytes) -> CardData:
    """Parse EF 0101: compact UTF-8 JSON in the contract's shape (unknown keys are ignored)."""
    try:
        return CardData.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'data'}: {e['msg']}" for e in exc.errors()
        )
        raise CardProtocolError("READ BINARY 0101", SW_OK, f"bad card data: {problems}") from exc


def _apdu(ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    command = bytes([0x00, ins, p1, p2])
    if data:
        command += bytes([len(data)]) + data
    if le is not None:
        command += bytes([le % 256])
    return command


def select_aid(aid: bytes = EPORT_AID) -> bytes:
    """SELECT by DF name, no response data wanted."""
    return _apdu(0xA4, 0x04, 0x0C, aid)


def select_ef(file_id: int) -> bytes:
    """SELECT an EF of the current application, asking for its FCP (to learn the size)."""
    return _apdu(0xA4, 0x02, 0x04, file_id.to_bytes(2, "big"), 0)


def read_binary(offset: int, length: int = READ_CHUNK) -> bytes:
    """READ BINARY of up to ``length`` (1..256) bytes at ``offset`` of the current EF."""
    if not 0 <= offset <= MAX_FILE_SIZE or not 1 <= length <= READ_CHUNK:
        raise ValueError("offset or length out of range")
    return _apdu(0xB0, offset >> 8, offset & 0xFF, le=length)


def verify(pin: str) -> bytes:
    """VERIFY the PIN (eight ASCII digits)."""
    if not (len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()):
        raise InvalidPin(f"the PIN must be {PIN_LENGTH} digits")
    return _apdu(0x20, 0x00, PIN_REFERENCE, pin.encode("ascii"))


def verify_status() -> bytes:
    """VERIFY with no data: asks the PIN status without trying a PIN."""
    return _apdu(0x20, 0x00, PIN_REFERENCE)


def compute_signature(challenge: bytes) -> bytes:
    """PSO: COMPUTE DIGITAL SIGNATURE over a challenge of 1..64 bytes."""
    if not 1 <= len(challenge) <= MAX_CHALLENGE:
        raise ValueError(f"the challenge must be 1 to {MAX_CHALLENGE} bytes")
    return _apdu(0x2A, 0x9E, 0x9A, challenge, 0)


def file_size_from_fcp(fcp: bytes) -> int:
    """The size (tag 80) in an FCP template (tag 62)."""
    if len(fcp) < 2 or fcp[0] != 0x62 or fcp[1] != len(fcp) - 2:
        raise ValueError("not an FCP template")
    position = 2
    while position + 2 <= len(fcp):
        tag, length = fcp[position], fcp[position + 1]
        value = fcp[position + 2 : position + 2 + length]
        if len(value) != length:
            break
        if tag == 0x80:
            return int.from_bytes(value, "big")
        position += 2 + length
    raise ValueError("the FCP has no file size")


def is_der_signature(signature: bytes) -> bool:
    """True if ``signature`` is a DER SEQUENCE of two INTEGERs (an SM2/ECDSA signature)."""
    if len(signature) < 8 or signature[0] != 0x30 or signature[1] != len(signature) - 2:
        return False
    position = 2
    for _ in range(2):
        if position + 2 > len(signature) or signature[position] != 0x02:
            return False
        length = signature[position + 1]
        if length == 0 or position + 2 + length > len(signature):
            return False
        position += 2 + length
    return position == len(signature)


@dataclass(frozen=True)
class PinStatus:
    """What VERIFY without a PIN tells: verified already, or how many tries are left."""

    verified: bool
    tries_left: int | None  # None once verified: the card does not say


class EPortCard:
    """One E-Port card, reached through ``transport``.

    The application is selected on first use (selecting it again would clear the PIN status).
    A PIN is sent at most once per ``verify_pin`` call; once the card has said it is blocked,
    this object refuses to send another VERIFY.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._selected = False
        self._blocked = False

    @property
    def blocked(self) -> bool:
        """True once the card has reported its PIN blocked."""
        return self._blocked

    def _send(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw1, sw2 = self._transport.transmit(apdu)
        return data, (sw1 << 8) | sw2

    def select(self) -> None:
        """SELECT the E-Port application; any refusal means this is not an E-Port card."""
        _, sw = self._send(select_aid())
        if sw != SW_OK:
            raise NotAnEPortCard(sw)
        self._selected = True

    def _ensure_selected(self) -> None:
        if not self._selected:
            self.select()

    def read_file(self, file_id: int) -> bytes:
        """The whole content of an EF of the application."""
        self._ensure_selected()
        name = f"SELECT {file_id:04X}"
        fcp, sw = self._send(select_ef(file_id))
        if sw != SW_OK:
            raise CardProtocolError(name, sw, "file not found" if sw == 0x6A82 else "")
        try:
            size = file_size_from_fcp(fcp)
        except ValueError as exc:
            raise CardProtocolError(name, sw, str(exc)) from exc
        content = bytearray()
        while len(content) < size:
            offset = len(content)
            chunk, sw = self._send(read_binary(offset, min(READ_CHUNK, size - offset)))
            if sw not in (SW_OK, 0x6282) or not chunk:
                raise CardProtocolError(f"READ BINARY {file_id:04X} at {offset}", sw)
            content += chunk
        return bytes(content[:size])

    def read_card_data(self) -> CardData:
        """The card data of EF 0101."""
        return decode_card_data(self.read_file(EF_CARD_DATA))

    def read_certificate(self) -> bytes:
        """The card's X.509 certificate (DER) from EF 0102."""
        return self.read_file(EF_CERTIFICATE)

    def pin_status(self) -> PinStatus:
        """Ask the PIN status without trying a PIN (VERIFY with no data)."""
        if self._blocked:
            raise CardBlocked
        self._ensure_selected()
        _, sw = self._send(verify_status())
        if sw == SW_OK:
            return PinStatus(verified=True, tries_left=None)
        if sw & 0xFFF0 == 0x63C0:
            return PinStatus(verified=False, tries_left=sw & 0x0F)
        self._pin_refusal(sw)

    def verify_pin(self, pin: str) -> None:
        """Present the PIN once; never retried. Raises ``PinIncorrect``, ``CardBlocked``."""
        command = verify(pin)  # a malformed PIN is refused here, before it costs a try
        if self._blocked:
            raise CardBlocked
        self._ensure_selected()
        _, sw = self._send(command)
        if sw == SW_OK:
            return
        if sw & 0xFFF0 == 0x63C0:
            tries_left = sw & 0x0F
            self._blocked = tries_left == 0
            raise PinIncorrect(tries_left)
        self._pin_refusal(sw)

    def _pin_refusal(self, sw: int) -> NoReturn:
        if sw == 0x6983:
            self._blocked = True
            raise CardBlocked
        raise CardProtocolError("VERIFY", sw)

    def sign(self, challenge: bytes) -> bytes:
        """The card's DER signature over ``challenge``; the PIN must have been verified."""
        command = compute_signature(challenge)
        self._ensure_selected()
        signature, sw = self._send(command)
        if sw == 0x6982:
            raise NotVerified
        if sw != SW_OK:
            raise CardProtocolError("COMPUTE DIGITAL SIGNATURE", sw)
        if not is_der_signature(signature):
            raise CardProtocolError("COMPUTE DIGITAL SIGNATURE", sw, "not a DER signature")
        return signature
