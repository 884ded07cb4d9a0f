"""Accounts rules, pure: accounts, throttling, sessions, required actions, tokens, card data."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from singlewindow.contracts.accounts import CardlessOperator, RequiredAction, Role
from singlewindow.contracts.card_gateway import CardData, OperatorLevel
from singlewindow.contracts.common import AccountHolder
from singlewindow.contracts.identifiers import InvalidIdentifier, normalise_uscc

if TYPE_CHECKING:
    from singlewindow.cardcrypto import CardIdentity

INCORRECT_CREDENTIALS = "account name or password is incorrect"
"""One message for an unknown account and a wrong password, so neither can be told apart."""


class AccountStatus(StrEnum):
    """Whether an account may log in."""

    ACTIVE = "active"
    DISABLED = "disabled"
    PENDING = "pending"
    """An individual user's account until its mobile is proven with a one-time code."""
    DELETED = "deleted"
    """Kept for its history; its login is refused as an unknown account's (issue 9)."""


@dataclass(frozen=True)
class Account:
    """An account, with its enterprise's name and whether that enterprise declared its scope."""

    account_id: str
    account: str
    role: Role
    uscc: str | None
    enterprise_name: str | None
    name: str
    id_number: str
    mobile: str
    email: str | None
    password_hash: str
    password_must_change: bool
    status: AccountStatus
    created_at: datetime
    operator_level: OperatorLevel | None = None
    scope_declared: bool = False
    landline: str | None = None
    password_expires_at: datetime | None = None
    """Until when a one-time password logs in (issue 9)."""
    initial_password: str | None = None
    """How a one-time password was given: `default`, `random`; None: the holder chose it."""

    def one_time_password_expired(self, now: datetime) -> bool:
        """Whether the account's one-time password is past its expiry, unused."""
        return (
            self.password_must_change
            and self.password_expires_at is not None
            and now >= self.password_expires_at
        )

    @property
    def required_actions(self) -> tuple[RequiredAction, ...]:
        """What a session of this account must do first."""
        return required_actions(
            role=self.role,
            password_must_change=self.password_must_change,
            scope_declared=self.scope_declared,
        )


@dataclass(frozen=True)
class NewAccount:
    """An account to create: who holds it, what it may do, and its credential."""

    holder: AccountHolder | CardlessOperator
    role: Role
    uscc: str | None
    password_hash: str
    password_must_change: bool
    operator_level: OperatorLevel | None = None
    password_expires_at: datetime | None = None
    initial_password: str | None = None


@dataclass(frozen=True)
class ThrottlePolicy:
    """Growing delays after repeated failures: never a permanent lockout."""

    free_failures: int
    base_seconds: float
    max_seconds: float

    def delay_after(self, failures: int) -> float:
        """Seconds to refuse logins after the `failures`-th consecutive failure."""
        if failures <= self.free_failures:
            return 0.0
        return float(
            min(self.base_seconds * 2 ** (failures - self.free_failures - 1), self.max_seconds)
        )


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: idle and absolute limits."""

    idle: timedelta
    absolute: timedelta
    touch_every: timedelta = timedelta(seconds=1)
    """How old the stored last-seen time may be before a request writes it again: requests of
    one session within a second (a page's burst of calls, a client polling) share one write, at
    the cost of an idle session ending up to a second early."""

    def idle_expiry(self, last_seen: datetime, expires_at: datetime) -> datetime:
        """When a session last seen at `last_seen` lapses for idleness."""
        return min(last_seen + self.idle, expires_at)

    def touch_due(self, last_seen: datetime, now: datetime) -> bool:
        """Whether a request at `now` must store itself as the session's last-seen time."""
        return now - last_seen >= self.touch_every


def new_session_token() -> str:
    """A session token: 256 random bits."""
    return secrets.token_urlsafe(32)


def new_account_id() -> str:
    """An account's id: random, so it tells nothing of the account or when it was made."""
    return f"acc_{secrets.token_urlsafe(12)}"


def token_digest(token: str) -> str:
    """What is stored of a token: a leaked table holds no usable session."""
    return hashlib.sha256(token.encode()).hexdigest()


def account_key(account: str) -> str:
    """Account names are unique regardless of case."""
    return account.strip().casefold()


def required_actions(
    *, role: Role, password_must_change: bool, scope_declared: bool
) -> tuple[RequiredAction, ...]:
    """What a session must do first, in the order the guide gives."""
    actions: list[RequiredAction] = []
    if password_must_change:
        actions.append(RequiredAction.CHANGE_PASSWORD)
    if role is Role.ADMIN and not scope_declared:
        actions.append(RequiredAction.BUSINESS_SCOPE)
    return tuple(actions)


def division_of(uscc: str) -> str:
    """The administrative division a USCC was registered in (its characters 3 to 8)."""
    return uscc[2:8]


def card_data_mismatch(card: CardData, identity: CardIdentity) -> str | None:
    """What the card's data file says differently from its certificate, if anything.

    The certificate is what the CA vouches for; the data file is only the card's word. A
    certificate that does not state the card type (its `title`) never gets this far: it is
    refused when verified, and here its missing type differs from any the data file claims.
    """
    compared = [
        ("enterprise USCC", card.enterprise_uscc, identity.uscc),
        ("enterprise name", card.enterprise_name, identity.enterprise_name),
        ("holder name", card.holder_name, identity.holder_name),
        ("card number", card.card_number, identity.card_number),
        ("card type", _text(card.card_type), _text(identity.card_type)),
        ("operator level", _text(card.operator_level), _text(identity.operator_level)),
    ]
    for what, on_card, on_certificate in compared:
        if _comparable(on_card) != _comparable(on_certificate):
            return f"card data does not match the card's certificate: the {what} differs"
    return None


def _comparable(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def _text(value: object) -> str:
    if value is None:
        return "-"
    return str(getattr(value, "value", value))


CARD_FIELD_LIMITS = {"card_number": 40, "enterprise_name": 100, "holder_name": 50}
"""The longest values the platform stores of a card."""


def card_data_problem(card: CardData) -> str | None:
    """Why the platform cannot take a card's (certified) data as it is, if it cannot."""
    try:
        valid = normalise_uscc(card.enterprise_uscc) == card.enterprise_uscc
    except InvalidIdentifier:
        valid = False
    if not valid:
        return "the card's enterprise USCC is not a valid unified social credit code"
    for name, limit in CARD_FIELD_LIMITS.items():
        if len(getattr(card, name)) > limit:
            what = name.replace("_", " ")
            return f"the card's {what} is longer than the platform accepts ({limit} characters)"
    return None
