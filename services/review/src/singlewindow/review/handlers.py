"""The review service's handlers: tasks from review requests, reviewers' decisions."""

from __future__ import annotations

from singlewindow.contracts import review as contract
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.review import (
    DecideTask,
    ListTasks,
    ReviewDecided,
    ReviewRequested,
    ShowTask,
    TaskList,
    TaskView,
)
from singlewindow.review.dependencies import Review
from singlewindow.review.domain import (
    add_working_days,
    check_decision,
    lacks_reason,
    new_task_id,
)
from singlewindow.review.repository import Tasks
from singlewindow.runtime.db import as_utc
from singlewindow.runtime.routes import Routes
from sqlalchemy.ext.asyncio import AsyncConnection

routes = Routes[Review](contract.SERVICE)


@routes.consume(contract.REVIEW_REQUESTS)
async def open_task(
    requested: ReviewRequested, event: CloudEvent, connection: AsyncConnection, deps: Review
) -> None:
    """Open a review task, due within the SLA's working days of the request."""
    created_at = as_utc(event.time)
    await Tasks(connection, deps.service.clock).add(
        task_id=new_task_id(),
        kind=requested.kind,
        reference=requested.reference,
        attempt=requested.attempt,
        uscc=requested.uscc,
        title=requested.title,
        details=requested.details,
        created_at=created_at,
        due_by=add_working_days(created_at, deps.settings.sla_working_days),
    )


@routes.serve(contract.LIST_TASKS)
async def list_tasks(request: ListTasks, deps: Review) -> TaskList:
    """List review tasks (open ones by default), oldest first, with their SLA due time."""
    async with deps.service.db.reading() as connection:
        tasks = Tasks(connection, deps.service.clock)
        return TaskList(
            tasks=await tasks.list(request.state, request.limit, request.offset),
            total=await tasks.count(request.state),
        )


@routes.serve(contract.SHOW_TASK)
async def show_task(request: ShowTask, deps: Review) -> TaskView:
    """Show one task with what the reviewer must see."""
    async with deps.service.db.reading() as connection:
        return await _task(Tasks(connection, deps.service.clock), request.task_id)


@routes.serve(contract.DECIDE_TASK)
async def decide_task(request: DecideTask, deps: Review) -> TaskView:
    """Approve, reject or return a task, and announce the decision."""
    async with deps.service.db.transaction() as connection:
        tasks = Tasks(connection, deps.service.clock)
        decided = (
            None
            if lacks_reason(request.decision, request.reason)
            else await tasks.decide(
                request.task_id, request.decision, request.reason, request.reviewer
            )
        )
        if decided is None:  # not decided now: say why
            task = await _task(tasks, request.task_id)
            check_decision(task.state, request.decision, request.reason)
            raise DomainError(ErrorCode.CONFLICT, "task is already decided")
        assert decided.decided_at is not None
        await deps.service.emit(
            connection,
            contract.DECIDED,
            ReviewDecided(
                task_id=decided.task_id,
                kind=decided.kind,
                reference=decided.reference,
                application_id=decided.reference,
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


async def _task(tasks: Tasks, task_id: str) -> TaskView:
    task = await tasks.get(task_id)
    if task is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no review task {task_id}")
    return task
