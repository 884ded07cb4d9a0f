"""The accounts service: settings → service runtime → routes → ASGI app with health and docs."""

import secrets
from datetime import timedelta
from pathlib import Path

from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import SessionPolicy, ThrottlePolicy
from singlewindow.accounts.handlers import routes
from singlewindow.accounts.settings import Settings
from singlewindow.accounts.tables import metadata
from singlewindow.accounts.trust import TrustStore
from singlewindow.contracts import accounts, registration
from singlewindow.runtime.passwords import PasswordHashing
from singlewindow.runtime.service import Service

settings = Settings()
service = Service(accounts.SERVICE, settings, metadata)
app = service.app(
    Path(__file__).parent / "migrations",
    (accounts.STREAM, accounts.AUDIT_STREAM, registration.STREAM),
    title="Single Window accounts service",
)
passwords = PasswordHashing()
service.include(
    routes,
    AccountsRuntime(
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
    ),
)
