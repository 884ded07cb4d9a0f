"""Registration service settings, from `SW_REGISTRATION_*` environment variables."""

from pydantic_settings import SettingsConfigDict
from singlewindow.runtime.service import ServiceSettings


class Settings(ServiceSettings):
    """Where the registration service finds NATS and its database, and its policy knobs."""

    model_config = SettingsConfigDict(env_prefix="SW_REGISTRATION_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/registration.db"
    http_port: int = 8101
    password_min_length: int = 8
    accounts_timeout_seconds: float = 3.0
