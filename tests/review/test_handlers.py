"""Review's handlers called directly: a request opens a task due within the SLA, the queue pages
oldest first, a decision is announced once, time is the service's clock, and every request is a
staff member's (accounts' answers about staff tokens given by the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from singlewindow.contracts import accounts, review
from singlewindow.contracts.accounts import (
    ResolveStaffSession,
    ShowStaffMember,
    StaffCaller,
    StaffMember,
    StaffRole,
)
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.review import (
    AssignTask,
    ClaimTask,
    DecideTask,
    Decision,
    ListTasks,
    ReviewRequested,
    ShowTask,
    TaskList,
    TaskState,
)
from singlewindow.review.dependencies import Review
from singlewindow.review.handlers import (
    assign_task,
    claim_task,
    decide_task,
    list_tasks,
    routes,
    show_task,
)
from singlewindow.review.repository import metadata
from singlewindow.review.settings import Settings
from singlewindow.runtime.clock import ManualClock

from tests.support.handlers import LocalService, deliver, kind_of, local_service, staged, statements

USCC = "91500000MA5U7X1C69"
THURSDAY_MORNING = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


STAFF = {
    "li": StaffRole.REVIEWER,
    "wang": StaffRole.REVIEWER,
    "zhao": StaffRole.SUPERVISOR,
    "admin": StaffRole.PLATFORM_ADMIN,
}
"""The staff accounts knows, each with a live session whose token is `token-<name>`."""
LI = "token-li"
WANG = "token-wang"
ZHAO = "token-zhao"


def resolve(request: ResolveStaffSession) -> StaffCaller:
    """Accounts' answer: who a staff token belongs to."""
    name = request.token.removeprefix("token-")
    if name not in STAFF:
        raise DomainError(ErrorCode.UNAUTHENTICATED, "staff session has expired or was ended")
    return StaffCaller(account=name, role=STAFF[name])


def member(request: ShowStaffMember) -> StaffMember:
    if request.account not in STAFF:
        raise DomainError(ErrorCode.NOT_FOUND, f"no staff account {request.account}")
    return StaffMember(account=request.account, role=STAFF[request.account], status="active")


@dataclass
class Reviewing:
    deps: Review
    service: LocalService
    clock: ManualClock


@pytest.fixture
async def reviewing(tmp_path: Path) -> AsyncIterator[Reviewing]:
    clock = ManualClock(THURSDAY_MORNING)
    async with local_service("review", metadata, tmp_path, clock=clock) as service:
        service.answer(accounts.RESOLVE_STAFF_SESSION, resolve)
        service.answer(accounts.SHOW_STAFF_MEMBER, member)
        yield Reviewing(Review(service=service, settings=Settings()), service, clock)


def requested(reviewing: Reviewing, reference: str = "app_12345678") -> CloudEvent:
    data = ReviewRequested(
        kind="cardless",
        reference=reference,
        attempt=1,
        uscc=USCC,
        title="重庆某某贸易有限公司",
        details={"enterprise": {"uscc": USCC}},
    )
    return review.REQUESTED.make(
        data, subject=USCC, source="urn:test:registration", now=reviewing.clock.now()
    )


async def request_review(reviewing: Reviewing, reference: str = "app_12345678") -> str:
    delivery = await deliver(
        reviewing.service, routes, reviewing.deps, requested(reviewing, reference)
    )
    assert delivery.acked
    tasks = (await list_tasks(ListTasks(token=ZHAO, state=None), reviewing.deps)).tasks
    [task_id] = [t.task_id for t in tasks if t.reference == reference]
    return task_id


async def test_a_requested_review_opens_a_task_showing_what_the_reviewer_must_see(
    reviewing: Reviewing,
) -> None:
    task_id = await request_review(reviewing)
    task = await show_task(ShowTask(token=LI, task_id=task_id), reviewing.deps)
    assert (task.kind, task.reference, task.application_id) == (
        "cardless",
        "app_12345678",
        "app_12345678",
    )
    assert task.state is TaskState.OPEN
    assert task.submission == {"enterprise": {"uscc": USCC}}


async def test_a_review_requested_twice_opens_one_task(reviewing: Reviewing) -> None:
    event = requested(reviewing)
    first = await deliver(reviewing.service, routes, reviewing.deps, event)
    again = await deliver(reviewing.service, routes, reviewing.deps, event)
    assert (first.acked, again.acked) == (True, True)
    assert len((await list_tasks(ListTasks(token=LI), reviewing.deps)).tasks) == 1


async def test_a_task_is_due_three_working_days_after_it_was_requested(
    reviewing: Reviewing,
) -> None:
    task = await show_task(
        ShowTask(token=LI, task_id=await request_review(reviewing)), reviewing.deps
    )
    assert task.created_at == THURSDAY_MORNING
    assert task.due_by == datetime(2026, 12, 8, 9, 30, tzinfo=UTC)  # Thursday → Tuesday


async def test_an_open_task_is_overdue_once_the_clock_passes_its_due_time(
    reviewing: Reviewing,
) -> None:
    task_id = await request_review(reviewing)
    show = ShowTask(token=LI, task_id=task_id)
    due_by = (await show_task(show, reviewing.deps)).due_by
    reviewing.clock.advance(due_by - reviewing.clock.now())
    assert not (await show_task(show, reviewing.deps)).overdue
    reviewing.clock.advance(1)
    assert (await show_task(show, reviewing.deps)).overdue
    [listed] = (await list_tasks(ListTasks(token=LI), reviewing.deps)).tasks
    assert listed.overdue


async def test_a_decided_task_is_never_overdue(reviewing: Reviewing) -> None:
    task_id = await request_review(reviewing)
    await decide_task(
        DecideTask(task_id=task_id, decision=Decision.APPROVE, token=LI), reviewing.deps
    )
    reviewing.clock.advance(timedelta(days=30))
    assert not (await show_task(ShowTask(token=LI, task_id=task_id), reviewing.deps)).overdue


async def test_the_queue_lists_open_tasks_oldest_first_a_page_at_a_time(
    reviewing: Reviewing,
) -> None:
    task_ids = []
    for n in range(5):
        task_ids.append(await request_review(reviewing, f"app_{n}2345678"))
        reviewing.clock.advance(timedelta(minutes=1))
    await decide_task(
        DecideTask(task_id=task_ids[1], decision=Decision.APPROVE, token=LI), reviewing.deps
    )
    open_ids = [task_ids[0], *task_ids[2:]]
    first = await list_tasks(ListTasks(token=LI, limit=2), reviewing.deps)
    second = await list_tasks(ListTasks(token=LI, limit=2, offset=2), reviewing.deps)
    assert [t.task_id for t in first.tasks + second.tasks] == open_ids
    everything = await list_tasks(ListTasks(token=ZHAO, state=None), reviewing.deps)
    assert [t.task_id for t in everything.tasks] == task_ids
    decided = await list_tasks(ListTasks(token=LI, state=TaskState.DECIDED), reviewing.deps)
    assert [t.task_id for t in decided.tasks] == [task_ids[1]]


async def test_a_decision_carries_the_kind_and_reference_back(reviewing: Reviewing) -> None:
    task_id = await request_review(reviewing)
    reviewing.clock.advance(timedelta(hours=2))
    await decide_task(
        DecideTask(task_id=task_id, decision=Decision.APPROVE, token=LI), reviewing.deps
    )
    [event] = [e for e in await staged(reviewing.service) if e.type == review.DECIDED.type]
    decided = review.DECIDED.parse(event)
    assert (decided.kind, decided.reference, decided.decision, decided.attempt) == (
        "cardless",
        "app_12345678",
        Decision.APPROVE,
        1,
    )
    assert decided.decided_at == reviewing.clock.now()
    shown = await show_task(ShowTask(token=LI, task_id=task_id), reviewing.deps)
    assert (shown.state, shown.reviewer, shown.decided_at) == (
        TaskState.DECIDED,
        "li",
        reviewing.clock.now(),
    )


async def test_a_task_is_decided_once(reviewing: Reviewing) -> None:
    task_id = await request_review(reviewing)
    approve = DecideTask(task_id=task_id, decision=Decision.APPROVE, token=LI)
    await decide_task(approve, reviewing.deps)
    reject = DecideTask(task_id=task_id, decision=Decision.REJECT, reason="no", token=WANG)
    for again in (approve, reject):
        with pytest.raises(DomainError) as refusal:
            await decide_task(again, reviewing.deps)
        assert refusal.value.code is ErrorCode.CONFLICT
    assert [e.type for e in await staged(reviewing.service)] == [
        review.DECIDED.type,
        review.TASK_AUDITED.type,
    ]
    shown = await show_task(ShowTask(token=LI, task_id=task_id), reviewing.deps)
    assert (shown.decision, shown.reviewer) == (Decision.APPROVE, "li")


async def test_a_rejection_without_a_reason_is_refused_and_leaves_the_task_open(
    reviewing: Reviewing,
) -> None:
    task_id = await request_review(reviewing)
    with pytest.raises(DomainError) as refusal:
        await decide_task(
            DecideTask(task_id=task_id, decision=Decision.REJECT, token=LI), reviewing.deps
        )
    assert refusal.value.code is ErrorCode.INVALID
    assert [f.path for f in refusal.value.fields] == ["reason"]
    assert (
        await show_task(ShowTask(token=LI, task_id=task_id), reviewing.deps)
    ).state is TaskState.OPEN
    assert await staged(reviewing.service) == []


async def test_deciding_an_unknown_task_is_not_found(reviewing: Reviewing) -> None:
    for decision in (Decision.APPROVE, Decision.RETURN):
        with pytest.raises(DomainError) as refusal:
            await decide_task(
                DecideTask(task_id="task_unknown12", decision=decision, token=LI),
                reviewing.deps,
            )
        assert refusal.value.code is ErrorCode.NOT_FOUND


async def test_opening_a_task_takes_two_statements_in_one_transaction(
    reviewing: Reviewing,
) -> None:
    with statements(reviewing.service) as executed:
        await deliver(reviewing.service, routes, reviewing.deps, requested(reviewing))
    assert [kind_of(s) for s in executed] == ["BEGIN IMMEDIATE", "INSERT inbox", "INSERT tasks"]


async def test_a_decision_takes_two_statements_in_one_transaction(reviewing: Reviewing) -> None:
    task_id = await request_review(reviewing)
    with statements(reviewing.service) as executed:
        await decide_task(
            DecideTask(task_id=task_id, decision=Decision.APPROVE, token=LI), reviewing.deps
        )
    assert [kind_of(s) for s in executed] == [
        "BEGIN IMMEDIATE",
        "UPDATE tasks",
        "INSERT outbox",
        "INSERT outbox",
    ]


# Who may review: a staff session of a reviewer or supervisor, and a claimed task is its holder's.


async def refused(call: Awaitable[object]) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await call
    return raised.value


async def test_every_review_request_needs_a_reviewer_or_supervisor_session(
    reviewing: Reviewing,
) -> None:
    task_id = await request_review(reviewing)
    for token, code in (
        ("token-nobody", ErrorCode.UNAUTHENTICATED),
        ("token-admin", ErrorCode.FORBIDDEN),
    ):
        for call in (
            list_tasks(ListTasks(token=token), reviewing.deps),
            show_task(ShowTask(token=token, task_id=task_id), reviewing.deps),
            claim_task(ClaimTask(token=token, task_id=task_id), reviewing.deps),
            decide_task(
                DecideTask(token=token, task_id=task_id, decision=Decision.APPROVE), reviewing.deps
            ),
        ):
            assert (await refused(call)).code is code
    assert (
        await show_task(ShowTask(token=LI, task_id=task_id), reviewing.deps)
    ).state is TaskState.OPEN
    assert await staged(reviewing.service) == []


async def test_a_decision_records_the_reviewer_of_the_session(reviewing: Reviewing) -> None:
    task_id = await request_review(reviewing)
    decided = await decide_task(
        DecideTask(token=WANG, task_id=task_id, decision=Decision.REJECT, reason="not trading"),
        reviewing.deps,
    )
    assert (decided.reviewer, decided.assignee) == ("wang", "wang")
    [event] = [e for e in await staged(reviewing.service) if e.type == review.DECIDED.type]
    assert review.DECIDED.parse(event).reviewer == "wang"


async def test_a_claimed_task_is_refused_to_another_reviewer_until_a_supervisor_reassigns_it(
    reviewing: Reviewing,
) -> None:
    task_id = await request_review(reviewing)
    claimed = await claim_task(ClaimTask(token=LI, task_id=task_id), reviewing.deps)
    assert claimed.assignee == "li"
    assert (await claim_task(ClaimTask(token=LI, task_id=task_id), reviewing.deps)).assignee == "li"

    approve = DecideTask(token=WANG, task_id=task_id, decision=Decision.APPROVE)
    for call in (
        claim_task(ClaimTask(token=WANG, task_id=task_id), reviewing.deps),
        decide_task(approve, reviewing.deps),
        show_task(ShowTask(token=WANG, task_id=task_id), reviewing.deps),
    ):
        refusal = await refused(call)
        assert refusal.code is ErrorCode.FORBIDDEN
        assert refusal.message.startswith("task is claimed by li")
    assert (await list_tasks(ListTasks(token=WANG), reviewing.deps)).tasks == ()

    reassign = AssignTask(token=LI, task_id=task_id, reviewer="wang")
    assert (await refused(assign_task(reassign, reviewing.deps))).code is ErrorCode.FORBIDDEN
    for nobody in ("nobody", "admin"):
        to_nobody = AssignTask(token=ZHAO, task_id=task_id, reviewer=nobody)
        refusal = await refused(assign_task(to_nobody, reviewing.deps))
        assert (refusal.code, [f.path for f in refusal.fields]) == (ErrorCode.INVALID, ["reviewer"])
    assigned = await assign_task(
        AssignTask(token=ZHAO, task_id=task_id, reviewer="wang"), reviewing.deps
    )
    assert assigned.assignee == "wang"
    by_li = DecideTask(token=LI, task_id=task_id, decision=Decision.APPROVE)
    assert (await refused(decide_task(by_li, reviewing.deps))).code is ErrorCode.FORBIDDEN
    decided = await decide_task(approve, reviewing.deps)
    assert (decided.state, decided.reviewer) == (TaskState.DECIDED, "wang")

    audited = [
        review.TASK_AUDITED.parse(e)
        for e in await staged(reviewing.service)
        if e.type == review.TASK_AUDITED.type
    ]
    assert [(a.action.value, a.by, a.assignee) for a in audited] == [
        ("claimed", "li", "li"),
        ("claimed", "li", "li"),
        ("assigned", "zhao", "wang"),
        ("decided", "wang", "wang"),
    ]


async def test_the_list_shows_mine_and_overdue_and_a_supervisor_sees_all_work(
    reviewing: Reviewing,
) -> None:
    old = await request_review(reviewing, "app_old2345678")
    reviewing.clock.advance(timedelta(days=2))
    mine = await request_review(reviewing, "app_mine345678")
    reviewing.clock.advance(timedelta(minutes=1))
    theirs = await request_review(reviewing, "app_them345678")
    await claim_task(ClaimTask(token=LI, task_id=mine), reviewing.deps)
    await claim_task(ClaimTask(token=WANG, task_id=theirs), reviewing.deps)
    reviewing.clock.advance(timedelta(days=3))  # Tuesday: `old` is past its due time

    def ids(listed: TaskList) -> list[str]:
        return [t.task_id for t in listed.tasks]

    assert ids(await list_tasks(ListTasks(token=LI), reviewing.deps)) == [old, mine]
    assert ids(await list_tasks(ListTasks(token=LI, mine=True), reviewing.deps)) == [mine]
    overdue = await list_tasks(ListTasks(token=LI, overdue=True), reviewing.deps)
    assert (ids(overdue), overdue.total) == ([old], 1)
    everything = await list_tasks(ListTasks(token=ZHAO), reviewing.deps)
    assert [(t.task_id, t.assignee) for t in everything.tasks] == [
        (old, None),
        (mine, "li"),
        (theirs, "wang"),
    ]
