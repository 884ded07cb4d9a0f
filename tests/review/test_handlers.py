"""Review's handlers called directly: a request opens a task due within the SLA, the queue pages
oldest first, a decision is announced once, and time is the service's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from singlewindow.contracts import review
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.review import (
    DecideTask,
    Decision,
    ListTasks,
    ReviewRequested,
    ShowTask,
    TaskState,
)
from singlewindow.review.dependencies import Review
from singlewindow.review.handlers import decide_task, list_tasks, routes, show_task
from singlewindow.review.repository import metadata
from singlewindow.review.settings import Settings
from singlewindow.runtime.clock import ManualClock

from tests.support.handlers import LocalService, deliver, kind_of, local_service, staged, statements

USCC = "91500000MA5U7X1C69"
THURSDAY_MORNING = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


@dataclass
class Reviewing:
    deps: Review
    service: LocalService
    clock: ManualClock


@pytest.fixture
async def reviewing(tmp_path: Path) -> AsyncIterator[Reviewing]:
    clock = ManualClock(THURSDAY_MORNING)
    async with local_service("review", metadata, tmp_path, clock=clock) as service:
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
    tasks = (await list_tasks(ListTasks(state=None), reviewing.deps)).tasks
    [task_id] = [t.task_id for t in tasks if t.reference == reference]
    return task_id


async def test_a_requested_review_opens_a_task_showing_what_the_reviewer_must_see(
    reviewing: Reviewing,
) -> None:
    task_id = await request_review(reviewing)
    task = await show_task(ShowTask(task_id=task_id), reviewing.deps)
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
    assert len((await list_tasks(ListTasks(), reviewing.deps)).tasks) == 1


async def test_a_task_is_due_three_working_days_after_it_was_requested(
    reviewing: Reviewing,
) -> None:
    task = await show_task(ShowTask(task_id=await request_review(reviewing)), reviewing.deps)
    assert task.created_at == THURSDAY_MORNING
    assert task.due_by == datetime(2026, 12, 8, 9, 30, tzinfo=UTC)  # Thursday → Tuesday


async def test_an_open_task_is_overdue_once_the_clock_passes_its_due_time(
    reviewing: Reviewing,
) -> None:
    task_id = await request_review(reviewing)
    show = ShowTask(task_id=task_id)
    due_by = (await show_task(show, reviewing.deps)).due_by
    reviewing.clock.advance(due_by - reviewing.clock.now())
    assert not (await show_task(show, reviewing.deps)).overdue
    reviewing.clock.advance(1)
    assert (await show_task(show, reviewing.deps)).overdue
    [listed] = (await list_tasks(ListTasks(), reviewing.deps)).tasks
    assert listed.overdue


async def test_a_decided_task_is_never_overdue(reviewing: Reviewing) -> None:
    task_id = await request_review(reviewing)
    await decide_task(
        DecideTask(task_id=task_id, decision=Decision.APPROVE, reviewer="li"), reviewing.deps
    )
    reviewing.clock.advance(timedelta(days=30))
    assert not (await show_task(ShowTask(task_id=task_id), reviewing.deps)).overdue


async def test_the_queue_lists_open_tasks_oldest_first_a_page_at_a_time(
    reviewing: Reviewing,
) -> None:
    task_ids = []
    for n in range(5):
        task_ids.append(await request_review(reviewing, f"app_{n}2345678"))
        reviewing.clock.advance(timedelta(minutes=1))
    await decide_task(
        DecideTask(task_id=task_ids[1], decision=Decision.APPROVE, reviewer="li"), reviewing.deps
    )
    open_ids = [task_ids[0], *task_ids[2:]]
    first = await list_tasks(ListTasks(limit=2), reviewing.deps)
    second = await list_tasks(ListTasks(limit=2, offset=2), reviewing.deps)
    assert [t.task_id for t in first.tasks + second.tasks] == open_ids
    everything = await list_tasks(ListTasks(state=None), reviewing.deps)
    assert [t.task_id for t in everything.tasks] == task_ids
    decided = await list_tasks(ListTasks(state=TaskState.DECIDED), reviewing.deps)
    assert [t.task_id for t in decided.tasks] == [task_ids[1]]


async def test_a_decision_carries_the_kind_and_reference_back(reviewing: Reviewing) -> None:
    task_id = await request_review(reviewing)
    reviewing.clock.advance(timedelta(hours=2))
    await decide_task(
        DecideTask(task_id=task_id, decision=Decision.APPROVE, reviewer="li"), reviewing.deps
    )
    [event] = await staged(reviewing.service)
    decided = review.DECIDED.parse(event)
    assert (decided.kind, decided.reference, decided.decision, decided.attempt) == (
        "cardless",
        "app_12345678",
        Decision.APPROVE,
        1,
    )
    assert decided.decided_at == reviewing.clock.now()
    shown = await show_task(ShowTask(task_id=task_id), reviewing.deps)
    assert (shown.state, shown.reviewer, shown.decided_at) == (
        TaskState.DECIDED,
        "li",
        reviewing.clock.now(),
    )


async def test_a_task_is_decided_once(reviewing: Reviewing) -> None:
    task_id = await request_review(reviewing)
    approve = DecideTask(task_id=task_id, decision=Decision.APPROVE, reviewer="li")
    await decide_task(approve, reviewing.deps)
    reject = DecideTask(task_id=task_id, decision=Decision.REJECT, reason="no", reviewer="wang")
    for again in (approve, reject):
        with pytest.raises(DomainError) as refusal:
            await decide_task(again, reviewing.deps)
        assert refusal.value.code is ErrorCode.CONFLICT
    assert len(await staged(reviewing.service)) == 1
    shown = await show_task(ShowTask(task_id=task_id), reviewing.deps)
    assert (shown.decision, shown.reviewer) == (Decision.APPROVE, "li")


async def test_a_rejection_without_a_reason_is_refused_and_leaves_the_task_open(
    reviewing: Reviewing,
) -> None:
    task_id = await request_review(reviewing)
    with pytest.raises(DomainError) as refusal:
        await decide_task(
            DecideTask(task_id=task_id, decision=Decision.REJECT, reviewer="li"), reviewing.deps
        )
    assert refusal.value.code is ErrorCode.INVALID
    assert [f.path for f in refusal.value.fields] == ["reason"]
    assert (await show_task(ShowTask(task_id=task_id), reviewing.deps)).state is TaskState.OPEN
    assert await staged(reviewing.service) == []


async def test_deciding_an_unknown_task_is_not_found(reviewing: Reviewing) -> None:
    for decision in (Decision.APPROVE, Decision.RETURN):
        with pytest.raises(DomainError) as refusal:
            await decide_task(
                DecideTask(task_id="task_unknown12", decision=decision, reviewer="li"),
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
            DecideTask(task_id=task_id, decision=Decision.APPROVE, reviewer="li"), reviewing.deps
        )
    assert [kind_of(s) for s in executed] == ["BEGIN IMMEDIATE", "UPDATE tasks", "INSERT outbox"]
