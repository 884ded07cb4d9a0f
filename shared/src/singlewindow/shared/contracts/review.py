"""Contracts of the review service: back-office review tasks and decisions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from singlewindow.shared.events import EventData, EventSpec, StreamSpec
from singlewindow.shared.wire import Request

SERVICE = "review"
QUEUE = "review"
STREAM = StreamSpec(
    name="SW_REVIEW",
    subjects=("sw.events.review.>",),
    description="Back-office review decisions",
)

LIST_TASKS = "sw.rpc.review.tasks.list"
SHOW_TASK = "sw.rpc.review.tasks.show"
DECIDE_TASK = "sw.rpc.review.tasks.decide"

TaskId = Annotated[str, Field(strict=True, pattern=r"^task_[A-Za-z0-9_-]{8,40}$")]
Reason = Annotated[
    str, Field(strict=True), StringConstraints(strip_whitespace=True, min_length=1, max_length=500)
]
Reviewer = Annotated[
    str, Field(strict=True), StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
]


class TaskState(StrEnum):
    """Open tasks wait for a reviewer; decided ones are kept for the record."""

    OPEN = "open"
    DECIDED = "decided"


class Decision(StrEnum):
    """What a reviewer can decide."""

    APPROVE = "approve"
    REJECT = "reject"
    RETURN = "return"


class ListTasks(Request):
    """List review tasks, open ones by default, oldest first, a page at a time."""

    state: TaskState | None = TaskState.OPEN
    limit: Annotated[int, Field(strict=True, ge=1, le=500)] = 100
    offset: Annotated[int, Field(strict=True, ge=0)] = 0


class ShowTask(Request):
    """Show one task with what was submitted."""

    task_id: TaskId


class DecideTask(Request):
    """Approve, reject or return a task; reject and return need a reason."""

    task_id: TaskId
    decision: Decision
    reason: Reason | None = None
    reviewer: Reviewer


class TaskView(BaseModel):
    """A review task as a reviewer sees it."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    kind: str
    application_id: str
    uscc: str
    enterprise_name: str
    attempt: int
    state: TaskState
    created_at: datetime
    due_by: datetime
    overdue: bool
    decision: Decision | None
    reason: str | None
    reviewer: str | None
    decided_at: datetime | None
    submission: dict[str, Any]


class TaskList(BaseModel):
    """A page of tasks, oldest first, and how many tasks match in all."""

    model_config = ConfigDict(frozen=True)

    tasks: tuple[TaskView, ...]
    total: int
    """Tasks in the state asked for, on every page."""


class ReviewDecided(EventData):
    """A reviewer decided a task."""

    task_id: str
    kind: str
    application_id: str
    attempt: int
    uscc: str
    decision: Decision
    reason: str | None
    reviewer: str
    decided_at: datetime


DECIDED = EventSpec(SERVICE, "decided", 1, ReviewDecided)
