"""card-gateway settings, from `SW_CARD_GATEWAY_*` environment variables.

Which pcscd it talks to is PC/SC's business: the client library reads `PCSCLITE_CSOCK_NAME`.
"""

from pydantic_settings import SettingsConfigDict
from singlewindow.runtime.service import ServiceSettings


class Settings(ServiceSettings):
    """Where card-gateway finds NATS and its outbox, and how it shares the cards."""

    model_config = SettingsConfigDict(env_prefix="SW_CARD_GATEWAY_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/card-gateway.db"
    http_port: int = 8104
    busy_wait_seconds: float = 5.0
    """How long a request waits for the card to finish another request before CARD_BUSY."""
    monitor: bool = True
    """Watch the readers and announce cards inserted and removed."""
    monitor_retry_seconds: float = 2.0
    """How often to look for pcscd again while it is not there."""
