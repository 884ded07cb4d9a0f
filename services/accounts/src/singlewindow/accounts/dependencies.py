"""What the accounts handlers need."""

from __future__ import annotations

from dataclasses import dataclass

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
