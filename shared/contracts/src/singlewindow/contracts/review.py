"""Contracts of the review service: back-office review tasks and decisions.

Review knows nothing of what it reviews. A service that wants something reviewed publishes
`REQUESTED` (a kind, its own reference, the USCC, and what the reviewer must see) through its
outbox; review opens a task and, once a reviewer decides, publishes `DECIDED` carrying the kind
and reference back, for the requester to apply.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from singlewindow.contracts.endpoints import Audience, Endpoint, Subscription
from singlewindow.contracts.events import DAY, MIB, Discard, EventData, EventSpec, StreamSpec
from singlewindow.contracts.wire import AuthenticatedRequest

SERVICE = "review"
QUEUE = "review"
STREAM = StreamSpec(
    name="SW_REVIEW",
    subjects=("sw.events.review.>",),
    description=(
        "Back-office review decisions. Kept 365 days; a full stream refuses new decisions rather"
        " than dropping old ones, since a decision the requester has not applied yet would be lost"
    ),
    max_age_seconds=365 * DAY,
    max_bytes=256 * MIB,
    discard=Discard.NEW,
)
REQUESTS_STREAM = StreamSpec(
    name="SW_REVIEW_REQUESTS",
    subjects=("sw.internal.review.>",),
    description=(
        "Reviews requested of the back office by other services (not public). Kept 365 days;"
        " a full stream refuses new requests rather than dropping old ones, since a request"
        " review has not opened a task for yet would be lost"
    ),
    max_age_seconds=365 * DAY,
    max_bytes=256 * MIB,
    discard=Discard.NEW,
)


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


class ListTasks(AuthenticatedRequest):
    """List review tasks, open ones by default, oldest first, a page at a time.

    A reviewer sees the unclaimed tasks and their own; a supervisor sees all work.
    """

    state: TaskState | None = TaskState.OPEN
    limit: Annotated[int, Field(strict=True, ge=1, le=500)] = 100
    offset: Annotated[int, Field(strict=True, ge=0)] = 0
    mine: Annotated[bool, Field(strict=True)] = False
    """Only the tasks assigned to the caller."""
    overdue: Annotated[bool, Field(strict=True)] = False
    """Only the open tasks past their SLA due time."""


class ShowTask(AuthenticatedRequest):
    """Show one task with what was submitted."""

    task_id: TaskId


class ClaimTask(AuthenticatedRequest):
    """Assign an unclaimed open task to its caller."""

    task_id: TaskId


class AssignTask(AuthenticatedRequest):
    """Reassign an open task to a reviewer (supervisors only)."""

    task_id: TaskId
    reviewer: Reviewer


class DecideTask(AuthenticatedRequest):
    """Approve, reject or return a task; reject and return need a reason.

    The reviewer is the caller; a task claimed by another reviewer is theirs to decide.
    """

    task_id: TaskId
    decision: Decision
    reason: Reason | None = None


class TaskView(BaseModel):
    """A review task as a reviewer sees it."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    kind: str
    reference: str
    application_id: str = Field(description="The reference; kept for clients of v1")
    uscc: str
    enterprise_name: str = Field(description="The requester's title for the task")
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
    assignee: str | None = None
    """The reviewer the task is assigned to (by a claim or a supervisor), if any."""


class TaskList(BaseModel):
    """A page of tasks, oldest first, and how many tasks match in all."""

    model_config = ConfigDict(frozen=True)

    tasks: tuple[TaskView, ...]
    total: int
    """Tasks matching the request, on every page."""


class ReviewRequested(EventData):
    """A service asks for a back-office review of something it owns."""

    kind: str = Field(description="What is reviewed, e.g. `cardless` (a registration)")
    reference: str = Field(description="The requester's id of what is reviewed")
    attempt: int = Field(description="Which submission of the reference this is, from 1")
    uscc: str
    title: str = Field(description="What the queue shows, e.g. the enterprise's name")
    details: dict[str, Any] = Field(
        description="What the reviewer must see; never a secret or a full ID number"
    )


class ReviewDecided(EventData):
    """A reviewer decided a task."""

    task_id: str
    kind: str
    reference: str
    application_id: str = Field(description="The reference; kept for consumers of v1")
    attempt: int
    uscc: str
    decision: Decision
    reason: str | None
    reviewer: str
    decided_at: datetime


class TaskAction(StrEnum):
    """What a staff member did to a task, as the audit trail records it."""

    CLAIMED = "claimed"
    ASSIGNED = "assigned"
    DECIDED = "decided"


class TaskAudited(EventData):
    """A staff member claimed, reassigned or decided a task (audit)."""

    task_id: str
    action: TaskAction
    by: str
    """The staff account that acted, from its session."""
    assignee: str | None
    decision: Decision | None = None


REQUESTED = EventSpec(SERVICE, "requested", 1, ReviewRequested, internal=True)
"""Published by the requesting service (registration, later filing), consumed by review."""
DECIDED = EventSpec(SERVICE, "decided", 1, ReviewDecided)
TASK_AUDITED = EventSpec(SERVICE, "task-audited", 1, TaskAudited, audit=True)

REVIEW_REQUESTS = Subscription(
    SERVICE, REQUESTS_STREAM, REQUESTED, "review-requests", "Open a task for each review requested"
)


LIST_TASKS = Endpoint(SERVICE, "tasks.list", ListTasks, TaskList, Audience.BACK_OFFICE)
SHOW_TASK = Endpoint(SERVICE, "tasks.show", ShowTask, TaskView, Audience.BACK_OFFICE)
DECIDE_TASK = Endpoint(
    SERVICE, "tasks.decide", DecideTask, TaskView, Audience.BACK_OFFICE, changes_state=True
)
CLAIM_TASK = Endpoint(
    SERVICE, "tasks.claim", ClaimTask, TaskView, Audience.BACK_OFFICE, changes_state=True
)
ASSIGN_TASK = Endpoint(
    SERVICE, "tasks.assign", AssignTask, TaskView, Audience.BACK_OFFICE, changes_state=True
)
