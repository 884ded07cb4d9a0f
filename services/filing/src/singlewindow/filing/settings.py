"""Filing service settings, from `SW_FILING_*` environment variables."""

from pydantic_settings import SettingsConfigDict
from singlewindow.runtime.service import ServiceSettings


class Settings(ServiceSettings):
    """Where the filing service finds NATS and its database, and its policy knobs."""

    model_config = SettingsConfigDict(env_prefix="SW_FILING_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/filing.db"
    http_port: int = 8105
    accounts_timeout_seconds: float = 3.0
    expiry_sweep_seconds: float = 60.0
    """How often filed records past their validity (temporary filings) are marked expired."""
