"""The review service's handlers: tasks from review requests, reviewers' claims and decisions.

Every request carries a staff token: review asks accounts who is calling (before any write
transaction), and the decision records that reviewer.
"""

from __future__ import annotations

from singlewindow.contracts import accounts
from singlewindow.contracts import review as contract
from singlewindow.contracts.accounts import (
    ResolveStaffSession,
    ShowStaffMember,
    StaffCaller,
    StaffStatus,
)
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.review import (
    AssignTask,
    ClaimTask,
    DecideTask,
    ListTasks,
    ReviewDecided,
    ReviewRequested,
    ShowTask,
    TaskAction,
    TaskAudited,
    TaskList,
    TaskState,
    TaskView,
)
from singlewindow.review.dependencies import Review
from singlewindow.review.domain import (
    REVIEWERS,
    add_working_days,
    check_decision,
    check_reviewer,
    check_visible,
    claimed_by_another,
    lacks_reason,
    new_task_id,
)
from singlewindow.review.repository import TaskFilter, Tasks, add_task
from singlewindow.runtime.db import as_utc
from singlewindow.runtime.routes import Routes
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

routes = Routes[Review](
    contract.SERVICE, asks=(accounts.RESOLVE_STAFF_SESSION, accounts.SHOW_STAFF_MEMBER)
)


@routes.consume_sync(contract.REVIEW_REQUESTS)
def open_task(
    requested: ReviewRequested, event: CloudEvent, connection: Connection, deps: Review
) -> None:
    """Open a review task, due within the SLA's working days of the request (the inbox's record
    and the task: one transaction, one trip to the database)."""
    created_at = as_utc(event.time)
    add_task(
        connection,
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


async def reviewer(deps: Review, token: str, *, supervise: bool = False) -> StaffCaller:
    """The reviewer (or, to `supervise`, the supervisor) behind a staff token."""
    caller = await deps.service.ask(
        accounts.RESOLVE_STAFF_SESSION,
        ResolveStaffSession(token=token),
        wait=deps.settings.accounts_timeout_seconds,
    )
    check_reviewer(caller.role, supervise=supervise)
    return caller


@routes.serve(contract.LIST_TASKS)
async def list_tasks(request: ListTasks, deps: Review) -> TaskList:
    """List review tasks (open ones by default), oldest first, with assignee and SLA due time."""
    caller = await reviewer(deps, request.token)
    scope = TaskFilter(
        state=request.state,
        visible_to=None if caller.role is accounts.StaffRole.SUPERVISOR else caller.account,
        assignee=caller.account if request.mine else None,
        overdue=request.overdue,
    )
    async with deps.service.db.reading() as connection:
        tasks = Tasks(connection, deps.service.clock)
        return TaskList(
            tasks=await tasks.list(scope, request.limit, request.offset),
            total=await tasks.count(scope),
        )


@routes.serve(contract.SHOW_TASK)
async def show_task(request: ShowTask, deps: Review) -> TaskView:
    """Show one task with what the reviewer must see."""
    caller = await reviewer(deps, request.token)
    async with deps.service.db.reading() as connection:
        task = await _task(Tasks(connection, deps.service.clock), request.task_id)
    check_visible(caller.role, caller.account, task.assignee)
    return task


@routes.serve(contract.CLAIM_TASK)
async def claim_task(request: ClaimTask, deps: Review) -> TaskView:
    """Assign an unclaimed open task to its caller."""
    caller = await reviewer(deps, request.token)
    async with deps.service.db.transaction() as connection:
        tasks = Tasks(connection, deps.service.clock)
        claimed = await tasks.assign(request.task_id, caller.account, unclaimed_only=True)
        if claimed is None:  # not claimed now: say why
            task = await _task(tasks, request.task_id)
            if task.state is not TaskState.OPEN:
                raise DomainError(ErrorCode.CONFLICT, "task is already decided")
            assert task.assignee is not None
            raise claimed_by_another(task.assignee)
        await _audit(deps, connection, claimed, TaskAction.CLAIMED, caller.account)
    return claimed


@routes.serve(contract.ASSIGN_TASK)
async def assign_task(request: AssignTask, deps: Review) -> TaskView:
    """Reassign an open task to a reviewer (supervisors only)."""
    caller = await reviewer(deps, request.token, supervise=True)
    try:
        member = await deps.service.ask(
            accounts.SHOW_STAFF_MEMBER,
            ShowStaffMember(account=request.reviewer),
            wait=deps.settings.accounts_timeout_seconds,
        )
    except DomainError as exc:
        if exc.code is not ErrorCode.NOT_FOUND:
            raise
        member = None
    if member is None or member.role not in REVIEWERS or member.status is not StaffStatus.ACTIVE:
        raise DomainError(
            ErrorCode.INVALID,
            f"{request.reviewer} is not an active reviewer or supervisor",
            (FieldError(path="reviewer", message="is not an active reviewer or supervisor"),),
        )
    async with deps.service.db.transaction() as connection:
        tasks = Tasks(connection, deps.service.clock)
        assigned = await tasks.assign(request.task_id, member.account, unclaimed_only=False)
        if assigned is None:
            await _task(tasks, request.task_id)
            raise DomainError(ErrorCode.CONFLICT, "task is already decided")
        await _audit(deps, connection, assigned, TaskAction.ASSIGNED, caller.account)
    return assigned


@routes.serve(contract.DECIDE_TASK)
async def decide_task(request: DecideTask, deps: Review) -> TaskView:
    """Approve, reject or return a task as the calling reviewer, and announce the decision."""
    caller = await reviewer(deps, request.token)
    async with deps.service.db.transaction() as connection:
        tasks = Tasks(connection, deps.service.clock)
        decided = (
            None
            if lacks_reason(request.decision, request.reason)
            else await tasks.decide(
                request.task_id, request.decision, request.reason, caller.account
            )
        )
        if decided is None:  # not decided now: say why
            task = await _task(tasks, request.task_id)
            check_decision(task.state, request.decision, request.reason)
            if task.assignee not in (None, caller.account):
                assert task.assignee is not None
                raise claimed_by_another(task.assignee)
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
                reviewer=caller.account,
                decided_at=decided.decided_at,
            ),
            subject=decided.uscc,
        )
        await _audit(deps, connection, decided, TaskAction.DECIDED, caller.account)
    return decided


async def _task(tasks: Tasks, task_id: str) -> TaskView:
    task = await tasks.get(task_id)
    if task is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no review task {task_id}")
    return task


async def _audit(
    deps: Review, connection: AsyncConnection, task: TaskView, action: TaskAction, by: str
) -> None:
    await deps.service.emit(
        connection,
        contract.TASK_AUDITED,
        TaskAudited(
            task_id=task.task_id,
            action=action,
            by=by,
            assignee=task.assignee,
            decision=task.decision,
        ),
        subject=task.uscc,
    )
