"""PC/SC through pyscard: readers, connections to cards, and insert/remove events.

Every call here blocks (pcscd answers over a socket, a card takes its time), so the service
calls them through ``asyncio.to_thread``. PC/SC result codes become the typed errors of
``apdu.py``: no pcscd → ``PcscUnavailable``, unknown reader → ``NoReader``, empty reader →
``NoCard``, card pulled out mid-exchange → ``CardRemoved``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Self

from singlewindow.card_gateway.apdu import (
    CardCommunicationError,
    CardInUse,
    CardRemoved,
    NoCard,
    NoReader,
    PcscUnavailable,
)
from smartcard import scard  # type: ignore[import-untyped]

# pcsc-lite's pseudo reader whose state changes when a reader is plugged in or out.
PNP_NOTIFICATION: Final = "\\\\?PnP?\\Notification"


def _code(name: str) -> int:
    return int(getattr(scard, name)) & 0xFFFFFFFF


SUCCESS: Final = _code("SCARD_S_SUCCESS")
_NO_SERVICE: Final = {_code("SCARD_E_NO_SERVICE"), _code("SCARD_E_SERVICE_STOPPED")}
_NO_READERS: Final = _code("SCARD_E_NO_READERS_AVAILABLE")
_TIMEOUT: Final = _code("SCARD_E_TIMEOUT")
_CANCELLED: Final = _code("SCARD_E_CANCELLED")
_UNKNOWN_READER: Final = {_code("SCARD_E_UNKNOWN_READER"), _code("SCARD_E_READER_UNAVAILABLE")}
_NO_CARD: Final = {_code("SCARD_E_NO_SMARTCARD"), _code("SCARD_W_REMOVED_CARD")}
_SHARING: Final = _code("SCARD_E_SHARING_VIOLATION")
# What a transmit fails with when the card goes: removed once pcscd's poll has noticed,
# not transacted / comm error if the exchange itself broke first.
_GONE: Final = {
    _code("SCARD_W_REMOVED_CARD"),
    _code("SCARD_E_NO_SMARTCARD"),
    _code("SCARD_E_NOT_TRANSACTED"),
    _code("SCARD_E_READER_UNAVAILABLE"),
    _code("SCARD_E_UNKNOWN_READER"),
    _code("SCARD_E_COMM_DATA_LOST"),
    _code("SCARD_F_COMM_ERROR"),
    _code("SCARD_W_UNPOWERED_CARD"),
    _code("SCARD_W_UNRESPONSIVE_CARD"),
}
_RESET: Final = _code("SCARD_W_RESET_CARD")

_STATE_UNAWARE: Final = int(scard.SCARD_STATE_UNAWARE)
_STATE_CHANGED: Final = int(scard.SCARD_STATE_CHANGED)
_STATE_PRESENT: Final = int(scard.SCARD_STATE_PRESENT)
_STATE_UNKNOWN: Final = int(scard.SCARD_STATE_UNKNOWN)
_STATE_UNAVAILABLE: Final = int(scard.SCARD_STATE_UNAVAILABLE)
_PROTOCOL_T0: Final = int(scard.SCARD_PROTOCOL_T0)
_PROTOCOL_T1: Final = int(scard.SCARD_PROTOCOL_T1)

Disposition = Literal["leave", "reset", "unpower"]
_DISPOSITIONS: Final[dict[Disposition, int]] = {
    "leave": int(scard.SCARD_LEAVE_CARD),
    "reset": int(scard.SCARD_RESET_CARD),
    "unpower": int(scard.SCARD_UNPOWER_CARD),
}


def _message(hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult)} (0x{hresult:08X})"


def _result(value: Any) -> int:
    return int(value) & 0xFFFFFFFF


def _card_present(state: int) -> bool:
    return bool(state & _STATE_PRESENT) and not state & (_STATE_UNKNOWN | _STATE_UNAVAILABLE)


@dataclass(frozen=True)
class ReaderStatus:
    """A reader and what is in it."""

    name: str
    card_present: bool
    atr: bytes | None
    insertions: int = 0
    """pcsc-lite's count of cards in and out of this reader (the event state's upper 16 bits):
    the same count means the same card is still in."""


@dataclass(frozen=True)
class CardEvent:
    """A card went into (``inserted``) or out of (``removed``) a reader."""

    kind: Literal["inserted", "removed"]
    reader: str
    atr: bytes | None = None


class PcscContext:
    """A PC/SC context: the session with pcscd that lists readers and connects to cards."""

    def __init__(self) -> None:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        hresult = _result(hresult)
        if hresult != SUCCESS:
            raise PcscUnavailable(f"cannot reach the PC/SC service (pcscd): {_message(hresult)}")
        self._context: Any = context
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            scard.SCardReleaseContext(self._context)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def handle(self) -> Any:
        return self._context

    def readers(self) -> list[str]:
        """The names of the readers pcscd knows, in its order."""
        hresult, names = scard.SCardListReaders(self._context, [])
        hresult = _result(hresult)
        if hresult == _NO_READERS:
            return []
        if hresult in _NO_SERVICE:
            raise PcscUnavailable(f"the PC/SC service went away: {_message(hresult)}")
        if hresult != SUCCESS:
            raise PcscUnavailable(f"cannot list readers: {_message(hresult)}")
        return [str(name) for name in names]

    def status_change(
        self, states: Iterable[tuple[str, int]], timeout_ms: int
    ) -> list[tuple[str, int, bytes]] | None:
        """SCardGetStatusChange: the new (reader, event state, ATR), or None on timeout/cancel."""
        hresult, new_states = scard.SCardGetStatusChange(self._context, timeout_ms, list(states))
        hresult = _result(hresult)
        if hresult in (_TIMEOUT, _CANCELLED):
            return None
        if hresult in _UNKNOWN_READER:
            return None  # a reader went away while waiting; the caller lists readers again
        if hresult != SUCCESS:
            raise PcscUnavailable(f"cannot watch the readers: {_message(hresult)}")
        return [(str(name), int(state), bytes(atr)) for name, state, atr in new_states]

    def reader_states(self) -> list[ReaderStatus]:
        """Each reader with whether a card is in it, and the card's ATR."""
        names = self.readers()
        if not names:
            return []
        states = self.status_change([(name, _STATE_UNAWARE) for name in names], 0) or []
        return [
            ReaderStatus(name, True, atr or None, state >> 16)
            if _card_present(state)
            else ReaderStatus(name, False, None, state >> 16)
            for name, state, atr in states
        ]

    def connect(
        self, reader: str, *, exclusive: bool = True, disposition: Disposition = "reset"
    ) -> PcscConnection:
        """Connect to the card in ``reader`` (exclusively by default: one operation at a time;
        closing resets the card, so a verified PIN does not outlive the connection)."""
        share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        hresult, card, protocol = scard.SCardConnect(
            self._context, reader, share, _PROTOCOL_T0 | _PROTOCOL_T1
        )
        hresult = _result(hresult)
        if hresult == SUCCESS:
            return PcscConnection(self, reader, card, int(protocol), _DISPOSITIONS[disposition])
        if hresult in _UNKNOWN_READER:
            raise NoReader(f"no reader named {reader!r}")
        if hresult in _NO_CARD:
            raise NoCard(f"no card in {reader}")
        if hresult == _SHARING:
            raise CardInUse(f"the card in {reader} is in use by another application")
        if hresult in _NO_SERVICE:
            raise PcscUnavailable(f"the PC/SC service went away: {_message(hresult)}")
        raise CardCommunicationError(f"cannot connect to the card in {reader}: {_message(hresult)}")


class PcscConnection:
    """A connection to one card: the ``Transport`` that ``EPortCard`` speaks through."""

    def __init__(
        self, context: PcscContext, reader: str, card: Any, protocol: int, disposition: int
    ) -> None:
        self._context = context
        self._card: Any = card
        self._pci: Any = scard.SCARD_PCI_T1 if protocol == _PROTOCOL_T1 else scard.SCARD_PCI_T0
        self._disposition = disposition
        self._open = True
        self._gone = False
        self.reader = reader

    def atr(self) -> bytes:
        """The card's answer to reset."""
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._card)
        self._check(_result(hresult))
        return bytes(atr)

    def transmit(self, apdu: bytes) -> tuple[bytes, int, int]:
        """Send one command APDU; the response data, SW1 and SW2."""
        if not self._open:
            raise CardCommunicationError("the connection to the card is closed")
        hresult, response = scard.SCardTransmit(self._card, self._pci, list(apdu))
        self._check(_result(hresult))
        if len(response) < 2:
            # What vpcd hands back when the card went during this very command: gone, as above.
            self._gone = True
            raise CardRemoved(f"the card in {self.reader} stopped answering mid-command")
        return bytes(response[:-2]), int(response[-2]), int(response[-1])

    def _check(self, hresult: int) -> None:
        if hresult == SUCCESS:
            return
        if hresult in _GONE:
            self._gone = True
            raise CardRemoved(f"the card was removed from {self.reader} ({_message(hresult)})")
        if hresult == _RESET:
            raise CardCommunicationError(f"the card in {self.reader} was reset by another program")
        if hresult in _NO_SERVICE:
            raise PcscUnavailable(f"the PC/SC service went away: {_message(hresult)}")
        raise CardCommunicationError(f"exchange with {self.reader} failed: {_message(hresult)}")

    def close(self) -> None:
        """Disconnect (a card already pulled out is not an error here)."""
        if self._open:
            self._open = False
            # Resetting a card that is gone fails, and pcscd then marks the reader empty behind
            # the back of its polling thread, which may miss the next card put in.
            disposition = _DISPOSITIONS["leave"] if self._gone else self._disposition
            scard.SCardDisconnect(self._card, disposition)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def list_readers() -> list[str]:
    """The reader names (empty when pcscd has none)."""
    with PcscContext() as context:
        return context.readers()


def reader_states() -> list[ReaderStatus]:
    """Every reader and what is in it."""
    with PcscContext() as context:
        return context.reader_states()


@contextmanager
def open_card(
    reader: str | None = None, *, exclusive: bool = True, disposition: Disposition = "reset"
) -> Iterator[PcscConnection]:
    """Connect to the card in ``reader``, or, without a name, in the only reader holding one.

    Without a name: no reader at all → ``NoReader``; no card anywhere → ``NoCard``; cards in
    several readers → ``NoReader`` asking which one.
    """
    with PcscContext() as context:
        if reader is None:
            states = context.reader_states()
            if not states:
                raise NoReader("no card reader is connected")
            holding = [state.name for state in states if state.card_present]
            if not holding:
                raise NoCard("no card in any reader")
            if len(holding) > 1:
                raise NoReader(f"cards in several readers, name one of: {', '.join(holding)}")
            reader = holding[0]
        with context.connect(reader, exclusive=exclusive, disposition=disposition) as connection:
            yield connection


class CardMonitor:
    """Reports cards going into and out of readers (readers coming and going included).

    ``wait`` blocks in ``SCardGetStatusChange`` for at most ``timeout`` seconds and returns the
    changes since the previous call (since construction for the first one; ``initial`` holds
    the state seen then). ``cancel`` (from another thread) makes a pending ``wait`` return.
    """

    def __init__(self) -> None:
        self._context = PcscContext()
        self._states: dict[str, int] = {}
        self._atrs: dict[str, bytes | None] = {}
        self.initial: list[ReaderStatus] = []
        for name, state, atr in self._probe(self._context.readers()):
            self._remember(name, state, atr)
            self.initial.append(ReaderStatus(name, _card_present(state), self._atrs[name]))

    def _probe(self, names: list[str]) -> list[tuple[str, int, bytes]]:
        if not names:
            return []
        return self._context.status_change([(name, _STATE_UNAWARE) for name in names], 0) or []

    def _remember(self, name: str, state: int, atr: bytes) -> None:
        self._states[name] = state & ~_STATE_CHANGED
        self._atrs[name] = (atr or None) if _card_present(state) else None

    def wait(self, timeout: float) -> list[CardEvent]:
        """The insertions and removals since the last call; empty after ``timeout`` seconds."""
        names = self._context.readers()
        events = self._sync_readers(names)
        if events:
            return events
        watched = [(name, self._states[name]) for name in names]
        watched.append((PNP_NOTIFICATION, len(names) << 16))
        changed = self._context.status_change(watched, max(0, int(timeout * 1000)))
        if changed is None:
            return []
        for name, state, atr in changed:
            if name == PNP_NOTIFICATION or name not in self._states:
                continue
            events += self._transition(name, state, atr)
        return events

    def _sync_readers(self, names: list[str]) -> list[CardEvent]:
        events: list[CardEvent] = []
        for gone in [name for name in self._states if name not in names]:
            if _card_present(self._states.pop(gone)):
                events.append(CardEvent("removed", gone))
            self._atrs.pop(gone, None)
        for name, state, atr in self._probe([name for name in names if name not in self._states]):
            self._remember(name, state, atr)
            if _card_present(state):
                events.append(CardEvent("inserted", name, self._atrs[name]))
        return events

    def _transition(self, name: str, state: int, atr: bytes) -> list[CardEvent]:
        before = self._states[name]
        was, now = _card_present(before), _card_present(state)
        # The upper 16 bits count insertions and removals: out-and-in between two calls shows.
        swapped = was and now and (before >> 16) != (state >> 16)
        self._remember(name, state, atr)
        events: list[CardEvent] = []
        if was and (not now or swapped):
            events.append(CardEvent("removed", name))
        if now and (not was or swapped):
            events.append(CardEvent("inserted", name, self._atrs[name]))
        return events

    def cancel(self) -> None:
        """Make a ``wait`` blocked in another thread return now."""
        scard.SCardCancel(self._context.handle)

    def close(self) -> None:
        self._context.close()
