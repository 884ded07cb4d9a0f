"""Contracts of the card-gateway service: PC/SC readers and E-Port cards as requests and events.

The PIN travels in the request that needs it (verify, sign, a full read) and nowhere else: the
gateway never logs, stores or retries it. Each request opens its own exclusive card connection,
and closing it resets the card, so a verified PIN never outlives the request that verified it.

The holder's full ID number is given only after the PIN was verified in the same card session
(`card.read` with the PIN, `card.sign`); otherwise it is masked, as events mask it. A card with one
PIN try left is sent no PIN unless the request says `last_try`: a wrong PIN would block it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from singlewindow.contracts.endpoints import Audience, Endpoint
from singlewindow.contracts.events import DAY, MIB, Discard, EventData, EventSpec, StreamSpec
from singlewindow.contracts.identifiers import CardPin
from singlewindow.contracts.wire import Request

SERVICE = "card-gateway"
QUEUE = "card-gateway"
STREAM = StreamSpec(
    name="SW_CARD_GATEWAY",
    subjects=("sw.events.card-gateway.>",),
    description=(
        "E-Port cards inserted into and removed from the gateway's readers. Kept 7 days, the"
        " oldest dropped when full: a card's presence is news for the moment, not a record"
    ),
    max_age_seconds=7 * DAY,
    max_bytes=64 * MIB,
    discard=Discard.OLD,
)


ReaderName = Annotated[str, Field(strict=True, min_length=1, max_length=200)]
Challenge = Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9+/]{4,88}={0,2}$")]
"""Base64 of the 16-64 bytes to sign."""


class CardType(StrEnum):
    """The two kinds of E-Port card."""

    LEGAL_PERSON = "legal-person"
    OPERATOR = "operator"


class OperatorLevel(StrEnum):
    """An operator card's level: the maker/checker split."""

    ENTRY = "entry"
    DECLARATION = "declaration"


class ListReaders(Request):
    """List the gateway's readers and what is in them."""


class ReaderView(BaseModel):
    """A reader, whether a card is in it, and which card (when it is an E-Port card the gateway
    could read; the card fields are None otherwise)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    card_present: bool
    atr: str | None
    card_number: str | None = None
    card_type: CardType | None = None
    operator_level: OperatorLevel | None = None
    enterprise_uscc: str | None = None
    enterprise_name: str | None = None


class ReaderList(BaseModel):
    """Every reader the gateway sees."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    readers: tuple[ReaderView, ...]


class CardData(BaseModel):
    """What an E-Port card says of itself (its data file)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    card_number: str
    card_type: CardType
    operator_level: OperatorLevel | None
    holder_name: str
    holder_id_number: str
    enterprise_uscc: str
    enterprise_name: str
    organisation_code: str
    customs_code: str | None


LastTry = Annotated[bool, Field(strict=True)]
"""The caller knows the card has one PIN try left and a wrong PIN blocks it, and asks to use it."""


class ReadCard(Request):
    """Read a card's data and certificate; with the PIN, the holder's full ID number too."""

    reader: ReaderName | None = None
    pin: CardPin | None = None
    last_try: LastTry = False


class CardView(BaseModel):
    """A card's data and its X.509 certificate; the holder's ID number is masked unless the PIN
    was verified in the same card session (`pin_verified`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    reader: str
    card: CardData
    certificate_pem: str
    pin_verified: bool = False


class VerifyPin(Request):
    """Check a PIN against the card; reports the tries left when it is wrong."""

    reader: ReaderName | None = None
    pin: CardPin
    last_try: LastTry = False


class PinVerified(BaseModel):
    """The PIN was right."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    reader: str
    card_number: str


class SignChallenge(Request):
    """Verify the PIN, then have the card sign a challenge (SM2 with SM3)."""

    reader: ReaderName | None = None
    pin: CardPin
    challenge: Challenge
    last_try: LastTry = False


class SignedChallenge(BaseModel):
    """The card's signature over a challenge, with the card it came from."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    reader: str
    card: CardData
    certificate_pem: str
    signature: str
    """Base64 of the DER-encoded SM2 signature."""


class CardInserted(EventData):
    """A card was put into a reader."""

    reader: str
    atr: str
    card_number: str | None
    card_type: str | None


class CardRemoved(EventData):
    """A card was taken out of a reader."""

    reader: str


CARD_INSERTED = EventSpec(SERVICE, "card-inserted", 1, CardInserted)
CARD_REMOVED = EventSpec(SERVICE, "card-removed", 1, CardRemoved)


LIST_READERS = Endpoint(SERVICE, "readers.list", ListReaders, ReaderList, Audience.PUBLIC)
READ_CARD = Endpoint(SERVICE, "card.read", ReadCard, CardView, Audience.PUBLIC)
VERIFY_PIN = Endpoint(SERVICE, "card.verify-pin", VerifyPin, PinVerified, Audience.PUBLIC)
SIGN_CHALLENGE = Endpoint(SERVICE, "card.sign", SignChallenge, SignedChallenge, Audience.PUBLIC)
