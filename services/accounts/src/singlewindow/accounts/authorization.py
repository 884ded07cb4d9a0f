"""Who is calling, what they may do, and on what: the one check every session request goes through.

    caller = await authorize(deps, connection, request.token, Action.SET_SCOPE)

`PERMISSIONS` says which roles take each action, which of a session's required actions it may be
taken before, and whether it acts on the caller's own enterprise only (tenant isolation). Rules
for operators' levels, qualifications and per-account permissions belong in this table too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account, AccountStatus, token_digest
from singlewindow.accounts.tables import (
    ACCOUNT_COLUMNS,
    account_from_row,
    accounts,
    card_bindings,
    enterprises,
    sessions,
    staff_sessions,
)
from singlewindow.cardcrypto import CertificateError, CertificateProblem
from singlewindow.contracts.accounts import RequiredAction, Role
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.db import as_utc
from sqlalchemy import Connection, RowMapping, bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection


class Action(StrEnum):
    """What a session asks to do."""

    SHOW_SESSION = "show_session"
    LOGOUT = "logout"
    SHOW_ACCOUNT = "show_account"
    LIST_SCOPE_OPTIONS = "list_scope_options"
    SET_SCOPE = "set_scope"
    ADD_OPERATOR = "add_operator"
    # --- My IC card (issue 9) ---
    BIND_CARD = "bind_card"
    UNBIND_CARD = "unbind_card"
    SHOW_CARD = "show_card"
    # --- one-time codes, mobile, individuals (issue 9) ---
    CHANGE_MOBILE = "change_mobile"
    # --- operators, password, account update (issue 9) ---
    UPDATE_ACCOUNT = "update_account"
    CHANGE_PASSWORD = "change_password"
    MANAGE_OPERATORS = "manage_operators"
    # --- customs filing (issue 11) ---
    RESOLVE_FOR_SERVICE = "resolve_for_service"
    """Another service asks who a session is (filing); that service checks its own rules."""
    # --- qualifications and permissions (issue 10) ---
    SHOW_QUALIFICATIONS = "show_qualifications"
    EDIT_QUALIFICATIONS = "edit_qualifications"
    LIST_PERMISSIONS = "list_permissions"
    CHANGE_PERMISSIONS = "change_permissions"


@dataclass(frozen=True)
class Permission:
    """Who may take an action, and when."""

    roles: frozenset[Role]
    before: frozenset[RequiredAction] = frozenset()
    """The required actions a session may still owe when it takes this action."""
    own_enterprise: bool = False
    """The action acts on an enterprise: the caller's own, and only that one."""
    forbidden: str = "this account may not do that"
    """What a caller of another role is told."""


ANY_ROLE = frozenset(Role)
ENTERPRISE_ROLES = frozenset({Role.ADMIN, Role.OPERATOR})
"""Roles of an enterprise's accounts: an individual user has no enterprise to act on."""
ADMIN = frozenset({Role.ADMIN})
ANY_TIME = frozenset(RequiredAction)
SCOPE_FIRST = frozenset({RequiredAction.BUSINESS_SCOPE})

PERMISSIONS: dict[Action, Permission] = {
    Action.SHOW_SESSION: Permission(ANY_ROLE, before=ANY_TIME),
    Action.LOGOUT: Permission(ANY_ROLE, before=ANY_TIME),
    Action.SHOW_ACCOUNT: Permission(ANY_ROLE),
    Action.LIST_SCOPE_OPTIONS: Permission(
        ENTERPRISE_ROLES,
        before=SCOPE_FIRST,
        forbidden="an individual user has no enterprise and no business scope",
    ),
    Action.SET_SCOPE: Permission(
        ADMIN,
        before=SCOPE_FIRST,
        own_enterprise=True,
        forbidden="only the enterprise administrator declares business scope",
    ),
    Action.ADD_OPERATOR: Permission(
        ADMIN, own_enterprise=True, forbidden="only the enterprise administrator adds operators"
    ),
    # --- one-time codes, mobile, individuals (issue 9) ---
    Action.CHANGE_MOBILE: Permission(ANY_ROLE),
    # --- operators, password, account update (issue 9) ---
    # A one-time password's change comes before anything else: only it, the session and logout
    # may be asked while `change_password` is owed. An operator (or an individual) is refused
    # every administrator action by its role, whatever it still owes.
    Action.UPDATE_ACCOUNT: Permission(ANY_ROLE),
    Action.CHANGE_PASSWORD: Permission(ANY_ROLE, before=ANY_TIME),
    Action.MANAGE_OPERATORS: Permission(
        ADMIN,
        own_enterprise=True,
        forbidden="only the enterprise administrator manages operators; an operator account "
        "may show and change its own account, password and mobile",
    ),
}

ENDED = "session has expired or was ended; log in again"
CARD_REVOKED = "the card of this session has been revoked; the session has ended"
OTHER_ENTERPRISE = "an account acts on its own enterprise only"
STAFF_SESSION = "this is a staff session; enterprise requests need an enterprise session"


@dataclass(frozen=True)
class SessionRecord:
    """A stored session, as the caller's request finds it."""

    digest: str
    method: str
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    card_number: str | None
    card_still_bound: bool
    card_serial: int | None
    """The serial number of the certificate a card session logged in with."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: a live session's account and what it must do first."""

    account: Account
    session: SessionRecord
    required_actions: tuple[RequiredAction, ...]

    def refusal(self, action: Action, *, on: str | None = None) -> DomainError | None:
        """Why this caller may not take `action` (on the enterprise `on`), or None if it may."""
        return refusal(self.account, self.required_actions, action, on=on)


def refusal(
    account: Account,
    required_actions: tuple[RequiredAction, ...],
    action: Action,
    *,
    on: str | None = None,
) -> DomainError | None:
    """Why `account`, owing `required_actions`, may not take `action` on `on`, if it may not."""
    permission = PERMISSIONS[action]
    if account.role not in permission.roles:
        return DomainError(ErrorCode.FORBIDDEN, permission.forbidden)
    owed = [required for required in required_actions if required not in permission.before]
    if owed:
        return DomainError(
            ErrorCode.ACTION_REQUIRED,
            f"first complete the required action: {owed[0].value.replace('_', ' ')}",
        )
    if permission.own_enterprise and (account.uscc is None or on not in (None, account.uscc)):
        message = permission.forbidden if account.uscc is None else OTHER_ENTERPRISE
        return DomainError(ErrorCode.FORBIDDEN, message)
    return None


def session_lapsed(deps: AccountsRuntime, session: SessionRecord, now: datetime) -> bool:
    """Whether a session has ended: logged out, past its limits, or its card unbound."""
    return (
        session.revoked_at is not None
        or now >= deps.sessions.idle_expiry(session.last_seen_at, session.expires_at)
        or (session.method == "card" and not session.card_still_bound)
    )


async def authorize(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    token: str,
    action: Action,
    *,
    on: str | None = None,
) -> Caller:
    """The caller behind `token`, if its session is live and it may take `action` (on `on`).

    Refuses a staff session (WRONG_SESSION), an ended session (UNAUTHENTICATED), another role
    (FORBIDDEN), a session owing a required action first (ACTION_REQUIRED) and another
    enterprise (FORBIDDEN). The session's idle clock restarts with each request it may make
    (stored at most once a second, `SessionPolicy.touch_due`).
    """
    digest = token_digest(token)
    row = (await connection.execute(_CALLER, {"digest": digest})).mappings().first()
    if row is None:
        staff = (await connection.execute(_IS_STAFF, {"digest": digest})).scalar_one()
        raise _unknown(staff)
    now = deps.service.clock.now()
    caller = _caller(deps, row, digest, action, on, now)
    if deps.sessions.touch_due(caller.session.last_seen_at, now):
        await connection.execute(_TOUCH, {"digest": digest, "now": now})
    return caller


async def authorized(
    deps: AccountsRuntime, token: str, action: Action, *, on: str | None = None
) -> Caller:
    """`authorize` for a request that only reads: one trip to the database to find the caller,
    and a second only when the session's last-seen time is due to be stored."""
    digest = token_digest(token)
    now = deps.service.clock.now()
    caller = await deps.service.db.read(_authorize_reading, deps, digest, action, on, now)
    if deps.sessions.touch_due(caller.session.last_seen_at, now):
        await deps.service.db.run(_touch, digest, now)
    return caller


def _authorize_reading(
    connection: Connection,
    deps: AccountsRuntime,
    digest: str,
    action: Action,
    on: str | None,
    now: datetime,
) -> Caller:
    row = connection.execute(_CALLER, {"digest": digest}).mappings().first()
    if row is None:
        raise _unknown(connection.execute(_IS_STAFF, {"digest": digest}).scalar_one())
    return _caller(deps, row, digest, action, on, now)


def _touch(connection: Connection, digest: str, now: datetime) -> None:
    connection.execute(_TOUCH, {"digest": digest, "now": now})


def _unknown(staff: bool) -> DomainError:
    """The refusal of a token that names no enterprise session."""
    if staff:
        return DomainError(ErrorCode.WRONG_SESSION, STAFF_SESSION)
    return DomainError(ErrorCode.UNAUTHENTICATED, ENDED)


def _caller(
    deps: AccountsRuntime,
    row: RowMapping,
    digest: str,
    action: Action,
    on: str | None,
    now: datetime,
) -> Caller:
    """The caller a session's row (`_CALLER`) names, if it may take `action` now; else raise."""
    account = account_from_row(row)
    session = SessionRecord(
        digest=digest,
        method=row["session_method"],
        last_seen_at=as_utc(row["session_last_seen_at"]),
        expires_at=as_utc(row["session_expires_at"]),
        revoked_at=None if row["session_revoked_at"] is None else as_utc(row["session_revoked_at"]),
        card_number=row["session_card_number"],
        card_still_bound=row["bound_account_id"] == account.account_id,
        card_serial=None if row["session_card_serial"] is None else int(row["session_card_serial"]),
    )
    if session_lapsed(deps, session, now) or account.status is not AccountStatus.ACTIVE:
        raise DomainError(ErrorCode.UNAUTHENTICATED, ENDED)
    if session.method == "card":
        _check_card_not_revoked(deps, session, now)
    caller = Caller(account=account, session=session, required_actions=account.required_actions)
    refused = caller.refusal(action, on=on)
    if refused is not None:
        raise refused
    return caller


def _check_card_not_revoked(deps: AccountsRuntime, session: SessionRecord, now: datetime) -> None:
    """End a card session whose certificate the current CRL revokes (fail closed: a CRL that
    cannot be read or is out of date refuses card sessions too)."""
    revocations = deps.trust.current().revocations
    if revocations is None:  # no CRL: development only (see Settings.startup_problem)
        return
    if session.card_serial is None:
        raise DomainError(ErrorCode.UNAUTHENTICATED, ENDED)
    try:
        revocations.check(session.card_serial, at=now)
    except CertificateError as exc:
        if exc.problem is CertificateProblem.REVOKED:
            raise DomainError(ErrorCode.UNAUTHENTICATED, CARD_REVOKED) from exc
        raise DomainError(
            ErrorCode.CARD_REFUSED, f"card sessions are not available: {exc.problem.value}"
        ) from exc


_CALLER = (
    select(
        *ACCOUNT_COLUMNS,
        sessions.c.method.label("session_method"),
        sessions.c.last_seen_at.label("session_last_seen_at"),
        sessions.c.expires_at.label("session_expires_at"),
        sessions.c.revoked_at.label("session_revoked_at"),
        sessions.c.card_number.label("session_card_number"),
        sessions.c.card_serial.label("session_card_serial"),
        card_bindings.c.account_id.label("bound_account_id"),
    )
    .select_from(
        sessions.join(accounts, accounts.c.account_id == sessions.c.account_id)
        .outerjoin(enterprises, enterprises.c.uscc == accounts.c.uscc)
        .outerjoin(card_bindings, card_bindings.c.card_number == sessions.c.card_number)
    )
    .where(sessions.c.token_digest == bindparam("digest"))
)
"""The session, its account and its card's binding, in one statement."""

_IS_STAFF = select(exists().where(staff_sessions.c.token_digest == bindparam("digest")))
_TOUCH = (
    update(sessions)
    .where(sessions.c.token_digest == bindparam("digest"))
    .values(last_seen_at=bindparam("now"))
)


# --- My IC card (issue 9) ---
NO_ENTERPRISE_CARD = (
    "an IC card is bound to an enterprise's account; this account has no enterprise"
)
PERMISSIONS.update(
    {
        Action.BIND_CARD: Permission(
            ENTERPRISE_ROLES, own_enterprise=True, forbidden=NO_ENTERPRISE_CARD
        ),
        Action.UNBIND_CARD: Permission(ENTERPRISE_ROLES, forbidden=NO_ENTERPRISE_CARD),
        Action.SHOW_CARD: Permission(ANY_ROLE),
    }
)


# --- customs filing (issue 11) ---
PERMISSIONS[Action.RESOLVE_FOR_SERVICE] = Permission(
    ENTERPRISE_ROLES,
    own_enterprise=True,
    forbidden="an individual user has no enterprise to act for",
)

# --- qualifications and permissions (issue 10) ---
NO_ENTERPRISE = "an individual user has no enterprise"
PERMISSIONS.update(
    {
        Action.SHOW_QUALIFICATIONS: Permission(
            ENTERPRISE_ROLES, own_enterprise=True, forbidden=NO_ENTERPRISE
        ),
        Action.EDIT_QUALIFICATIONS: Permission(
            ADMIN,
            own_enterprise=True,
            forbidden="only the enterprise administrator edits the qualifications",
        ),
        Action.LIST_PERMISSIONS: Permission(
            ENTERPRISE_ROLES, own_enterprise=True, forbidden=NO_ENTERPRISE
        ),
        Action.CHANGE_PERMISSIONS: Permission(
            ADMIN,
            own_enterprise=True,
            forbidden="only the enterprise administrator revokes and restores permissions",
        ),
    }
)
