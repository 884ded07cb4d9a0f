"""The gateway's one NATS connection, as the `portal` user: requests out, replies on its inbox."""

from __future__ import annotations

import ssl
from typing import Protocol

import nats
from nats.aio.client import Client as NatsClient
from singlewindow.contracts.bus import inbox_prefix
from singlewindow.gateway.settings import Settings

CORRELATION_HEADER = "correlation_id"
"""The NATS header the services read a request's correlation id from (FastStream's)."""


class NoResponder(Exception):
    """No service listens on the subject."""


class NoReply(Exception):
    """The service did not answer in time."""


class Forwarder(Protocol):
    """Sends one request to a subject and returns the reply's bytes."""

    async def request(self, subject: str, body: bytes, headers: dict[str, str]) -> bytes: ...

    @property
    def ready(self) -> bool: ...


class NatsForwarder:
    """Requests over nats-py, as the user of the settings' credential (the `portal` one)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.nc: NatsClient | None = None

    async def connect(self) -> None:
        """Connect, retrying for ever in the background once connected (nats-py's reconnect)."""
        settings = self.settings
        credentials = settings.nats_credentials()
        user = credentials[0] if credentials else "portal"
        options: dict[str, object] = {}
        if credentials:
            options |= {"user": credentials[0], "password": credentials[1]}
        if settings.nats_tls_ca_file:
            options["tls"] = ssl.create_default_context(cafile=settings.nats_tls_ca_file)
        self.nc = await nats.connect(
            settings.nats_url,
            name="singlewindow-gateway",
            inbox_prefix=inbox_prefix(user),
            max_reconnect_attempts=-1,
            **options,
        )

    async def close(self) -> None:
        """Drain the connection."""
        if self.nc is not None:
            await self.nc.drain()
            self.nc = None

    @property
    def ready(self) -> bool:
        """Whether NATS is connected now."""
        return self.nc is not None and self.nc.is_connected

    async def request(self, subject: str, body: bytes, headers: dict[str, str]) -> bytes:
        """Send the request; NoResponder or NoReply when nobody answers."""
        if self.nc is None:
            raise NoResponder(subject)
        try:
            message = await self.nc.request(
                subject, body, timeout=self.settings.request_timeout_seconds, headers=headers
            )
        except nats.errors.NoRespondersError as exc:
            raise NoResponder(subject) from exc
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            raise NoReply(subject) from exc
        data: bytes = message.data
        return data
