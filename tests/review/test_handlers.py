"""Review's handlers called directly: a request opens a task, a decision is announced once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from singlewindow.contracts import review
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.review import (
    DecideTask,
    Decision,
    ListTasks,
    ReviewRequested,
    ShowTask,
    TaskState,
)
from singlewindow.review.dependencies import Review
from singlewindow.review.handlers import decide_task, list_tasks, open_task, show_task
from singlewindow.review.repository import metadata
from singlewindow.review.settings import Settings

from tests.support.handlers import local_service, staged

USCC = "91500000MA5U7X1C69"


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[Review]:
    async with local_service("review", metadata, tmp_path) as service:
        yield Review(service=service, settings=Settings())


async def request_review(deps: Review, reference: str = "app_12345678") -> str:
    requested = ReviewRequested(
        kind="cardless",
        reference=reference,
        attempt=1,
        uscc=USCC,
        title="重庆某某贸易有限公司",
        details={"enterprise": {"uscc": USCC}},
    )
    event = review.REQUESTED.make(requested, subject=USCC, source="urn:test")
    async with deps.service.db.transaction() as connection:
        await open_task(requested, event, connection, deps)
    [task] = (await list_tasks(ListTasks(), deps)).tasks
    return task.task_id


async def test_a_requested_review_opens_a_task_showing_what_the_reviewer_must_see(
    deps: Review,
) -> None:
    task_id = await request_review(deps)
    task = await show_task(ShowTask(task_id=task_id), deps)
    assert (task.kind, task.reference, task.application_id) == (
        "cardless",
        "app_12345678",
        "app_12345678",
    )
    assert task.state is TaskState.OPEN
    assert task.submission == {"enterprise": {"uscc": USCC}}


async def test_a_decision_carries_the_kind_and_reference_back(deps: Review) -> None:
    task_id = await request_review(deps)
    await decide_task(DecideTask(task_id=task_id, decision=Decision.APPROVE, reviewer="li"), deps)
    [event] = await staged(deps.service)
    decided = review.DECIDED.parse(event)
    assert (decided.kind, decided.reference, decided.decision) == (
        "cardless",
        "app_12345678",
        Decision.APPROVE,
    )


async def test_a_task_is_decided_once(deps: Review) -> None:
    task_id = await request_review(deps)
    approve = DecideTask(task_id=task_id, decision=Decision.APPROVE, reviewer="li")
    await decide_task(approve, deps)
    with pytest.raises(DomainError) as refusal:
        await decide_task(approve, deps)
    assert refusal.value.code is ErrorCode.CONFLICT
    assert len(await staged(deps.service)) == 1
