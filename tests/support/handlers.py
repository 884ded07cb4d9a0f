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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.events import CloudEvent
from singlewindow.runtime.clock import Clock, ManualClock
from singlewindow.runtime.service import Service, ServiceSettings
from sqlalchemy import MetaData, select

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
