"""What every service is made of: settings, database, broker, outbox relay, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog
import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope
from faststream.nats import NatsBroker, NatsMessage, NatsUserPassword
from faststream.nats.security import NatsSecurity
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict
from singlewindow.contracts.bus import DEAD_LETTER_STREAM, inbox_prefix, replay_subject
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.events import CloudEvent, EventSpec, StreamSpec
from singlewindow.contracts.wire import decode_result
from singlewindow.runtime.clock import Clock, SystemClock
from singlewindow.runtime.db import Database, settle_held
from singlewindow.runtime.idempotency import RETENTION, Idempotency, idempotency_table
from singlewindow.runtime.messaging import (
    PARKED_CONSUMER,
    REDELIVERY_DELAYS,
    Inbox,
    InTransaction,
    Outbox,
    dead_letter_publisher,
    ensure_consumers,
    ensure_streams,
    inbox_table,
    outbox_table,
)
from singlewindow.runtime.observability import configure_logging, current_correlation_id
from singlewindow.runtime.pull import JetStreamDelivery, PullConsumer
from singlewindow.runtime.routes import Consumed, RequestHandler, Routes
from singlewindow.runtime.rpc import CORRELATION_HEADER, Answers
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncConnection

Prepare = Callable[[CloudEvent], Awaitable[None]]
Effect = Callable[[AsyncConnection, CloudEvent], Awaitable[None]]

log = structlog.get_logger("singlewindow.service")

DepsT = TypeVar("DepsT")
ReplyT = TypeVar("ReplyT", bound=BaseModel | None)
DataT = TypeVar("DataT", bound=BaseModel)


class ServiceSettings(BaseSettings):
    """Settings every service has; each service's subclass sets its own env prefix."""

    model_config = SettingsConfigDict(env_prefix="SW_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: str | None = None
    nats_credentials_file: Path | None = None
    """A JSON file `{"user": ..., "password": ...}` (what `swctl up` writes under
    `credentials/`); it wins over `nats_user` and `nats_password`."""
    nats_tls_ca_file: Path | None = None
    """The CA that signed the NATS servers' certificates (Kubernetes: cert-manager's ca.crt):
    connect over TLS and trust it."""
    database_url: str = "sqlite+aiosqlite:///var/service.db"
    database_threads: bool = True
    """On a SQLite file, run the hot paths' transactions (`Database.run`/`read`) each in one
    trip to threads of the database's own; false puts them on aiosqlite too (for comparison)."""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "INFO"
    stream_replicas: int = 1
    """Copies JetStream keeps of each stream: 3 on a production cluster, 1 on the embedded server."""
    redelivery_delays: tuple[float, ...] = REDELIVERY_DELAYS
    """Seconds before each redelivery of an event whose effect failed; the last repeats."""
    idempotency_retention: timedelta = RETENTION
    """How long the answer to a request with an idempotency key is kept for its retries."""
    stream_wait_seconds: float = 60
    """How long to wait at start for the streams of other services it reads or writes."""

    def nats_credentials(self) -> tuple[str, str] | None:
        """The NATS user and password, from the credentials file or the two settings."""
        if self.nats_credentials_file is not None:
            data = json.loads(self.nats_credentials_file.read_text(encoding="utf-8"))
            return str(data["user"]), str(data["password"])
        if self.nats_user and self.nats_password:
            return self.nats_user, self.nats_password
        return None


class Service:
    """One service's runtime: its database, broker, outbox and inbox."""

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        metadata: MetaData,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        """The service's one source of the time: its handlers, events and outbox read it."""
        self.db = Database(settings.database_url, threads=settings.database_threads)
        credentials = settings.nats_credentials()
        tls = (
            ssl.create_default_context(cafile=settings.nats_tls_ca_file)
            if settings.nats_tls_ca_file
            else None
        )
        self.broker = NatsBroker(
            settings.nats_url,
            security=(
                NatsUserPassword(*credentials, ssl_context=tls)
                if credentials
                else NatsSecurity(ssl_context=tls)
                if tls
                else None
            ),
            name=f"singlewindow-{name}",
            # The service's own inbox: NATS lets only its user read the replies sent there.
            inbox_prefix=inbox_prefix(name),
            max_reconnect_attempts=-1,
            graceful_timeout=GRACEFUL_SECONDS,
            # Requests and events are logged by the platform, as JSON with correlation ids.
            logger=None,
            # Handlers get the message and their service's dependencies themselves (include):
            # no dependency resolution per message.
            apply_types=False,
        )
        self.outbox = Outbox(outbox_table(metadata), self.clock, service=name)
        self.inbox = Inbox(
            inbox_table(metadata), self.db, self.outbox, self.clock, settings.redelivery_delays
        )
        self.idempotency = Idempotency(
            idempotency_table(metadata), self.db, self.clock, settings.idempotency_retention
        )
        self.source = f"urn:singlewindow:service:{name}"
        self.ready = False
        self._asks: set[Endpoint[Any, Any]] = set()
        self._publishes: set[EventSpec[Any]] = set()
        self._routes: list[Routes[Any]] = []
        self._answers = Answers(self.idempotency, self.outbox.wake)
        self._pulls: list[PullConsumer] = []
        self._asyncapi: bytes | None = None

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
        event = self._event(spec, data, subject)
        await self.outbox.stage(connection, spec.subject, event)
        return event

    def emit_sync(
        self,
        connection: Connection,
        spec: EventSpec[DataT],
        data: DataT,
        *,
        subject: str | None,
    ) -> CloudEvent:
        """`emit` in a synchronous transaction (`Database.run`)."""
        event = self._event(spec, data, subject)
        self.outbox.stage_sync(connection, spec.subject, event)
        return event

    def _event(self, spec: EventSpec[DataT], data: DataT, subject: str | None) -> CloudEvent:
        if spec.service != self.name and spec not in self._publishes:
            raise ValueError(f"{self.name} does not declare that it publishes {spec.type}")
        return spec.make(
            data,
            subject=subject,
            source=self.source,
            correlation_id=current_correlation_id(),
            now=self.clock.now(),
        )

    async def ask(
        self, endpoint: Endpoint[Any, ReplyT], request: BaseModel, *, wait: float
    ) -> ReplyT:
        """Ask another service; its silence becomes a plain UNAVAILABLE refusal naming it."""
        if endpoint not in self._asks:
            raise ValueError(f"{self.name} does not declare that it asks {endpoint.subject}")
        await settle_held()  # no write lock held while the other service answers
        try:
            # Straight on the broker's nats-py connection, the request's correlation id along.
            message = await self.broker.connection.request(
                endpoint.subject,
                request.model_dump_json().encode(),
                timeout=wait,
                headers={CORRELATION_HEADER: current_correlation_id() or str(uuid.uuid4())},
            )
        except (NoRespondersError, NatsTimeoutError, TimeoutError) as exc:
            raise DomainError(
                ErrorCode.UNAVAILABLE,
                f"the {endpoint.service} service did not answer {endpoint.subject}",
            ) from exc
        return decode_result(endpoint, message.data)

    def include(self, routes: Routes[DepsT], deps: DepsT) -> None:
        """Answer the routes' endpoints and consume their subscriptions, handing each `deps`."""
        if not self._routes:

            async def on_parked_replay(msg: NatsMessage) -> bytes:
                return await self._republish_parked(msg.body)

            self.broker.subscriber(
                replay_subject(self.name, PARKED_CONSUMER), queue=self.name, decoder=_undecoded
            )(on_parked_replay)
        self._routes.append(routes)
        self._asks.update(routes.asks)
        self._publishes.update(routes.publishes)
        for served in routes.served:
            self._serve(served.endpoint, served.handler, deps)
        for consumed in routes.consumed:
            self._consume(consumed, deps)

    def _serve(
        self, endpoint: Endpoint[Any, Any], handler: RequestHandler[Any, DepsT, Any], deps: DepsT
    ) -> None:
        async def handle(request: BaseModel) -> BaseModel | None:
            reply: BaseModel | None = await handler(request, deps)
            return reply

        self._answers.add(endpoint, handle)

    def _consume(self, consumed: Consumed[DepsT], deps: DepsT) -> None:
        subscription, handler, prepare = consumed.subscription, consumed.handler, consumed.prepare
        spec = subscription.event
        sync_handler = consumed.sync_handler

        def steps() -> tuple[Prepare | None, Effect | InTransaction]:
            """A delivery's steps: `prepare` outside the transaction (if the handler has one),
            then the handler inside it with what was prepared."""
            prepared: list[Any] = []

            async def before(event: CloudEvent) -> None:
                assert prepare is not None
                prepared.append(await prepare(spec.parse(event), deps))

            async def effect(connection: AsyncConnection, event: CloudEvent) -> None:
                data = prepared[-1] if prepare is not None else spec.parse(event)
                await handler(data, event, connection, deps)

            def apply(connection: Connection, event: CloudEvent) -> None:
                assert sync_handler is not None
                data = prepared[-1] if prepare is not None else spec.parse(event)
                sync_handler(data, event, connection, deps)

            first = before if prepare is not None else None
            return first, (effect if sync_handler is None else InTransaction(apply))

        async def on_event(delivery: JetStreamDelivery) -> None:
            before, effect = steps()
            dead_letter = dead_letter_publisher(self.js, self.name)
            await self.inbox.consume(
                subscription.durable, delivery, effect, dead_letter, prepare=before
            )

        async def on_replay(msg: NatsMessage) -> bytes:
            before, effect = steps()
            return await self._replay(subscription.durable, msg.body, before, effect)

        self.broker.subscriber(
            replay_subject(self.name, subscription.durable), queue=self.name, decoder=_undecoded
        )(on_replay)

        # The durable (made by `ensure_consumers`) is read by a pull consumer of the runtime's
        # own, on the broker's connection; acks are the inbox's business: redelivery with
        # backoff, then the dead-letter stream.
        self._pulls.append(PullConsumer(subscription.stream.name, subscription.durable, on_event))

    async def _dead_letter_of(self, consumer: str, body: bytes) -> tuple[int, Any] | bytes:
        """The dead letter a replay request names, if it is `consumer`'s; else the error reply."""
        try:
            sequence = int(json.loads(body)["sequence"])
            letter = await self.js.get_msg(DEAD_LETTER_STREAM.name, sequence)
        except (ValueError, KeyError, TypeError):
            return json_bytes({"error": 'the request is {"sequence": N}'})
        except NotFoundError:
            return json_bytes({"error": f"no dead letter {body.decode(errors='replace')}"})
        if letter.subject != f"sw.deadletter.{self.name}.{consumer}":
            return json_bytes({"error": f"dead letter {sequence} is not {consumer}'s"})
        return sequence, letter

    async def _replay(
        self,
        durable: str,
        body: bytes,
        prepare: Prepare | None,
        effect: Effect | InTransaction,
    ) -> bytes:
        """Apply one of this consumer's dead letters again, at most once (its inbox); the
        operator names it by sequence, the event is read from the dead-letter stream."""
        found = await self._dead_letter_of(durable, body)
        if isinstance(found, bytes):
            return found
        sequence, letter = found
        try:
            event = CloudEvent.model_validate_json(letter.data or b"")
            if prepare is not None:
                await prepare(event)
            applied = await self.inbox.apply_once(durable, event, effect)
        except Exception as exc:
            log.warning("dead letter replay failed", consumer=durable, error=repr(exc))
            return json_bytes({"error": f"{durable} could not apply it: {exc!r}"[:500]})
        finally:
            self.outbox.wake()
        log.info("dead letter replayed", consumer=durable, sequence=sequence, applied=applied)
        return json_bytes({"applied": applied})

    async def _republish_parked(self, body: bytes) -> bytes:
        """Publish again an event of this service's outbox that no stream took (parked): its
        own event, which only it may publish."""
        found = await self._dead_letter_of(PARKED_CONSUMER, body)
        if isinstance(found, bytes):
            return found
        sequence, letter = found
        subject = (letter.headers or {}).get("Sw-Original-Subject")
        if not subject:
            return json_bytes({"error": f"dead letter {sequence} has no original subject"})
        try:
            # A fresh message id: the original may still be in the de-duplication window.
            await self.js.publish(
                subject, letter.data or b"", headers={"Nats-Msg-Id": f"replay-{sequence}"}
            )
        except Exception as exc:
            log.warning("parked event not published again", subject=subject, error=repr(exc))
            return json_bytes({"error": f"{subject} still refused: {exc!r}"[:500]})
        log.info("parked event published again", subject=subject, sequence=sequence)
        return json_bytes({"applied": True})

    async def declare_streams(self, streams: tuple[StreamSpec, ...]) -> None:
        """Create or update the streams this service owns (its contract's); wait for the
        others it reads or writes, which only their owners may change."""
        owned = owned_streams(self.name)
        await ensure_streams(
            self.js,
            *(stream for stream in streams if stream.name in owned),
            replicas=self.settings.stream_replicas,
        )
        deadline = asyncio.get_running_loop().time() + self.settings.stream_wait_seconds
        for stream in streams:
            if stream.name in owned:
                continue
            while True:
                try:
                    await self.js.stream_info(stream.name)
                    break
                except NotFoundError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    log.info("waiting for a stream its owner creates", stream=stream.name)
                    await asyncio.sleep(0.2)

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
            await service.db.migrate_in_child(migrations)
            await service.broker.connect()
            await service.declare_streams(streams)
            await ensure_consumers(
                service.js, (c.subscription for routes in service._routes for c in routes.consumed)
            )
            await service._answers.subscribe(service.broker.connection)
            for pull in service._pulls:
                await pull.start(service.broker.connection)
            yield
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
            await service.db.close()

        relay: asyncio.Task[None]

        async def start_relay() -> None:
            nonlocal relay
            relay = asyncio.create_task(service.outbox.relay(service.db, service.js))
            settle_memory()
            service.ready = True
            log.info(
                "service ready",
                http_port=service.settings.http_port,
                nats_url=service.settings.nats_url,
            )

        async def stop_answering() -> None:
            # Before the broker stops and closes the connection the replies go out on.
            service.ready = False
            await asyncio.gather(
                service._answers.drain(GRACEFUL_SECONDS),
                *(pull.stop(GRACEFUL_SECONDS) for pull in service._pulls),
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
        async def asyncapi(scope: Scope) -> AsgiResponse:
            if service._asyncapi is None:
                from singlewindow.runtime.asyncapi import document

                [routes] = service._routes
                service._asyncapi = json_bytes(document(routes, title=title))
            return AsgiResponse(
                service._asyncapi, 200, headers={"content-type": "application/json"}
            )

        @get(include_in_schema=False)
        async def metrics(scope: Scope) -> AsgiResponse:
            return AsgiResponse(
                generate_latest(), 200, headers={"content-type": CONTENT_TYPE_LATEST}
            )

        return AsgiFastStream(
            self.broker,
            logger=None,
            lifespan=lifespan,
            after_startup=[start_relay],
            on_shutdown=[stop_answering],
            asgi_routes=[
                ("/healthz", healthz),
                ("/readyz", readyz),
                ("/metrics", metrics),
                ("/docs/asyncapi", asyncapi),
            ],
        )


def owned_streams(service: str) -> set[str]:
    """The names of the streams a service's contract module declares: the ones it owns."""
    try:
        contract = importlib.import_module(f"singlewindow.contracts.{service.replace('-', '_')}")
    except ModuleNotFoundError:
        return set()
    return {value.name for value in vars(contract).values() if isinstance(value, StreamSpec)}


def settle_memory() -> None:
    """Once started: collect start-up's garbage, keep what is left out of later collections,
    and hand the freed heap back to the system (glibc's malloc_trim), so an idle service holds
    only what it uses."""
    gc.collect()
    gc.freeze()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


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


GRACEFUL_SECONDS = 10.0
"""How long a stopping service gives the requests and events under way to finish."""


async def _undecoded(msg: NatsMessage) -> NatsMessage:
    """Hand handlers the message itself: the request's model parses its body, once."""
    return msg
