"""Logging in with a password, and the sessions it opens: show, account, logout.

A password login costs two transactions, each one call to the database: the first reads the
account, its throttling and whether its enterprise declared its business scope (one statement) and
reserves the attempt, without waiting for the disk (`Database.run_unsynced`); the second, after the
verify, stores the session and the audit event durably (`Database.run`), which also flushes the
first. A refusal costs the first and the audit.

Every attempt is reserved before its password is verified: one conditional upsert counts it only
while the name is not blocked, and the same transaction starts the delay that count earns. So
however many guesses arrive at once, only those the throttle allows are verified, and the delay
grows only with attempts actually verified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import structlog
from singlewindow.accounts.authorization import Action, authorize, authorized
from singlewindow.accounts.callers import customs_code_of  # customs filing (issue 11)
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import (
    INCORRECT_CREDENTIALS,
    Account,
    AccountStatus,
    ThrottlePolicy,
    account_key,
    new_session_token,
    token_digest,
)
from singlewindow.accounts.routes import routes
from singlewindow.accounts.scope import Scopes
from singlewindow.accounts.tables import (
    ACCOUNT_COLUMNS,
    account_from_row,
    accounts,
    enterprises,
    login_throttle,
    sessions,
)
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AccountView,
    AuthenticationAttempted,
    BusinessScope,
    LoginWithPassword,
    Logout,
    SessionView,
    ShowAccount,
    ShowSession,
)
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.identifiers import mask_id_number, mask_mobile
from singlewindow.runtime.db import as_utc, upsert
from sqlalchemy import Connection, String, bindparam, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningInsert

log = structlog.get_logger("singlewindow.accounts.login")

ONE_TIME_PASSWORD_EXPIRED = (
    "the one-time password has expired unused; ask your administrator for a new one"
    " (swctl operators reset-password)"
)


@dataclass(frozen=True)
class LoginState:
    """What a login attempt needs to know first: the account, if any, and its throttling."""

    account: Account | None
    blocked_until: datetime | None


class Logins:
    """Throttling, sessions and password hashes, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def state(self, key: str) -> LoginState:
        """The account named `key` (if there is one) and the throttling of that name."""
        row = (await self.connection.execute(_LOGIN_STATE, {"key": key})).mappings().one()
        return LoginState(
            account=None if row["account_id"] is None else account_from_row(row),
            blocked_until=None if row["blocked_until"] is None else as_utc(row["blocked_until"]),
        )

    async def reserve_attempt(self, key: str, now: datetime) -> int | None:
        """Count one more attempt for `key` unless it is blocked at `now`, atomically: the new
        count, or None when blocked (nothing counted)."""
        statement = _reserve_attempt(self.connection.dialect.name)
        failures: int | None = (
            await self.connection.execute(statement, {"key": key, "now": now})
        ).scalar_one_or_none()
        return failures

    async def blocked_until(self, key: str) -> datetime | None:
        """Until when logins for `key` are refused, if it has been throttled at all."""
        until = await self.connection.scalar(_BLOCKED_UNTIL, {"key": key})
        return None if until is None else as_utc(until)

    async def block_until(self, key: str, until: datetime) -> None:
        """Refuse logins for `key` until `until`."""
        await self.connection.execute(_BLOCK, {"key": key, "until": until})

    async def clear_failures(self, key: str) -> None:
        """Forget failures after a successful login."""
        await self.connection.execute(_CLEAR_FAILURES, {"key": key})

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        """Replace an account's password hash (a rehash at stronger parameters)."""
        await self.connection.execute(
            _SET_PASSWORD_HASH, {"id": account_id, "new_hash": password_hash}
        )

    async def open_session(
        self,
        digest: str,
        account_id: str,
        method: str,
        now: datetime,
        expires_at: datetime,
        *,
        card_number: str | None = None,
        card_fingerprint: str | None = None,
        card_serial: int | None = None,
    ) -> None:
        """Store a new session under its token digest (a card session with its card and the
        serial number of the certificate it logged in with)."""
        await self.connection.execute(
            _OPEN_SESSION,
            {
                "token_digest": digest,
                "account_id": account_id,
                "method": method,
                "created_at": now,
                "last_seen_at": now,
                "expires_at": expires_at,
                "card_number": card_number,
                "card_fingerprint": card_fingerprint,
                "card_serial": None if card_serial is None else str(card_serial),
            },
        )

    async def revoke_session(self, digest: str, now: datetime) -> None:
        """End a session."""
        await self.connection.execute(_REVOKE, {"digest": digest, "now": now})


_probe = select(bindparam("key", type_=String).label("key")).subquery("probe")
_LOGIN_STATE = select(*ACCOUNT_COLUMNS, login_throttle.c.blocked_until).select_from(
    _probe.outerjoin(accounts, accounts.c.account_key == _probe.c.key)
    .outerjoin(enterprises, enterprises.c.uscc == accounts.c.uscc)
    .outerjoin(login_throttle, login_throttle.c.account_key == _probe.c.key)
)
"""One row whether or not the account exists: an unknown name is throttled like a known one.
The joins stay flat: a nested one would make SQLite materialise (scan) the accounts."""


_COUNT_ATTEMPT = {"failures": login_throttle.c.failures + literal(1)}
_NEW_ATTEMPT = {"account_key": bindparam("key"), "failures": 1, "blocked_until": bindparam("now")}
_NOT_BLOCKED = login_throttle.c.blocked_until <= bindparam("now")


@cache
def _reserve_attempt(dialect_name: str) -> ReturningInsert[int]:
    """For a dialect, built once: insert the first attempt or count one more unless blocked, in
    one statement (no row comes back when blocked). The row stays locked until the transaction
    that also sets the delay commits, so a concurrent attempt sees the delay."""
    return (
        upsert(dialect_name, login_throttle)
        .values(_NEW_ATTEMPT)
        .on_conflict_do_update(
            index_elements=[login_throttle.c.account_key], set_=_COUNT_ATTEMPT, where=_NOT_BLOCKED
        )
        .returning(login_throttle.c.failures)
    )


_BLOCKED_UNTIL = select(login_throttle.c.blocked_until).where(
    login_throttle.c.account_key == bindparam("key")
)
_BLOCK = (
    update(login_throttle)
    .where(login_throttle.c.account_key == bindparam("key"))
    .values(blocked_until=bindparam("until"))
)
_CLEAR_FAILURES = login_throttle.delete().where(login_throttle.c.account_key == bindparam("key"))
_SET_PASSWORD_HASH = (
    update(accounts)
    .where(accounts.c.account_id == bindparam("id"))
    .values(password_hash=bindparam("new_hash"))
)
_OPEN_SESSION = insert(sessions)
_REVOKE = (
    update(sessions)
    .where(sessions.c.token_digest == bindparam("digest"), sessions.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)


@routes.serve(contract.LOGIN_PASSWORD)
async def login_password(request: LoginWithPassword, deps: AccountsRuntime) -> SessionView:
    """Log in with account name and password; the session lists its required actions."""
    name = request.account
    key = account_key(name)
    now = deps.service.clock.now()
    # One write: the account and its throttling read, and the attempt reserved. Unsynced: every
    # outcome of the attempt commits durably (the session, or the audit of the refusal) before
    # its reply, and that commit flushes this one.
    state, blocked = await deps.service.db.run_unsynced(_begin_attempt, key, now, deps.throttle)
    found = state.account
    if found is not None and found.status is AccountStatus.DELETED:
        found = None  # issue 9: a deleted account is refused as an unknown one, as slowly
    if blocked is not None:
        await deps.service.db.run(
            _audit_sync, deps, name, found, "throttled", "too many login attempts"
        )
        raise throttled(blocked, now)
    # An unknown account is verified against a decoy hash: both refusals take as long.
    stored_hash = found.password_hash if found else deps.decoy_hash
    matches = await deps.passwords.verify(stored_hash, request.password)
    if found is None or not matches:
        await deps.service.db.run(_audit_sync, deps, name, found, "failed", "incorrect credentials")
        raise DomainError(ErrorCode.UNAUTHENTICATED, INCORRECT_CREDENTIALS)
    if found.status is not AccountStatus.ACTIVE:
        await deps.service.db.run(
            _audit_sync, deps, name, found, "failed", f"account {found.status}"
        )
        raise DomainError(ErrorCode.FORBIDDEN, f"account is {found.status}; ask your administrator")
    if found.one_time_password_expired(now):  # issue 9
        await deps.service.db.run(
            _audit_sync, deps, name, found, "failed", "one-time password expired"
        )
        raise DomainError(ErrorCode.UNAUTHENTICATED, ONE_TIME_PASSWORD_EXPIRED)
    rehash = (
        await deps.passwords.hash(request.password)
        if deps.passwords.needs_rehash(found.password_hash)
        else None
    )
    token = new_session_token()
    now = deps.service.clock.now()
    expires_at = now + deps.sessions.absolute
    await deps.service.db.run(
        _open_password_session, deps, name, key, found, rehash, token_digest(token), now, expires_at
    )
    return session_view(deps, found, token, now, expires_at, method="password")


def _begin_attempt(
    connection: Connection, key: str, now: datetime, throttle: ThrottlePolicy
) -> tuple[LoginState, datetime | None]:
    """A password login's first transaction: what `Logins.state` reads, then the attempt
    reserved as `reserve_attempt` does (nothing written while a block read is in force)."""
    row = connection.execute(_LOGIN_STATE, {"key": key}).mappings().one()
    state = LoginState(
        account=None if row["account_id"] is None else account_from_row(row),
        blocked_until=None if row["blocked_until"] is None else as_utc(row["blocked_until"]),
    )
    if state.blocked_until is not None and state.blocked_until > now:
        return state, state.blocked_until
    return state, _reserve_sync(connection, key, now, throttle)


def _reserve_sync(
    connection: Connection, key: str, now: datetime, throttle: ThrottlePolicy
) -> datetime | None:
    statement = _reserve_attempt(connection.dialect.name)
    attempts: int | None = connection.execute(statement, {"key": key, "now": now}).scalar()
    if attempts is None:  # blocked meanwhile by a concurrent attempt
        until = connection.scalar(_BLOCKED_UNTIL, {"key": key})
        return now if until is None else as_utc(until)
    if delay := throttle.delay_after(attempts):
        connection.execute(_BLOCK, {"key": key, "until": now + timedelta(seconds=delay)})
    return None


def _open_password_session(
    connection: Connection,
    deps: AccountsRuntime,
    name: str,
    key: str,
    account: Account,
    rehash: str | None,
    digest: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """A password login's last transaction: failures forgotten, the session, its audit."""
    connection.execute(_CLEAR_FAILURES, {"key": key})
    if rehash:
        connection.execute(_SET_PASSWORD_HASH, {"id": account.account_id, "new_hash": rehash})
    connection.execute(
        _OPEN_SESSION,
        {
            "token_digest": digest,
            "account_id": account.account_id,
            "method": "password",
            "created_at": now,
            "last_seen_at": now,
            "expires_at": expires_at,
            "card_number": None,
            "card_fingerprint": None,
            "card_serial": None,
        },
    )
    _audit_sync(connection, deps, name, account, "succeeded", None)


async def reserve_attempt(
    deps: AccountsRuntime, key: str, now: datetime, *, known_block: datetime | None = None
) -> datetime | None:
    """Reserve one attempt of the login name `key` before its password is verified: None once
    reserved (counted, with the delay its count earns), else until when `key` is blocked.

    Every password login (whatever kind of account) reserves its attempt here first, and clears
    the count with `Logins.clear_failures` when the password matched. `known_block`, the block
    read with the account, spares a write when it is still in force."""
    if known_block is not None and known_block > now:
        return known_block
    return await deps.service.db.run_unsynced(_reserve_sync, key, now, deps.throttle)


def throttled(blocked_until: datetime, now: datetime) -> DomainError:
    """The refusal of a login attempt while its name is blocked. Attempts count from their
    reservation, so concurrent logins to one name can be refused though none failed: the words
    say "attempts", not "failed attempts"."""
    wait = max(1, math.ceil((blocked_until - now).total_seconds()))
    return DomainError(ErrorCode.THROTTLED, f"too many login attempts; try again in {wait} seconds")


@routes.serve(contract.LOGOUT)
async def logout(request: Logout, deps: AccountsRuntime) -> None:
    """End the session; its token stops working at once."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize(deps, connection, request.token, Action.LOGOUT)
        await Logins(connection).revoke_session(caller.session.digest, deps.service.clock.now())


@routes.serve(contract.SHOW_SESSION)
async def show_session(request: ShowSession, deps: AccountsRuntime) -> SessionView:
    """Show the current session and its required actions."""
    caller = await authorized(deps, request.token, Action.SHOW_SESSION)
    session = caller.session
    return session_view(
        deps,
        caller.account,
        request.token,
        deps.service.clock.now(),
        session.expires_at,
        method=session.method,
        card_number=session.card_number,
    )


@routes.serve(contract.SHOW_ACCOUNT)
async def show_account(request: ShowAccount, deps: AccountsRuntime) -> AccountView:
    """Show the caller's own account."""
    async with deps.service.db.transaction() as connection:
        account = (await authorize(deps, connection, request.token, Action.SHOW_ACCOUNT)).account
        return await account_view(connection, account)


async def account_view(connection: AsyncConnection, account: Account) -> AccountView:
    """An account as its holder sees it, with its enterprise's business scope and customs code."""
    scope: tuple[BusinessScope, ...] = ()
    if account.uscc:
        scope, _version = await Scopes(connection).current(account.uscc)
    return AccountView(
        account=account.account,
        role=account.role,
        name=account.name,
        id_number_masked=mask_id_number(account.id_number),
        mobile_masked=mask_mobile(account.mobile),
        email=account.email,
        uscc=account.uscc,
        enterprise_name=account.enterprise_name,
        business_scope=scope,
        created_at=account.created_at,
        landline=account.landline,
        customs_code=await customs_code_of(connection, account.uscc),
    )


async def open_session(
    deps: AccountsRuntime,
    logins: Logins,
    account: Account,
    method: str,
    *,
    card_number: str | None = None,
    card_fingerprint: str | None = None,
    card_serial: int | None = None,
) -> SessionView:
    """Open a session of `account` (a card session bound to its card) and describe it."""
    now = deps.service.clock.now()
    token = new_session_token()
    expires_at = now + deps.sessions.absolute
    await logins.open_session(
        token_digest(token),
        account.account_id,
        method,
        now,
        expires_at,
        card_number=card_number,
        card_fingerprint=card_fingerprint,
        card_serial=card_serial,
    )
    return session_view(
        deps, account, token, now, expires_at, method=method, card_number=card_number
    )


def session_view(
    deps: AccountsRuntime,
    account: Account,
    token: str,
    last_seen: datetime,
    expires_at: datetime,
    *,
    method: str,
    card_number: str | None = None,
) -> SessionView:
    """What the client is told of a session."""
    return SessionView(
        token=token,
        account=account.account,
        role=account.role,
        uscc=account.uscc,
        enterprise_name=account.enterprise_name,
        required_actions=account.required_actions,
        expires_at=expires_at,
        idle_expires_at=deps.sessions.idle_expiry(last_seen, expires_at),
        method=method,
        card_number=card_number,
        operator_level=account.operator_level,
    )


def _audit_sync(
    connection: Connection,
    deps: AccountsRuntime,
    account: str,
    found: Account | None,
    outcome: str,
    reason: str | None,
) -> None:
    """`_audit` in a synchronous transaction (`Database.run`)."""
    log.info("authentication attempt", account=account, outcome=outcome, reason=reason)
    data, subject = _attempted(account, found, outcome, reason)
    deps.service.emit_sync(connection, contract.AUTHENTICATION_ATTEMPTED, data, subject=subject)


def _attempted(
    account: str, found: Account | None, outcome: str, reason: str | None
) -> tuple[AuthenticationAttempted, str | None]:
    return (
        AuthenticationAttempted(
            account=account[:64], method="password", outcome=outcome, reason=reason
        ),
        found.uscc if found else None,
    )
