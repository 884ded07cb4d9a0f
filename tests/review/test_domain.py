"""Review rules: the three-working-day SLA and what a decision needs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.review import Decision, TaskState
from singlewindow.review.domain import add_working_days, check_decision


@pytest.mark.parametrize(
    ("submitted", "due"),
    [
        (
            datetime(2026, 11, 23, 10, tzinfo=UTC),
            datetime(2026, 11, 26, 10, tzinfo=UTC),
        ),  # Mon → Thu
        (
            datetime(2026, 11, 26, 10, tzinfo=UTC),
            datetime(2026, 12, 1, 10, tzinfo=UTC),
        ),  # Thu → Tue
        (
            datetime(2026, 11, 28, 10, tzinfo=UTC),
            datetime(2026, 12, 2, 10, tzinfo=UTC),
        ),  # Sat → Wed
    ],
)
def test_decisions_are_due_three_working_days_after_submission(
    submitted: datetime, due: datetime
) -> None:
    assert add_working_days(submitted, 3) == due


@pytest.mark.parametrize("decision", [Decision.REJECT, Decision.RETURN])
def test_rejecting_or_returning_needs_a_reason(decision: Decision) -> None:
    with pytest.raises(DomainError) as raised:
        check_decision(TaskState.OPEN, decision, None)
    assert [f.path for f in raised.value.fields] == ["reason"]
    check_decision(TaskState.OPEN, decision, "why")


def test_a_decided_task_cannot_be_decided_again() -> None:
    with pytest.raises(DomainError) as raised:
        check_decision(TaskState.DECIDED, Decision.APPROVE, None)
    assert raised.value.code is ErrorCode.CONFLICT
