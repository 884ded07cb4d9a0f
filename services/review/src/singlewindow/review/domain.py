"""Review rules, pure: the SLA clock and what a decision needs."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from singlewindow.contracts.accounts import StaffRole
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.review import Decision, TaskState


def new_task_id() -> str:
    """A fresh task id."""
    return f"task_{secrets.token_urlsafe(9)}"


def add_working_days(start: datetime, days: int) -> datetime:
    """`start` moved on by `days` working days (Monday to Friday)."""
    due = start
    remaining = days
    while remaining > 0:
        due += timedelta(days=1)
        if due.weekday() < 5:
            remaining -= 1
    return due


def check_decision(state: TaskState, decision: Decision, reason: str | None) -> None:
    """Refuse a decision on a decided task, or a rejection or return without a reason."""
    if state is not TaskState.OPEN:
        raise DomainError(ErrorCode.CONFLICT, "task is already decided")
    if lacks_reason(decision, reason):
        raise DomainError(
            ErrorCode.INVALID,
            f"a decision to {decision.value} needs a reason the applicant will read",
            (FieldError(path="reason", message="is required to reject or return"),),
        )


def lacks_reason(decision: Decision, reason: str | None) -> bool:
    """Whether a decision lacks the reason it needs: only an approval needs none."""
    return decision is not Decision.APPROVE and not reason


REVIEWERS = frozenset({StaffRole.REVIEWER, StaffRole.SUPERVISOR})


def check_reviewer(role: StaffRole, *, supervise: bool = False) -> None:
    """Refuse a staff member who may not review (or, to `supervise`, is not a supervisor)."""
    if role not in REVIEWERS:
        raise DomainError(ErrorCode.FORBIDDEN, "review needs a reviewer or supervisor")
    if supervise and role is not StaffRole.SUPERVISOR:
        raise DomainError(ErrorCode.FORBIDDEN, "only a supervisor reassigns tasks")


def claimed_by_another(assignee: str) -> DomainError:
    """The refusal of a task another reviewer holds."""
    return DomainError(
        ErrorCode.FORBIDDEN,
        f"task is claimed by {assignee}; a supervisor can reassign it (`swctl review assign`)",
    )


def check_visible(role: StaffRole, caller: str, assignee: str | None) -> None:
    """A reviewer sees unclaimed tasks and their own; a supervisor sees all work."""
    if role is not StaffRole.SUPERVISOR and assignee is not None and assignee != caller:
        raise claimed_by_another(assignee)
