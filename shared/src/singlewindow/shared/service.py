"""What every service is made of: settings, database, broker, outbox relay, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, NatsRouter, NatsUserPassword, PullSub
from faststream.nats.subscriber.usecases.core_subscriber import ConcurrentCoreSubscriber
from faststream.nats.subscriber.usecases.stream_pull_subscriber import PullStreamSubscriber
from faststream.specification import AsyncAPI
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.client import JetStreamContext
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict
from singlewindow.shared.bus import inbox_prefix
from singlewindow.shared.db import Database
from singlewindow.shared.errors import DomainError, ErrorCode
from singlewindow.shared.events import CloudEvent, EventSpec, StreamSpec
from singlewindow.shared.messaging import (
    REDELIVERY_DELAYS,
    Effect,
    Inbox,
    Outbox,
    consumer_config,
    dead_letter_publisher,
    ensure_streams,
    inbox_table,
    outbox_table,
)
from singlewindow.shared.observability import configure_logging, current_correlation_id
from singlewindow.shared.rpc import decode_reply, respond
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.service")

RequestT = TypeVar("RequestT", bound=BaseModel)
DataT = TypeVar("DataT", bound=BaseModel)


class ServiceSettings(BaseSettings):
    """Settings every service has; each service's subclass sets its own env prefix."""

    model_config = SettingsConfigDict(env_prefix="SW_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: str | None = None
    database_url: str = "sqlite+aiosqlite:///var/service.db"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "INFO"
    stream_replicas: int = 1
    """Copies JetStream keeps of each stream: 3 on a production cluster, 1 on the embedded server."""
    redelivery_delays: tuple[float, ...] = REDELIVERY_DELAYS
    """Seconds before each redelivery of an event whose effect failed; the last repeats."""


class Service:
    """One service's runtime: its database, broker, outbox and inbox."""

    def __init__(self, name: str, settings: ServiceSettings, metadata: MetaData) -> None:
        self.name = name
        self.settings = settings
        self.db = Database(settings.database_url)
        self.broker = NatsBroker(
            settings.nats_url,
            security=(
                NatsUserPassword(settings.nats_user, settings.nats_password)
                if settings.nats_user and settings.nats_password
                else None
            ),
            name=f"singlewindow-{name}",
            inbox_prefix=inbox_prefix(name),
            max_reconnect_attempts=-1,
            graceful_timeout=10,
            # Requests and events are logged by the platform, as JSON with correlation ids.
            logger=None,
        )
        self.outbox = Outbox(outbox_table(metadata))
        self.inbox = Inbox(inbox_table(metadata), self.db, self.outbox, settings.redelivery_delays)
        self.source = f"urn:singlewindow:service:{name}"
        self.ready = False

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context of the broker's connection."""
        stream: JetStreamContext = self.broker.config.connection_state.stream
        return stream

    async def emit(
        self,
        connection: AsyncConnection,
        spec: EventSpec[DataT],
        data: DataT,
        *,
        subject: str | None,
    ) -> CloudEvent:
        """Stage an event in the outbox, to be published once `connection` commits."""
        event = spec.make(
            data, subject=subject, source=self.source, correlation_id=current_correlation_id()
        )
        await self.outbox.stage(connection, spec.subject, event)
        return event

    async def answer(
        self,
        msg: NatsMessage,
        model: type[RequestT],
        handle: Callable[[RequestT], Awaitable[BaseModel | None]],
    ) -> bytes:
        """Answer a request: parse it as `model`, run `handle`, reply with a result or an error."""
        try:
            return await respond(
                msg.raw_message.subject, msg.body, msg.correlation_id, model, handle
            )
        finally:
            self.outbox.wake()

    async def ask(
        self, subject: str, request: BaseModel, reply: type[DataT], *, wait: float, who: str
    ) -> DataT:
        """Ask another service; its silence becomes a plain UNAVAILABLE refusal naming `who`."""
        try:
            message = await self.broker.request(
                request.model_dump_json().encode(), subject, timeout=wait
            )
        except (NoRespondersError, NatsTimeoutError, TimeoutError) as exc:
            raise DomainError(
                ErrorCode.UNAVAILABLE, f"the {who} service did not answer {subject}"
            ) from exc
        return decode_reply(message.body, reply)

    async def consume(self, consumer: str, msg: NatsMessage, effect: Effect) -> None:
        """Apply an event's effect once, with redelivery and dead-lettering on failure."""
        await self.inbox.consume(consumer, msg, effect, dead_letter_publisher(self.js, self.name))

    def app(
        self,
        migrations: Path,
        streams: tuple[StreamSpec, ...],
        *,
        title: str,
        readiness_details: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> AsgiFastStream:
        """The ASGI application: broker, lifespan, /healthz, /readyz, /metrics and AsyncAPI docs.

        `readiness_details` adds what /readyz reports besides its checks, without deciding them.
        """
        service = self

        @contextlib.asynccontextmanager
        async def lifespan() -> AsyncIterator[None]:
            configure_logging(service.name, service.settings.log_level)
            await service.db.migrate(migrations)
            await service.broker.connect()
            await ensure_streams(service.js, *streams, replicas=service.settings.stream_replicas)
            yield
            service.ready = False
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
            await service.db.close()

        relay: asyncio.Task[None]

        async def start_relay() -> None:
            nonlocal relay
            relay = asyncio.create_task(service.outbox.relay(service.db, service.js))
            service.ready = True
            log.info(
                "service ready",
                http_port=service.settings.http_port,
                nats_url=service.settings.nats_url,
            )

        @get(include_in_schema=False)
        async def healthz(scope: Scope) -> AsgiResponse:
            return AsgiResponse(
                b'{"status":"alive"}', 200, headers={"content-type": "application/json"}
            )

        @get(include_in_schema=False)
        async def readyz(scope: Scope) -> AsgiResponse:
            checks = {
                "started": service.ready,
                "nats": await service.broker.ping(timeout=1.0),
                "database": await service.db.ping(),
            }
            status = 200 if all(checks.values()) else 503
            details = await readiness_details() if readiness_details else {}
            body = json_bytes(
                {"status": "ready" if status == 200 else "not ready", **checks, **details}
            )
            return AsgiResponse(body, status, headers={"content-type": "application/json"})

        @get(include_in_schema=False)
        async def metrics(scope: Scope) -> AsgiResponse:
            return AsgiResponse(
                generate_latest(), 200, headers={"content-type": CONTENT_TYPE_LATEST}
            )

        return AsgiFastStream(
            self.broker,
            logger=None,
            specification=AsyncAPI(self.broker, title=title, schema_version="3.0.0"),
            lifespan=lifespan,
            after_startup=[start_relay],
            asgi_routes=[("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics)],
            asyncapi_path="/docs/asyncapi",
        )


def json_bytes(value: dict[str, Any]) -> bytes:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":")).encode()


def run(app: AsgiFastStream, settings: ServiceSettings) -> None:
    """Serve `app` with uvicorn on the service's HTTP port until SIGINT/SIGTERM."""
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )


REQUEST_CONCURRENCY = 16
"""Requests one replica handles at once: a login waiting on argon2 must not hold up the rest.
The hashing pool, not this number, bounds the CPU and memory that password work takes."""


def request_subscriber(router: NatsRouter, subject: str, queue: str) -> ConcurrentCoreSubscriber:
    """Subscribe to a request subject in the service's queue group, answering several at once."""
    return router.subscriber(subject, queue=queue, max_workers=REQUEST_CONCURRENCY)


def event_subscriber(
    router: NatsRouter, stream: StreamSpec, spec: EventSpec[Any], durable: str, *, service: str
) -> PullStreamSubscriber:
    """Subscribe `service`'s durable pull consumer, acknowledged explicitly, to one event type."""
    return router.subscriber(
        spec.subject,
        stream=JStream(stream.name, declare=False),
        durable=durable,
        config=consumer_config(durable, spec.subject),
        pull_sub=PullSub(batch_size=10, timeout=5.0),
        inbox_prefix=(inbox_prefix(service) + ".").encode(),
        # Acks are the inbox's business: redelivery with backoff, then the dead-letter stream.
        ack_policy=AckPolicy.MANUAL,
    )
