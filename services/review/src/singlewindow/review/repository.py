"""The review service's tables and queries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from singlewindow.contracts.review import Decision, TaskState, TaskView
from singlewindow.runtime.clock import Clock
from singlewindow.runtime.db import as_utc
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

metadata = MetaData()

tasks = Table(
    "tasks",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("application_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("uscc", String(18), nullable=False),
    Column("enterprise_name", String(100), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("submission", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("due_by", DateTime(timezone=True), nullable=False),
    Column("decision", String(16)),
    Column("reason", Text),
    Column("reviewer", String(64)),
    Column("decided_at", DateTime(timezone=True)),
    UniqueConstraint("application_id", "attempt", name="one_task_per_attempt"),
)


class Tasks:
    """Review tasks, inside the caller's transaction; overdue and decided by `clock`'s time."""

    def __init__(self, connection: AsyncConnection, clock: Clock) -> None:
        self.connection = connection
        self.clock = clock

    async def add(
        self,
        *,
        task_id: str,
        kind: str,
        reference: str,
        attempt: int,
        uscc: str,
        title: str,
        details: dict[str, Any],
        created_at: datetime,
        due_by: datetime,
    ) -> None:
        """Open a task."""
        await self.connection.execute(
            insert(tasks).values(
                task_id=task_id,
                kind=kind,
                application_id=reference,
                attempt=attempt,
                uscc=uscc,
                enterprise_name=title,
                state=TaskState.OPEN.value,
                submission=json.dumps(details, ensure_ascii=False),
                created_at=created_at,
                due_by=due_by,
            )
        )

    async def get(self, task_id: str) -> TaskView | None:
        """A task by id."""
        row = (
            (await self.connection.execute(select(tasks).where(tasks.c.task_id == task_id)))
            .mappings()
            .first()
        )
        return None if row is None else _view(row, self.clock.now())

    async def list(self, state: TaskState | None, limit: int, offset: int) -> tuple[TaskView, ...]:
        """A page of tasks in `state` (all if None), oldest first."""
        query = (
            select(tasks).order_by(tasks.c.created_at, tasks.c.task_id).limit(limit).offset(offset)
        )
        if state is not None:
            query = query.where(tasks.c.state == state.value)
        rows = (await self.connection.execute(query)).mappings().all()
        now = self.clock.now()
        return tuple(_view(row, now) for row in rows)

    async def count(self, state: TaskState | None) -> int:
        """How many tasks are in `state` (all if None)."""
        query = select(func.count()).select_from(tasks)
        if state is not None:
            query = query.where(tasks.c.state == state.value)
        return int((await self.connection.execute(query)).scalar_one())

    async def decide(
        self, task_id: str, decision: Decision, reason: str | None, reviewer: str
    ) -> TaskView | None:
        """Decide an open task; None if someone else decided it first."""
        result = await self.connection.execute(
            update(tasks)
            .where(tasks.c.task_id == task_id, tasks.c.state == TaskState.OPEN.value)
            .values(
                state=TaskState.DECIDED.value,
                decision=decision.value,
                reason=reason,
                reviewer=reviewer,
                decided_at=self.clock.now(),
            )
            .returning(tasks)
        )
        row = result.mappings().first()
        return None if row is None else _view(row, self.clock.now())


def _view(row: RowMapping, now: datetime) -> TaskView:
    due_by = as_utc(row["due_by"])
    state = TaskState(row["state"])
    return TaskView(
        task_id=row["task_id"],
        kind=row["kind"],
        reference=row["application_id"],
        application_id=row["application_id"],
        uscc=row["uscc"],
        enterprise_name=row["enterprise_name"],
        attempt=row["attempt"],
        state=state,
        created_at=as_utc(row["created_at"]),
        due_by=due_by,
        overdue=state is TaskState.OPEN and now > due_by,
        decision=None if row["decision"] is None else Decision(row["decision"]),
        reason=row["reason"],
        reviewer=row["reviewer"],
        decided_at=None if row["decided_at"] is None else as_utc(row["decided_at"]),
        submission=json.loads(row["submission"]),
    )
