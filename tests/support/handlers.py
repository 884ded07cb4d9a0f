"""The fast tier: a service's handlers called directly, on a temporary SQLite file.

No NATS and no process: a `LocalService` is the real `Service` (its database, outbox and inbox),
with the requests it would make to other services answered by the test instead, as
cosmicpython's `FakeUnitOfWork` stands in for the real one.

    async with local_service("review", metadata, tmp_path) as service:
        view = await show_task(ShowTask(task_id=...), Review(service=service, ...))
        assert staged(service) == [...]
"""

from __future__ import annotations

import importlib.resources
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar, cast

from nats.js.client import JetStreamContext
from pydantic import BaseModel
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.events import CloudEvent
from singlewindow.runtime.clock import Clock, ManualClock
from singlewindow.runtime.routes import Routes
from singlewindow.runtime.service import Service, ServiceSettings
from sqlalchemy import MetaData, event, select
from sqlalchemy.ext.asyncio import AsyncConnection

ReplyT = TypeVar("ReplyT", bound=BaseModel | None)

Answer = Callable[[Any], Any]


class LocalService(Service):
    """A service whose requests to other services get the answers a test gives."""

    def __init__(
        self, name: str, settings: ServiceSettings, metadata: MetaData, clock: Clock
    ) -> None:
        super().__init__(name, settings, metadata, clock=clock)
        self.answers: dict[str, Answer] = {}
        self.asked: list[tuple[str, BaseModel]] = []

    def answer(self, endpoint: Endpoint[Any, Any], answer: Answer) -> None:
        """Answer requests to `endpoint` with `answer(request)`; raise in it for a refusal."""
        self.answers[endpoint.subject] = answer

    async def ask(
        self, endpoint: Endpoint[Any, ReplyT], request: BaseModel, *, wait: float
    ) -> ReplyT:
        self.asked.append((endpoint.subject, request))
        reply: ReplyT = self.answers[endpoint.subject](request)
        return reply


@asynccontextmanager
async def local_service(
    name: str,
    metadata: MetaData,
    directory: Path,
    *,
    clock: Clock | None = None,
    **settings: Any,
) -> AsyncIterator[LocalService]:
    """The service `name` on a fresh SQLite file in `directory`, its migrations applied, its
    time read from `clock` (a `ManualClock` standing still unless the test moves it)."""
    package = f"singlewindow.{name.replace('-', '_')}"
    migrations = Path(str(importlib.resources.files(package) / "migrations"))
    config = ServiceSettings(
        database_url=f"sqlite+aiosqlite:///{directory / f'{name}.db'}", **settings
    )
    service = LocalService(name, config, metadata, clock or ManualClock())
    await service.db.migrate(migrations)
    try:
        yield service
    finally:
        await service.db.close()


async def staged(service: Service) -> list[CloudEvent]:
    """The events the service's handlers committed to its outbox, oldest first."""
    table = service.outbox.table
    async with service.db.reading() as connection:
        rows = (await connection.execute(select(table.c.payload).order_by(table.c.seq))).all()
    return [CloudEvent.model_validate_json(row.payload) for row in rows]


class Delivery:
    """A JetStream message as a consumer's inbox sees it, remembering how it was settled."""

    def __init__(self, cloud_event: CloudEvent, *, attempt: int = 1) -> None:
        self.body = cloud_event.model_dump_json(exclude_none=True).encode()
        self.raw_message = SimpleNamespace(metadata=SimpleNamespace(num_delivered=attempt))
        self.acked = False
        self.redelivery_delay: float | None = None
        self.dead_letter_reason: str | None = None

    async def ack(self) -> None:
        self.acked = True

    async def nack(self, delay: float | None = None) -> None:
        self.redelivery_delay = delay


async def deliver(
    service: Service, routes: Routes[Any], deps: Any, cloud_event: CloudEvent
) -> Delivery:
    """Deliver `cloud_event` to the route consuming its type, through the service's inbox, as
    JetStream would (a test delivers the same event twice to see it applied once)."""
    [consumed] = [c for c in routes.consumed if c.subscription.event.type == cloud_event.type]
    spec, prepare = consumed.subscription.event, consumed.prepare
    prepared: list[Any] = []

    async def before(current: CloudEvent) -> None:
        assert prepare is not None
        prepared.append(await prepare(spec.parse(current), deps))

    async def effect(connection: AsyncConnection, current: CloudEvent) -> None:
        data = prepared[-1] if prepare is not None else spec.parse(current)
        await consumed.handler(data, current, connection, deps)

    message = Delivery(cloud_event)

    async def dead_letter(consumer: str, delivered: Any, reason: str) -> None:
        message.dead_letter_reason = reason

    await service.inbox.consume(
        consumed.subscription.durable,
        message,
        effect,
        dead_letter,
        prepare=before if prepare is not None else None,
    )
    return message


class FakeJetStream:
    """Stores what an outbox relay publishes, acknowledging each at once."""

    def __init__(self) -> None:
        self.published: list[CloudEvent] = []

    async def publish(self, subject: str, payload: bytes, **options: Any) -> None:
        self.published.append(CloudEvent.model_validate_json(payload))


async def relay(service: Service) -> list[CloudEvent]:
    """Relay the service's outbox once, as its relay would after a commit; what it published."""
    js = FakeJetStream()
    await service.outbox.relay_once(service.db, cast(JetStreamContext, js))
    return js.published


@contextmanager
def statements(*services: Service) -> Iterator[list[str]]:
    """The SQL the services' databases execute inside the block, BEGINs included (SQLite's
    COMMIT goes through the driver, not a cursor, so it is not counted)."""
    executed: list[str] = []

    def record(*args: Any) -> None:
        executed.append(args[2])

    engines = [engine for service in services for engine in service.db.sync_engines]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield executed
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def kind_of(statement: str) -> str:
    """A statement as a count reads it: `BEGIN IMMEDIATE`, `SELECT applications`, …"""
    words = statement.split()
    verb = words[0].upper()
    if verb == "BEGIN":
        return " ".join(words[:2])
    if verb == "SELECT":
        return f"SELECT {words[[w.upper() for w in words].index('FROM') + 1]}"
    if verb == "UPDATE":
        return f"UPDATE {words[1]}"
    return f"{verb} {words[2]}"  # INSERT INTO t, DELETE FROM t
