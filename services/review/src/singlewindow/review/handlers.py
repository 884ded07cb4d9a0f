"""The review service's subscribers: tasks from submissions, reviewers' decisions."""

from __future__ import annotations

from functools import partial

from faststream.nats import NatsMessage, NatsRouter
from singlewindow.review.dependencies import Deps, Review
from singlewindow.review.domain import add_working_days, check_decision, new_task_id
from singlewindow.review.repository import Tasks
from singlewindow.shared.contracts import registration
from singlewindow.shared.contracts import review as contract
from singlewindow.shared.contracts.review import (
    DecideTask,
    ListTasks,
    ReviewDecided,
    ShowTask,
    TaskList,
    TaskView,
)
from singlewindow.shared.db import as_utc
from singlewindow.shared.errors import DomainError, ErrorCode
from singlewindow.shared.events import CloudEvent
from singlewindow.shared.service import event_subscriber, request_subscriber
from sqlalchemy.ext.asyncio import AsyncConnection

router = NatsRouter()

SUBMITTED_CONSUMER = "review-registration-submitted"
RESUBMITTED_CONSUMER = "review-registration-resubmitted"


@event_subscriber(
    router,
    registration.STREAM,
    registration.SUBMITTED,
    SUBMITTED_CONSUMER,
    service=contract.SERVICE,
)
async def open_task_for_submission(msg: NatsMessage, deps: Deps) -> None:
    """Open a review task for a newly submitted cardless application."""
    await deps.service.consume(SUBMITTED_CONSUMER, msg, partial(_open_task, deps))


@event_subscriber(
    router,
    registration.STREAM,
    registration.RESUBMITTED,
    RESUBMITTED_CONSUMER,
    service=contract.SERVICE,
)
async def open_task_for_resubmission(msg: NatsMessage, deps: Deps) -> None:
    """Open a review task for a corrected application."""
    await deps.service.consume(RESUBMITTED_CONSUMER, msg, partial(_open_task, deps))


@request_subscriber(router, contract.LIST_TASKS, contract.QUEUE)
async def list_tasks(msg: NatsMessage, deps: Deps) -> bytes:
    """List review tasks (open ones by default), oldest first, with their SLA due time."""

    async def handle(request: ListTasks) -> TaskList:
        async with deps.service.db.reading() as connection:
            tasks = Tasks(connection)
            return TaskList(
                tasks=await tasks.list(request.state, request.limit, request.offset),
                total=await tasks.count(request.state),
            )

    return await deps.service.answer(msg, ListTasks, handle)


@request_subscriber(router, contract.SHOW_TASK, contract.QUEUE)
async def show_task(msg: NatsMessage, deps: Deps) -> bytes:
    """Show one task with what the applicant submitted."""

    async def handle(request: ShowTask) -> TaskView:
        async with deps.service.db.reading() as connection:
            return await _task(Tasks(connection), request.task_id)

    return await deps.service.answer(msg, ShowTask, handle)


@request_subscriber(router, contract.DECIDE_TASK, contract.QUEUE)
async def decide_task(msg: NatsMessage, deps: Deps) -> bytes:
    """Approve, reject or return a task, and announce the decision."""

    async def handle(request: DecideTask) -> TaskView:
        async with deps.service.db.transaction() as connection:
            tasks = Tasks(connection)
            task = await _task(tasks, request.task_id)
            check_decision(task.state, request.decision, request.reason)
            decided = await tasks.decide(
                request.task_id, request.decision, request.reason, request.reviewer
            )
            if decided is None:
                raise DomainError(ErrorCode.CONFLICT, "task is already decided")
            assert decided.decided_at is not None
            await deps.service.emit(
                connection,
                contract.DECIDED,
                ReviewDecided(
                    task_id=decided.task_id,
                    kind=decided.kind,
                    application_id=decided.application_id,
                    attempt=decided.attempt,
                    uscc=decided.uscc,
                    decision=request.decision,
                    reason=request.reason,
                    reviewer=request.reviewer,
                    decided_at=decided.decided_at,
                ),
                subject=decided.uscc,
            )
        return decided

    return await deps.service.answer(msg, DecideTask, handle)


async def _open_task(deps: Review, connection: AsyncConnection, event: CloudEvent) -> None:
    submitted = registration.SUBMITTED.parse(event)
    created_at = as_utc(event.time)
    await Tasks(connection).add(
        task_id=new_task_id(),
        kind=submitted.kind,
        application_id=submitted.application_id,
        attempt=submitted.attempt,
        uscc=submitted.enterprise.uscc,
        enterprise_name=submitted.enterprise.name,
        submission=submitted.model_dump(mode="json"),
        created_at=created_at,
        due_by=add_working_days(created_at, deps.settings.sla_working_days),
    )


async def _task(tasks: Tasks, task_id: str) -> TaskView:
    task = await tasks.get(task_id)
    if task is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no review task {task_id}")
    return task
