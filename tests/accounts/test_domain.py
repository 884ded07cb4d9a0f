"""Accounts rules that need no I/O: throttling delays, session lifetimes, required actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from singlewindow.accounts.domain import (
    SessionPolicy,
    ThrottlePolicy,
    account_key,
    new_session_token,
    required_actions,
    token_digest,
)
from singlewindow.contracts.accounts import RequiredAction, Role


def test_throttle_delays_double_after_the_free_failures_and_are_capped() -> None:
    policy = ThrottlePolicy(free_failures=3, base_seconds=1.0, max_seconds=60)
    delays = [policy.delay_after(n) for n in range(1, 12)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]


def test_a_session_lapses_when_idle_or_at_its_absolute_limit() -> None:
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
    start = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    expires = start + policy.absolute
    assert policy.idle_expiry(start, expires) == start + timedelta(minutes=30)
    late = expires - timedelta(minutes=5)
    assert policy.idle_expiry(late, expires) == expires


def test_tokens_are_long_random_and_stored_only_as_digests() -> None:
    tokens = {new_session_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) >= 43  # 32 bytes, URL-safe base64
    assert token_digest(token) != token
    assert len(token_digest(token)) == 64


def test_account_names_are_unique_whatever_their_case() -> None:
    assert account_key(" CQ_Trade_Admin ") == account_key("cq_trade_admin")


def test_required_actions_come_in_the_guides_order() -> None:
    assert required_actions(role=Role.ADMIN, password_must_change=True, scope_declared=False) == (
        RequiredAction.CHANGE_PASSWORD,
        RequiredAction.BUSINESS_SCOPE,
    )
    assert required_actions(role=Role.ADMIN, password_must_change=False, scope_declared=True) == ()
    # Business scope is the enterprise's, declared by its administrator, not by each operator.
    assert (
        required_actions(role=Role.OPERATOR, password_must_change=False, scope_declared=False) == ()
    )
