"""Card operations as the service offers them: one at a time per card, each in one connection.

Every operation runs in a worker thread (PC/SC blocks) on its own exclusive connection, which
resets the card when it closes, so a verified PIN never outlives the request that verified it.
An asyncio lock per reader puts concurrent requests in a queue: a request waits up to
``busy_wait`` seconds for the one before it, then is refused with CARD_BUSY. A card held by
another program on the machine (PC/SC sharing violation) is CARD_BUSY at once.

The PIN is used once, never kept, logged or retried: before it is sent the card is asked its PIN
status (VERIFY with no data), so a blocked card never receives it, and a card with one try left
receives it only when the request says `last_try`: no caller runs a card down to blocked by
accident, or without saying so. The holder's full ID number leaves the gateway only from a card
session that verified the PIN; otherwise it is masked as events mask it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from functools import partial
from typing import Final, TypeVar

from singlewindow.card_gateway.apdu import (
    CardBlocked,
    CardCommunicationError,
    CardError,
    CardInUse,
    CardProtocolError,
    CardRemoved,
    EPortCard,
    NoCard,
    NoReader,
    NotAnEPortCard,
    NotVerified,
    PcscUnavailable,
    PinIncorrect,
)
from singlewindow.card_gateway.pcsc import PcscContext, ReaderStatus
from singlewindow.cardcrypto import certificate_to_pem
from singlewindow.contracts.card_gateway import (
    CardData,
    CardView,
    PinVerified,
    ReaderList,
    ReaderView,
    SignedChallenge,
)
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.identifiers import mask_id_number

T = TypeVar("T")


class LastPinTry(CardError):
    """The card has one PIN try left and the request did not say it accepts that risk."""


MIN_CHALLENGE: Final = 16
MAX_CHALLENGE: Final = 64
IDENTITY_WAIT: Final = 2.0


def refusal(exc: CardError, reader: str | None) -> DomainError:
    """The error reply for a card error, in words a user can act on."""
    where = f"reader {reader}" if reader else "any reader"
    match exc:
        case PcscUnavailable():
            return DomainError(
                ErrorCode.NO_READER,
                "no card reader found: the PC/SC service (pcscd) is not running",
            )
        case NoReader():
            message = f"no card reader named {reader!r}" if reader else "no card reader found"
            return DomainError(ErrorCode.NO_READER, message, _field("reader", message))
        case NoCard():
            return DomainError(ErrorCode.NO_CARD, f"no card in {where}")
        case CardRemoved():
            return DomainError(
                ErrorCode.CARD_REMOVED,
                f"card was removed from {where} during the operation; put it back and try again",
            )
        case CardInUse():
            return DomainError(
                ErrorCode.CARD_BUSY, f"the card in {where} is in use by another program"
            )
        case NotAnEPortCard():
            return DomainError(
                ErrorCode.NOT_AN_EPORT_CARD, f"the card in {where} is not an E-Port card"
            )
        case LastPinTry():
            message = (
                "the card has one PIN try left: a wrong PIN now blocks it; no PIN was sent. "
                "Ask again with last_try to use it (swctl: --last-pin-try)"
            )
            return DomainError(ErrorCode.ACTION_REQUIRED, message, _field("last_try", message))
        case PinIncorrect(tries_left=0):
            message = (
                "wrong PIN: the card is now blocked after too many wrong PINs; "
                "it must be unblocked by the issuer"
            )
            return DomainError(ErrorCode.CARD_BLOCKED, message, _field("pin", message))
        case PinIncorrect(tries_left=tries_left):
            message = f"wrong PIN: {tries_left} {'try' if tries_left == 1 else 'tries'} left"
            return DomainError(ErrorCode.PIN_INCORRECT, message, _field("pin", message))
        case CardBlocked():
            return DomainError(
                ErrorCode.CARD_BLOCKED,
                "card is blocked: too many wrong PINs; it must be unblocked by the issuer",
            )
        case CardProtocolError():
            return DomainError(
                ErrorCode.NOT_AN_EPORT_CARD,
                f"the card in {where} does not answer as an E-Port card does ({exc})",
            )
        case NotVerified():
            return DomainError(
                ErrorCode.UNAVAILABLE, f"the card in {where} refused to sign: PIN not verified"
            )
        case CardCommunicationError():
            return DomainError(ErrorCode.UNAVAILABLE, f"cannot talk to the card in {where}: {exc}")
    return DomainError(ErrorCode.UNAVAILABLE, f"card operation failed in {where}: {exc}")


def _field(path: str, message: str) -> tuple[FieldError, ...]:
    return (FieldError(path=path, message=message),)


def decode_challenge(challenge: str) -> bytes:
    """The challenge's bytes: base64 of 16 to 64 bytes."""
    try:
        raw = base64.b64decode(challenge, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not MIN_CHALLENGE <= len(raw) <= MAX_CHALLENGE:
        message = f"the challenge must be base64 of {MIN_CHALLENGE} to {MAX_CHALLENGE} bytes"
        raise DomainError(
            ErrorCode.INVALID, "invalid fields: challenge", _field("challenge", message)
        )
    return raw


# The blocking operations, each in one exclusive connection (run in a worker thread).


def reader_states() -> list[ReaderStatus]:
    """Every reader and what is in it."""
    with PcscContext() as context:
        return context.reader_states()


def only_reader_with_card() -> str:
    """The one reader that holds a card; refused when none or several do."""
    states = reader_states()
    if not states:
        raise NoReader("no card reader is connected")
    holding = [state.name for state in states if state.card_present]
    if not holding:
        raise NoCard("no card in any reader")
    if len(holding) > 1:
        names = ", ".join(holding)
        message = f"cards are in several readers ({names}); name one with --reader"
        raise DomainError(ErrorCode.INVALID, message, _field("reader", message))
    return holding[0]


def read_card(reader: str, pin: str | None = None, *, last_try: bool = False) -> CardView:
    """The card's data and certificate; the holder's ID number in full only with the PIN,
    verified in this same connection."""
    with PcscContext() as context, context.connect(reader) as connection:
        card = EPortCard(connection)
        if pin is not None:
            card.select()
            _present_pin(card, pin, last_try=last_try)
        data = card.read_card_data()
        certificate = card.read_certificate()
    if pin is None:
        data = masked(data)
    return CardView(
        reader=reader,
        card=data,
        certificate_pem=certificate_to_pem(certificate),
        pin_verified=pin is not None,
    )


def masked(data: CardData) -> CardData:
    """The card's data with the holder's ID number masked, as events show it."""
    return data.model_copy(update={"holder_id_number": mask_id_number(data.holder_id_number)})


def _present_pin(card: EPortCard, pin: str, *, last_try: bool) -> None:
    status = card.pin_status()  # a blocked card says so here, before it is sent the PIN
    if status.tries_left == 1 and not last_try:
        raise LastPinTry("one PIN try left")
    card.verify_pin(pin)


def verify_pin(reader: str, pin: str, *, last_try: bool = False) -> PinVerified:
    """Check the PIN once."""
    with PcscContext() as context, context.connect(reader) as connection:
        card = EPortCard(connection)
        card.select()
        _present_pin(card, pin, last_try=last_try)
        data = card.read_card_data()
    return PinVerified(reader=reader, card_number=data.card_number)


def sign_challenge(
    reader: str, pin: str, challenge: bytes, *, last_try: bool = False
) -> SignedChallenge:
    """Select, verify the PIN, sign, read the data and certificate: one connection."""
    with PcscContext() as context, context.connect(reader) as connection:
        card = EPortCard(connection)
        card.select()
        _present_pin(card, pin, last_try=last_try)
        signature = card.sign(challenge)
        data = card.read_card_data()
        certificate = card.read_certificate()
    return SignedChallenge(
        reader=reader,
        card=data,
        certificate_pem=certificate_to_pem(certificate),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def read_identity(reader: str) -> CardData | None:
    """The card's data if it is an E-Port card, without a PIN; None if it is not one."""
    with PcscContext() as context, context.connect(reader) as connection:
        try:
            return EPortCard(connection).read_card_data()
        except (NotAnEPortCard, CardProtocolError):
            return None


class CardGateway:
    """Runs card operations, one at a time per reader."""

    def __init__(self, busy_wait: float) -> None:
        self.busy_wait = busy_wait
        self._locks: dict[str, asyncio.Lock] = {}
        self._identities: dict[str, tuple[int, CardData | None]] = {}
        """Per reader, the card read in it last, under pcsc-lite's insertion count then."""

    async def readers(self) -> ReaderList:
        """Every reader, whether a card is in it, and which card."""
        try:
            states = await asyncio.to_thread(reader_states)
        except CardError as exc:
            raise refusal(exc, None) from None
        views = []
        for state in states:
            card = await self._identity(state) if state.card_present else None
            views.append(
                ReaderView(
                    name=state.name,
                    card_present=state.card_present,
                    atr=state.atr.hex().upper() if state.atr else None,
                    card_number=card.card_number if card else None,
                    card_type=card.card_type if card else None,
                    operator_level=card.operator_level if card else None,
                    enterprise_uscc=card.enterprise_uscc if card else None,
                    enterprise_name=card.enterprise_name if card else None,
                )
            )
        return ReaderList(readers=tuple(views))

    def _read_in(self, reader: str, result: object) -> None:
        # A card swapped between two of pcscd's polls leaves the insertion count as it was; what
        # an operation has just read is then the better word on which card is in.
        card = result.card if isinstance(result, CardView | SignedChallenge) else result
        known = self._identities.get(reader)
        if known is not None and isinstance(card, CardData):
            self._identities[reader] = (known[0], card)

    async def _identity(self, state: ReaderStatus) -> CardData | None:
        """The card in the reader: read once per insertion; None when a request holds the card
        longer than ``IDENTITY_WAIT`` seconds or when it cannot be read."""
        known = self._identities.get(state.name)
        if known is not None and known[0] == state.insertions:
            return known[1]
        lock = self._locks.get(state.name)
        # Held briefly by the monitor reading a card just put in; a long operation is not
        # waited for.
        deadline = asyncio.get_running_loop().time() + IDENTITY_WAIT
        while lock is not None and lock.locked():
            if asyncio.get_running_loop().time() > deadline:
                return None
            await asyncio.sleep(0.05)
        try:
            card = await self.run(state.name, read_identity)
        except DomainError:
            return None
        self._identities[state.name] = (state.insertions, card)
        return card

    async def run(
        self, reader: str | None, operation: Callable[[str], T], *, wait: bool = False
    ) -> T:
        """Run ``operation(reader)`` in a worker thread while holding the reader's lock.

        ``reader`` None means the only reader with a card in it. Without ``wait`` a request
        gives up with CARD_BUSY after ``busy_wait`` seconds in the queue.
        """
        try:
            name = reader if reader is not None else await asyncio.to_thread(only_reader_with_card)
        except CardError as exc:
            raise refusal(exc, reader) from None
        lock = self._locks.setdefault(name, asyncio.Lock())
        try:
            async with asyncio.timeout(None if wait else self.busy_wait):
                await lock.acquire()
        except TimeoutError:
            raise DomainError(
                ErrorCode.CARD_BUSY,
                f"the card in reader {name} is busy with another request; try again",
            ) from None
        work = asyncio.ensure_future(asyncio.to_thread(operation, name))
        try:
            result = await asyncio.shield(work)
            self._read_in(name, result)
            return result
        except CardError as exc:
            raise refusal(exc, name) from None
        finally:
            # Cancelled while the card is still at work: keep the reader until it is done.
            if work.done():
                lock.release()
            else:
                work.add_done_callback(partial(_release_when_done, lock))


def _release_when_done(lock: asyncio.Lock, work: asyncio.Future[object]) -> None:
    lock.release()
    if not work.cancelled():
        work.exception()  # retrieved: nobody waits for it any more
