"""Accounts service settings, from `SW_ACCOUNTS_*` environment variables."""

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from singlewindow.runtime.service import ServiceSettings


class Settings(ServiceSettings):
    """Where the accounts service finds NATS and its database; sessions, throttling, cards."""

    model_config = SettingsConfigDict(env_prefix="SW_ACCOUNTS_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/accounts.db"
    http_port: int = 8103
    session_idle_minutes: float = 30
    session_absolute_hours: float = 12
    throttle_free_failures: int = 3
    throttle_base_seconds: float = 1.0
    throttle_max_seconds: float = 900
    registration_timeout_seconds: float = 3.0
    password_min_length: int = 8
    environment: Literal["production", "development"] = "production"
    """`development` (the embedded platform, tests) lets card login run without a CRL."""
    card_trust_anchor: Path | None = None
    """The CA certificate (PEM or DER) card certificates must chain to; none: no card requests."""
    card_crl: Path | None = None
    """The CA's revocation list (PEM or DER); re-read whenever the file changes."""
    card_challenge_seconds: float = 120
    """How long a card challenge may wait for its signature."""
    staff_session_idle_minutes: float = 15
    staff_session_absolute_hours: float = 8
    bootstrap_admin: str | None = None
    """The first platform administrator's account name, created once when there is none."""
    bootstrap_password_file: Path | None = None
    """Its one-time password: a file (a mounted Secret) holding JSON `{"account": ...,
    "password": ...}` or the bare password; it must be changed at first login."""

    # --- one-time codes (issue 9) ---
    code_ttl_seconds: float = 300
    """How long a one-time code is good for."""
    code_max_tries: int = 5
    """Wrong attempts a code allows; then it is dead and a new one must be asked for."""
    code_min_interval_seconds: float = 60
    """At most one code per account, and one per number, within this many seconds."""
    code_max_per_hour: int = 5
    """At most this many codes per account, and per number, within an hour."""
    code_secret: SecretStr | None = None
    """The key of the codes' digests (set it in production: a stolen database then cannot
    test the million codes offline)."""

    # --- operators (issue 9) ---
    initial_password: SecretStr = SecretStr("88888888")
    """A cardless operator's one-time password: the guide's `88888888` by default, or `random`
    for a random one sent to the operator's mobile on the notification stream."""
    initial_password_ttl_days: float = 7
    """How long an unused one-time password of an operator logs in."""
    # --- qualifications and permissions (issue 10) ---
    secret_keys: SecretStr | None = None
    """The keys secrets are sealed with at rest (the inspection password): `ID:BASE64` (32
    random bytes) entries, comma- or line-separated, the first sealing new values and the
    others only opening old ones (a Kubernetes Secret's value)."""
    secret_key_file: Path | None = None
    """The same entries in a file (a mounted Secret); used when `secret_keys` is unset."""

    def startup_problem(self) -> str | None:
        """Why the service must not start with these settings, if it must not."""
        if (
            self.environment == "production"
            and self.card_trust_anchor is not None
            and self.card_crl is None
        ):
            return (
                "card login needs the card CA's revocation list: set SW_ACCOUNTS_CARD_CRL "
                "(or leave SW_ACCOUNTS_CARD_TRUST_ANCHOR unset for no card login; "
                "SW_ACCOUNTS_ENVIRONMENT=development allows no CRL, for development only)"
            )
        return None
