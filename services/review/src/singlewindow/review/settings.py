"""Review service settings, from `SW_REVIEW_*` environment variables."""

from pydantic_settings import SettingsConfigDict
from singlewindow.runtime.service import ServiceSettings


class Settings(ServiceSettings):
    """Where the review service finds NATS and its database, and its SLA."""

    model_config = SettingsConfigDict(env_prefix="SW_REVIEW_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/review.db"
    http_port: int = 8102
    sla_working_days: int = 3
    accounts_timeout_seconds: float = 3.0
    """How long to wait for accounts to say who a staff token belongs to."""
