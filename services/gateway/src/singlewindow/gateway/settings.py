"""Gateway settings, from `SW_GATEWAY_*` environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict
from singlewindow.runtime.service import ServiceSettings

RATE_LIMITED = (
    "accounts.login.*",
    "accounts.staff.login",
    "accounts.card.challenge",
    "accounts.card.register-admin",
    "accounts.individuals.register",
    "accounts.mobile.change",
    "registration.cardless.submit",
    "registration.cardless.resubmit",
)
"""The endpoints (`<service>.<name>`, shell patterns) a client address and an account name may
call only so often: logins, registrations, requests that send a one-time code."""
RATE_LIMITED_FIELDS = ("password", "current_password", "code")
"""Any endpoint whose request has one of these fields is limited too: it checks a password
(argon2id work) or a one-time code, whatever its name, including endpoints added later."""


class Settings(ServiceSettings):
    """Where the gateway listens, the NATS `portal` credential it forwards with, its limits."""

    model_config = SettingsConfigDict(env_prefix="SW_GATEWAY_", extra="ignore")

    http_port: int = 8080
    database_url: str = ""
    """Unused: the gateway keeps no state of its own."""
    request_timeout_seconds: float = 10.0
    """How long a request waits for its service's reply before the client gets 504."""
    rate_endpoints: tuple[str, ...] = RATE_LIMITED
    rate_fields: tuple[str, ...] = RATE_LIMITED_FIELDS
    rate_address_limit: int = 20
    """Requests one client address may make to the rate-limited endpoints per window."""
    rate_account_limit: int = 10
    """Requests naming one account (the body's `account`) per window."""
    rate_window_seconds: float = 60.0
    """The window: a client's allowance refills evenly over it."""
    rate_max_keys: int = 100_000
    """Addresses and accounts remembered at most; the least recently seen are forgotten first."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (`10.0.0.0/8`) of proxies whose `X-Forwarded-For` is believed."""
    cookie_secure: bool = True
    """Session cookies with `Secure` (browsers accept them on http://localhost too)."""
