"""The review service's tables and queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from singlewindow.contracts.review import Decision, TaskState, TaskView
from singlewindow.runtime.clock import Clock
from singlewindow.runtime.db import as_utc
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

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
    Column("assignee", String(64), index=True),
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
        await self.connection.run_sync(
            lambda sync: add_task(
                sync,
                task_id=task_id,
                kind=kind,
                reference=reference,
                attempt=attempt,
                uscc=uscc,
                title=title,
                details=details,
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

    async def list(self, scope: TaskFilter, limit: int, offset: int) -> tuple[TaskView, ...]:
        """A page of the tasks `scope` selects, oldest first."""
        now = self.clock.now()
        query = (
            select(tasks)
            .where(*scope.conditions(now))
            .order_by(tasks.c.created_at, tasks.c.task_id)
            .limit(limit)
            .offset(offset)
        )
        rows = (await self.connection.execute(query)).mappings().all()
        return tuple(_view(row, now) for row in rows)

    async def count(self, scope: TaskFilter) -> int:
        """How many tasks `scope` selects."""
        query = select(func.count()).select_from(tasks).where(*scope.conditions(self.clock.now()))
        return int((await self.connection.execute(query)).scalar_one())

    async def assign(self, task_id: str, assignee: str, *, unclaimed_only: bool) -> TaskView | None:
        """Assign an open task (only if unclaimed or already `assignee`'s, for a claim); None
        if it is not open, or claimed by someone else."""
        condition = [tasks.c.task_id == task_id, tasks.c.state == TaskState.OPEN.value]
        if unclaimed_only:
            condition.append(_free_for(assignee))
        result = await self.connection.execute(
            update(tasks).where(*condition).values(assignee=assignee).returning(tasks)
        )
        row = result.mappings().first()
        return None if row is None else _view(row, self.clock.now())

    async def decide(
        self, task_id: str, decision: Decision, reason: str | None, reviewer: str
    ) -> TaskView | None:
        """Decide an open task unclaimed or claimed by `reviewer`; None if it is not open, or
        another reviewer's."""
        result = await self.connection.execute(
            update(tasks)
            .where(
                tasks.c.task_id == task_id,
                tasks.c.state == TaskState.OPEN.value,
                _free_for(reviewer),
            )
            .values(
                state=TaskState.DECIDED.value,
                decision=decision.value,
                reason=reason,
                reviewer=reviewer,
                assignee=reviewer,
                decided_at=self.clock.now(),
            )
            .returning(tasks)
        )
        row = result.mappings().first()
        return None if row is None else _view(row, self.clock.now())


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a listing selects."""

    state: TaskState | None
    visible_to: str | None = None
    """A reviewer's name: only unclaimed tasks and theirs. None: all work (a supervisor)."""
    assignee: str | None = None
    """Only this reviewer's tasks."""
    overdue: bool = False
    """Only open tasks past their due time."""

    def conditions(self, now: datetime) -> list[ColumnElement[bool]]:
        """The WHERE conditions of this filter at `now`."""
        conditions: list[ColumnElement[bool]] = []
        if self.state is not None:
            conditions.append(tasks.c.state == self.state.value)
        if self.visible_to is not None:
            conditions.append(_free_for(self.visible_to))
        if self.assignee is not None:
            conditions.append(tasks.c.assignee == self.assignee)
        if self.overdue:
            conditions.append(and_(tasks.c.state == TaskState.OPEN.value, tasks.c.due_by < now))
        return conditions


def _free_for(reviewer: str) -> ColumnElement[bool]:
    """Unclaimed, or claimed by `reviewer`."""
    return or_(tasks.c.assignee.is_(None), tasks.c.assignee == reviewer)


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
        assignee=row["assignee"],
    )


_INSERT_TASK = insert(tasks)


def add_task(
    connection: Connection,
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
    """Open a task, in a synchronous transaction (the review-request consumer's)."""
    connection.execute(
        _INSERT_TASK,
        {
            "task_id": task_id,
            "kind": kind,
            "application_id": reference,
            "attempt": attempt,
            "uscc": uscc,
            "enterprise_name": title,
            "state": TaskState.OPEN.value,
            "submission": json.dumps(details, ensure_ascii=False),
            "created_at": created_at,
            "due_by": due_by,
        },
    )
