"""Password login and sessions, the handlers called directly: throttling, timeouts, audit, and
what a login costs the database."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.login import login_password, logout, show_account, show_session
from singlewindow.accounts.scope import set_scope
from singlewindow.accounts.tables import accounts, login_throttle
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    BusinessScope,
    LoginWithPassword,
    Logout,
    RequiredAction,
    SessionView,
    SetScope,
    ShowAccount,
    ShowSession,
)
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.clock import ManualClock
from singlewindow.runtime.passwords import Argon2Parameters, PasswordHashing
from sqlalchemy import Connection, event, select, update

from tests.support.accounts import CHEAP_ARGON2, PASSWORD, cardless_admin, statements
from tests.support.handlers import staged


async def login(deps: AccountsRuntime, account: str, password: str = PASSWORD) -> SessionView:
    return await login_password(LoginWithPassword(account=account, password=password), deps)


async def refused(deps: AccountsRuntime, account: str, password: str) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await login(deps, account, password)
    return raised.value


async def outcomes(deps: AccountsRuntime) -> list[tuple[str, str | None]]:
    attempts = [
        contract.AUTHENTICATION_ATTEMPTED.parse(event)
        for event in await staged(deps.service)
        if event.type == contract.AUTHENTICATION_ATTEMPTED.type
    ]
    return [(attempt.outcome, attempt.reason) for attempt in attempts]


async def ready(deps: AccountsRuntime, account: str) -> SessionView:
    """A session of `account` with the business scope declared."""
    session = await login(deps, account)
    scope = SetScope(token=session.token, codes=(BusinessScope.CUSTOMS_BROKER,))
    await set_scope(scope, deps)
    return session


# Throttling


async def test_failures_after_the_free_ones_refuse_even_the_right_password_until_the_delay_passes(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    account = await cardless_admin(deps)
    for _ in range(3):
        assert (await refused(deps, account, "wrong-password")).code is ErrorCode.UNAUTHENTICATED
    # The fourth failure starts a 1-second delay.
    assert (await refused(deps, account, "wrong-password")).code is ErrorCode.UNAUTHENTICATED
    throttled = await refused(deps, account, PASSWORD)
    assert (throttled.code, throttled.message) == (
        ErrorCode.THROTTLED,
        "too many login attempts; try again in 1 seconds",
    )
    clock.advance(0.9)
    assert (await refused(deps, account, PASSWORD)).code is ErrorCode.THROTTLED
    clock.advance(0.1)
    # The fifth failure doubles the delay.
    assert (await refused(deps, account, "wrong-password")).code is ErrorCode.UNAUTHENTICATED
    second = await refused(deps, account, PASSWORD)
    assert second.message == "too many login attempts; try again in 2 seconds"
    clock.advance(2)
    assert (await login(deps, account)).account == account  # no permanent lockout


async def test_a_successful_login_forgets_the_failures(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    account = await cardless_admin(deps)
    for _ in range(4):
        await refused(deps, account, "wrong-password")
    clock.advance(1)
    await login(deps, account)
    for _ in range(3):  # free again
        await refused(deps, account, "wrong-password")
    assert (await login(deps, account)).account == account


async def test_an_unknown_account_is_throttled_like_a_known_one(deps: AccountsRuntime) -> None:
    for _ in range(4):
        assert (await refused(deps, "nobody_at_all", "guess")).code is ErrorCode.UNAUTHENTICATED
    assert (await refused(deps, "NOBODY_AT_ALL", "guess")).code is ErrorCode.THROTTLED


class CountingVerifies(PasswordHashing):
    """Password hashing that counts the verifies it was asked for."""

    verified = 0

    async def verify(self, stored_hash: str, password: str) -> bool:
        self.verified += 1
        return await super().verify(stored_hash, password)


async def test_concurrent_guesses_verify_no_more_than_the_throttle_allows(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    passwords = CountingVerifies(CHEAP_ARGON2, max_concurrent=4)
    deps = replace(deps, passwords=passwords)
    account = await cardless_admin(deps)
    results = await asyncio.gather(
        *(login(deps, account, "wrong-password") for _ in range(50)), return_exceptions=True
    )
    codes = [result.code for result in results if isinstance(result, DomainError)]
    assert len(codes) == 50
    # The three free failures and the one that starts a delay; the rest met the delay.
    assert passwords.verified == 4
    assert codes.count(ErrorCode.UNAUTHENTICATED) == 4
    failed = [outcome for outcome in await outcomes(deps) if outcome[0] == "failed"]
    assert len(failed) == 4
    async with deps.service.db.reading() as connection:
        assert await connection.scalar(select(login_throttle.c.failures)) == 4
    # The delay is the one four verified failures earn (1 s), not fifty's (the 900 s maximum).
    assert (await refused(deps, account, PASSWORD)).code is ErrorCode.THROTTLED
    clock.advance(1)
    assert (await login(deps, account)).account == account


async def test_concurrent_guesses_at_an_unknown_account_are_bounded_alike(
    deps: AccountsRuntime,
) -> None:
    passwords = CountingVerifies(CHEAP_ARGON2, max_concurrent=4)
    deps = replace(deps, passwords=passwords)
    results = await asyncio.gather(
        *(login(deps, "nobody_at_all", "guess") for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(result, DomainError) for result in results)
    assert passwords.verified == 4


# What a refusal says and records


async def test_an_unknown_account_and_a_wrong_password_get_the_same_reply_after_a_verify(
    deps: AccountsRuntime,
) -> None:
    verified: list[str] = []

    class Recording(PasswordHashing):
        async def verify(self, stored_hash: str, password: str) -> bool:
            verified.append(stored_hash)
            return await super().verify(stored_hash, password)

    deps = replace(deps, passwords=Recording(CHEAP_ARGON2, max_concurrent=1))
    account = await cardless_admin(deps)
    wrong = await refused(deps, account, "not-the-password")
    unknown = await refused(deps, "nobody_at_all", "not-the-password")
    assert wrong.body() == unknown.body()
    assert verified[1] == deps.decoy_hash  # the unknown account cost a verify too
    assert await outcomes(deps) == [
        ("failed", "incorrect credentials"),
        ("failed", "incorrect credentials"),
    ]


async def test_every_attempt_is_audited_without_the_password(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    account = await cardless_admin(deps)
    await login(deps, account)
    for _ in range(4):
        await refused(deps, account, "secret-typo-123")
    await refused(deps, account, PASSWORD)
    assert await outcomes(deps) == [
        ("succeeded", None),
        *[("failed", "incorrect credentials")] * 4,
        ("throttled", "too many login attempts"),
    ]
    everything = str([event.model_dump() for event in await staged(deps.service)])
    assert "secret-typo-123" not in everything
    assert PASSWORD not in everything


async def test_a_disabled_account_is_refused_and_its_sessions_end(deps: AccountsRuntime) -> None:
    account = await cardless_admin(deps)
    session = await ready(deps, account)
    async with deps.service.db.transaction() as connection:
        await connection.execute(
            update(accounts).where(accounts.c.account == account).values(status="disabled")
        )
    disabled = await refused(deps, account, PASSWORD)
    assert (disabled.code, disabled.message) == (
        ErrorCode.FORBIDDEN,
        "account is disabled; ask your administrator",
    )
    with pytest.raises(DomainError) as ended:
        await show_session(ShowSession(token=session.token), deps)
    assert ended.value.code is ErrorCode.UNAUTHENTICATED


# Sessions


async def test_a_session_lapses_after_its_idle_time_without_requests(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    account = await cardless_admin(deps)
    session = await ready(deps, account)
    assert session.idle_expires_at == clock.now() + timedelta(minutes=30)
    clock.advance(timedelta(minutes=29))
    shown = await show_session(ShowSession(token=session.token), deps)  # restarts the idle clock
    assert shown.idle_expires_at == clock.now() + timedelta(minutes=30)
    clock.advance(timedelta(minutes=29))
    await show_account(ShowAccount(token=session.token), deps)
    clock.advance(timedelta(minutes=30))
    with pytest.raises(DomainError) as lapsed:
        await show_session(ShowSession(token=session.token), deps)
    assert (lapsed.value.code, lapsed.value.message) == (
        ErrorCode.UNAUTHENTICATED,
        "session has expired or was ended; log in again",
    )


async def test_a_session_ends_at_its_absolute_limit_however_busy(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    account = await cardless_admin(deps)
    session = await ready(deps, account)
    assert session.expires_at == clock.now() + timedelta(hours=12)
    for _ in range(35):  # a request every 20 minutes for 11 h 40 min
        clock.advance(timedelta(minutes=20))
        await show_session(ShowSession(token=session.token), deps)
    shown = await show_session(ShowSession(token=session.token), deps)
    assert shown.idle_expires_at == session.expires_at  # idle time is capped by the limit
    clock.advance(timedelta(minutes=20))
    with pytest.raises(DomainError) as ended:
        await show_session(ShowSession(token=session.token), deps)
    assert ended.value.code is ErrorCode.UNAUTHENTICATED


async def test_logout_ends_the_session_at_once(deps: AccountsRuntime) -> None:
    account = await cardless_admin(deps)
    session = await login(deps, account)
    await logout(Logout(token=session.token), deps)  # allowed before the required actions
    with pytest.raises(DomainError) as ended:
        await show_session(ShowSession(token=session.token), deps)
    assert ended.value.code is ErrorCode.UNAUTHENTICATED
    assert (await login(deps, account)).token != session.token


async def test_the_first_session_of_an_administrator_must_declare_the_scope_first(
    deps: AccountsRuntime,
) -> None:
    account = await cardless_admin(deps)
    session = await login(deps, account.upper())  # account names are case-insensitive
    assert session.required_actions == (RequiredAction.BUSINESS_SCOPE,)
    with pytest.raises(DomainError) as first:
        await show_account(ShowAccount(token=session.token), deps)
    assert (first.value.code, first.value.message) == (
        ErrorCode.ACTION_REQUIRED,
        "first complete the required action: business scope",
    )
    shown = await show_session(ShowSession(token=session.token), deps)
    assert shown.required_actions == (RequiredAction.BUSINESS_SCOPE,)
    declared = await set_scope(
        SetScope(token=session.token, codes=(BusinessScope.CUSTOMS_BROKER,)), deps
    )
    assert (declared.version, declared.required_actions) == (1, ())
    me = await show_account(ShowAccount(token=session.token), deps)
    assert me.business_scope == (BusinessScope.CUSTOMS_BROKER,)
    assert (await login(deps, account)).required_actions == ()


# What a login costs


async def test_a_password_login_is_one_select_then_one_write_of_the_session_and_its_audit(
    deps: AccountsRuntime,
) -> None:
    account = await cardless_admin(deps)
    await login(deps, account)  # the pool has its connection
    with statements(deps) as seen:
        await login(deps, account)
    assert seen == [
        "BEGIN IMMEDIATE",  # one trip: the account and its throttling read, the attempt
        "SELECT",
        "INSERT login_throttle",  # the attempt reserved before the verify
        "BEGIN IMMEDIATE",
        "DELETE login_throttle",
        "INSERT sessions",
        "INSERT outbox",
    ]


async def test_a_wrong_password_is_one_select_then_the_reserved_attempt_and_its_audit(
    deps: AccountsRuntime,
) -> None:
    account = await cardless_admin(deps)
    with statements(deps) as seen:
        await refused(deps, account, "wrong-password")
    assert seen == [
        "BEGIN IMMEDIATE",  # one trip: the account and its throttling read, the attempt
        "SELECT",
        "INSERT login_throttle",  # or count one more unless blocked, atomically
        "BEGIN IMMEDIATE",
        "INSERT outbox",
    ]


async def test_a_session_request_is_authorized_in_one_select(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    account = await cardless_admin(deps)
    session = await login(deps, account)
    clock.advance(timedelta(seconds=5))
    with statements(deps) as seen:
        await show_session(ShowSession(token=session.token), deps)
    # One read finds the caller; the new last-seen time is one write after it.
    assert seen == ["BEGIN DEFERRED", "SELECT", "BEGIN IMMEDIATE", "UPDATE sessions"]


async def test_requests_within_a_second_store_the_last_seen_time_once(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    account = await cardless_admin(deps)
    session = await login(deps, account)
    clock.advance(timedelta(seconds=5))
    with statements(deps) as seen:
        for _ in range(3):
            await show_session(ShowSession(token=session.token), deps)
            clock.advance(timedelta(milliseconds=300))
    assert seen.count("UPDATE sessions") == 1
    assert seen.count("SELECT") == 3
    # The stored time is the first of them, and the idle clock runs from there: a little under
    # `idle` after the last request, but `idle` after the first, the session has ended.
    clock.advance(deps.sessions.idle - timedelta(milliseconds=600))
    with pytest.raises(DomainError) as ended:
        await show_session(ShowSession(token=session.token), deps)
    assert ended.value.code is ErrorCode.UNAUTHENTICATED


async def test_a_login_after_failures_also_forgets_them(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    account = await cardless_admin(deps)
    await refused(deps, account, "wrong-password")
    with statements(deps) as seen:
        await login(deps, account)
    assert seen == [
        "BEGIN IMMEDIATE",  # one trip: the account and its throttling read, the attempt
        "SELECT",
        "INSERT login_throttle",
        "BEGIN IMMEDIATE",
        "DELETE login_throttle",
        "INSERT sessions",
        "INSERT outbox",
    ]


async def test_a_hash_of_other_parameters_is_replaced_at_the_next_login(
    deps: AccountsRuntime,
) -> None:
    older = Argon2Parameters(memory_kib=32, time_cost=1).hasher().hash(PASSWORD)
    account = await cardless_admin(deps, password_hash=older)
    with statements(deps) as seen:
        await login(deps, account)
    assert "UPDATE accounts" in seen
    async with deps.service.db.reading() as connection:
        stored = await connection.scalar(
            select(accounts.c.password_hash).where(accounts.c.account == account)
        )
    assert stored is not None
    assert stored != older
    assert not deps.passwords.needs_rehash(stored)
    assert (await login(deps, account)).account == account


async def test_a_password_login_finds_its_rows_by_index_without_scanning_a_table(
    deps: AccountsRuntime,
) -> None:
    account = await cardless_admin(deps)
    selects: list[tuple[str, Any]] = []

    def record(_c: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append((statement, parameters))

    engines = deps.service.db.sync_engines
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        await login(deps, account)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    [(statement, parameters)] = selects
    async with deps.service.db.reading() as connection:
        plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        steps = [str(row[-1]) for row in plan]
    scans = [step for step in steps if step.startswith("SCAN")]
    assert scans == ["SCAN CONSTANT ROW", "SCAN probe"], steps  # the one-row name, no table
