"""Accounts rules, pure: throttling delays, session lifetimes, required actions, tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from singlewindow.shared.contracts.accounts import RequiredAction, Role

INCORRECT_CREDENTIALS = "account name or password is incorrect"
"""One message for an unknown account and a wrong password, so neither can be told apart."""


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

    def idle_expiry(self, last_seen: datetime, expires_at: datetime) -> datetime:
        """When a session last seen at `last_seen` lapses for idleness."""
        return min(last_seen + self.idle, expires_at)


def new_session_token() -> str:
    """A session token: 256 random bits."""
    return secrets.token_urlsafe(32)


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
