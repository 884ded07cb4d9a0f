"""What the accounts handlers need."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from singlewindow.accounts.domain import SessionPolicy, ThrottlePolicy
from singlewindow.accounts.settings import Settings
from singlewindow.accounts.trust import TrustStore
from singlewindow.runtime.passwords import PasswordHashing
from singlewindow.runtime.service import Service


@dataclass(frozen=True)
class AccountsRuntime:
    """The accounts service's runtime parts."""

    service: Service
    settings: Settings
    passwords: PasswordHashing
    throttle: ThrottlePolicy
    sessions: SessionPolicy
    decoy_hash: str
    """Verified against when the account does not exist, so both cases take as long."""
    trust: TrustStore
    """The card CA and revocation list that card certificates are checked against."""
    staff_sessions: SessionPolicy

    @classmethod
    def of(
        cls, service: Service, settings: Settings, passwords: PasswordHashing
    ) -> AccountsRuntime:
        """The runtime the settings describe: throttle, session policy, decoy hash, card trust."""
        return cls(
            service=service,
            settings=settings,
            passwords=passwords,
            throttle=ThrottlePolicy(
                free_failures=settings.throttle_free_failures,
                base_seconds=settings.throttle_base_seconds,
                max_seconds=settings.throttle_max_seconds,
            ),
            sessions=SessionPolicy(
                idle=timedelta(minutes=settings.session_idle_minutes),
                absolute=timedelta(hours=settings.session_absolute_hours),
            ),
            decoy_hash=passwords.hash_blocking(secrets.token_urlsafe(16)),
            trust=TrustStore(settings.card_trust_anchor, settings.card_crl),
            staff_sessions=SessionPolicy(
                idle=timedelta(minutes=settings.staff_session_idle_minutes),
                absolute=timedelta(hours=settings.staff_session_absolute_hours),
            ),
        )
