"""Logging in and proving a session: the unit-of-work level of the accounts service."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import (
    INCORRECT_CREDENTIALS,
    account_key,
    new_session_token,
    required_actions,
    token_digest,
)
from singlewindow.accounts.repository import Account, Accounts, Session
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AuthenticationAttempted,
    RequiredAction,
    SessionView,
)
from singlewindow.contracts.errors import DomainError, ErrorCode
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.auth")


@dataclass(frozen=True)
class Caller:
    """Who is calling: a live session's account and what it must do first."""

    account: Account
    digest: str
    required_actions: tuple[RequiredAction, ...]


async def login_with_password(deps: AccountsRuntime, account: str, password: str) -> SessionView:
    """Open a session if `password` is right and the account is not throttled."""
    key = account_key(account)
    now = datetime.now(UTC)
    async with deps.service.db.reading() as connection:
        blocked_until = await Accounts(connection).blocked_until(key)
        found = await Accounts(connection).account_by_name(account)
    if blocked_until is not None and blocked_until > now:
        wait = math.ceil((blocked_until - now).total_seconds())
        async with deps.service.db.transaction() as connection:
            await _audit(deps, connection, account, found, "throttled", "too many failed attempts")
        raise DomainError(
            ErrorCode.THROTTLED,
            f"too many failed attempts; try again in {wait} seconds",
        )
    stored_hash = found.password_hash if found else deps.decoy_hash
    matches = await deps.passwords.verify(stored_hash, password)
    if found is None or not matches:
        async with deps.service.db.transaction() as connection:
            repository = Accounts(connection)
            failures = await repository.record_failure(key, now)
            delay = deps.throttle.delay_after(failures)
            if delay:
                await repository.block_until(key, now + timedelta(seconds=delay))
            await _audit(deps, connection, account, found, "failed", "incorrect credentials")
        raise DomainError(ErrorCode.UNAUTHENTICATED, INCORRECT_CREDENTIALS)
    if found.status != "active":
        async with deps.service.db.transaction() as connection:
            await _audit(deps, connection, account, found, "failed", f"account {found.status}")
        raise DomainError(ErrorCode.FORBIDDEN, f"account is {found.status}; ask your administrator")
    rehash = (
        await deps.passwords.hash(password)
        if deps.passwords.needs_rehash(found.password_hash)
        else None
    )
    token = new_session_token()
    expires_at = now + deps.sessions.absolute
    async with deps.service.db.transaction() as connection:
        repository = Accounts(connection)
        await repository.clear_failures(key)
        if rehash:
            await repository.set_password_hash(found.account_id, rehash)
        await repository.open_session(
            token_digest(token), found.account_id, "password", now, expires_at
        )
        actions = await pending_actions(repository, found)
        await _audit(deps, connection, account, found, "succeeded", None)
    return session_view(deps, found, token, actions, now, expires_at)


async def authenticate(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    token: str,
    *,
    allow: frozenset[RequiredAction] = frozenset(),
) -> Caller:
    """The caller behind `token`, refusing an ended session or one with required actions left."""
    digest = token_digest(token)
    repository = Accounts(connection)
    session = await repository.session(digest)
    now = datetime.now(UTC)
    ended = DomainError(ErrorCode.UNAUTHENTICATED, "session has expired or was ended; log in again")
    if session is None or session.revoked_at is not None or now >= session.expires_at:
        raise ended
    if now >= deps.sessions.idle_expiry(session.last_seen_at, session.expires_at):
        raise ended
    account = await repository.account_by_id(session.account_id)
    if account is None or account.status != "active":
        raise ended
    if session.method == "card" and not await _card_still_bound(repository, session):
        raise ended
    await repository.touch_session(digest, now)
    actions = await pending_actions(repository, account)
    blocking = [action for action in actions if action not in allow]
    if blocking:
        raise DomainError(
            ErrorCode.ACTION_REQUIRED,
            f"first complete the required action: {blocking[0].value.replace('_', ' ')}",
        )
    return Caller(account=account, digest=digest, required_actions=actions)


def session_view(
    deps: AccountsRuntime,
    account: Account,
    token: str,
    actions: tuple[RequiredAction, ...],
    last_seen: datetime,
    expires_at: datetime,
    *,
    method: str = "password",
    card_number: str | None = None,
) -> SessionView:
    """What the client is told of a session."""
    return SessionView(
        token=token,
        account=account.account,
        role=account.role,
        uscc=account.uscc,
        enterprise_name=account.enterprise_name,
        required_actions=actions,
        expires_at=expires_at,
        idle_expires_at=deps.sessions.idle_expiry(last_seen, expires_at),
        method=method,
        card_number=card_number,
        operator_level=account.operator_level,
    )


async def _card_still_bound(repository: Accounts, session: Session) -> bool:
    # A card session lives only as long as its card stays bound to the account.
    if session.card_number is None:
        return False
    binding = await repository.card_binding(session.card_number)
    return binding is not None and binding.account_id == session.account_id


async def pending_actions(repository: Accounts, account: Account) -> tuple[RequiredAction, ...]:
    """What a session of `account` must do first."""
    scope_declared = False
    if account.uscc is not None:
        _codes, version = await repository.current_scope(account.uscc)
        scope_declared = version > 0
    return required_actions(
        role=account.role,
        password_must_change=account.password_must_change,
        scope_declared=scope_declared,
    )


async def _audit(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    account: str,
    found: Account | None,
    outcome: str,
    reason: str | None,
) -> None:
    log.info("authentication attempt", account=account, outcome=outcome, reason=reason)
    await deps.service.emit(
        connection,
        contract.AUTHENTICATION_ATTEMPTED,
        AuthenticationAttempted(
            account=account[:64], method="password", outcome=outcome, reason=reason
        ),
        subject=found.uscc if found else None,
    )
