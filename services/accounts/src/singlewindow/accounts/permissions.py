"""My application permissions, and the decision API the business systems ask.

The catalogue and the defaults of each business scope are data (`data/applications.json`). What
an account holds is worked out on each request, never stored: the enterprise's defaults follow
its current business scope, the administrator's revocations and restores (for the enterprise,
or for one operator) are kept as overrides, and a data-entry operator never holds `declare`
(maker/checker). So a scope change re-derives the defaults and keeps every override.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from singlewindow.accounts import scope
from singlewindow.accounts.authorization import (
    _CALLER,
    Action,
    SessionRecord,
    _check_card_not_revoked,
    authorize,
    session_lapsed,
)
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account, AccountStatus, account_key, token_digest
from singlewindow.accounts.routes import routes
from singlewindow.accounts.scope import Scopes
from singlewindow.accounts.tables import (
    ACCOUNT_COLUMNS,
    WITH_ENTERPRISE,
    account_from_row,
    accounts,
    business_scopes,
    permission_overrides,
    sessions,
)
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    ChangePermission,
    CheckPermission,
    Introspection,
    IntrospectSession,
    ListPermissions,
    PermissionAction,
    PermissionDecision,
    PermissionEntry,
    PermissionList,
    PermissionsChanged,
    Role,
)
from singlewindow.contracts.card_gateway import OperatorLevel
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.runtime.db import as_utc
from sqlalchemy import (
    ColumnElement,
    Connection,
    ScalarSelect,
    Select,
    bindparam,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

ENTERPRISE = ""
"""The `account_id` of an override for the whole enterprise."""
REVOKED = "revoked"
RESTORED = "restored"
MAKER_CHECKER = "a data-entry operator never holds declare (maker/checker)"


# The catalogue (data)


@dataclass(frozen=True)
class Application:
    """A business application and its actions."""

    id: str
    name_zh: str
    name_en: str
    actions: tuple[PermissionAction, ...]


@dataclass(frozen=True)
class Catalogue:
    """The applications and the defaults of each business scope."""

    applications: dict[str, Application]
    defaults_by_scope: dict[str, frozenset[str]]

    def defaults(self, codes: Iterable[str]) -> dict[str, list[str]]:
        """Each application a scope grants by default, with the scope codes granting it."""
        granted: dict[str, list[str]] = {}
        for code in codes:
            for application in sorted(self.defaults_by_scope.get(code, ())):
                granted.setdefault(application, []).append(code)
        return granted


@cache
def catalogue() -> Catalogue:
    """The catalogue in `data/applications.json`."""
    text = (
        resources.files("singlewindow.accounts")
        .joinpath("data/applications.json")
        .read_text(encoding="utf-8")
    )
    data = json.loads(text)
    return Catalogue(
        applications={
            item["id"]: Application(
                id=item["id"],
                name_zh=item["name_zh"],
                name_en=item["name_en"],
                actions=tuple(PermissionAction(a) for a in item["actions"]),
            )
            for item in data["applications"]
        },
        defaults_by_scope={code: frozenset(ids) for code, ids in data["defaults_by_scope"].items()},
    )


# What an account holds


@dataclass(frozen=True)
class Holder:
    """Whose permissions: the enterprise (an administrator) or one operator."""

    uscc: str
    account_id: str | None = None
    level: OperatorLevel | None = None


async def _overrides(
    connection: AsyncConnection, holder: Holder
) -> dict[tuple[str, str, str], str]:
    ids = [ENTERPRISE] if holder.account_id is None else [ENTERPRISE, holder.account_id]
    rows = await connection.execute(
        select(
            permission_overrides.c.account_id,
            permission_overrides.c.application,
            permission_overrides.c.action,
            permission_overrides.c.state,
        )
        .where(permission_overrides.c.uscc == holder.uscc)
        .where(permission_overrides.c.account_id.in_(ids))
    )
    return {(row.account_id, row.application, row.action): row.state for row in rows}


async def held(connection: AsyncConnection, holder: Holder) -> list[PermissionEntry]:
    """Every application and action, granted or not and why, for `holder`."""
    codes, _version = await Scopes(connection).current(holder.uscc)
    overrides = await _overrides(connection, holder)
    books = catalogue()
    defaults = books.defaults(code.value for code in codes)
    entries = []
    for application in books.applications.values():
        for action in application.actions:
            granted, reason = _decide(holder, overrides, defaults, application.id, action)
            entries.append(
                PermissionEntry(
                    application=application.id,
                    name_zh=application.name_zh,
                    name_en=application.name_en,
                    action=action,
                    granted=granted,
                    reason=reason,
                )
            )
    return entries


def _decide(
    holder: Holder,
    overrides: dict[tuple[str, str, str], str],
    defaults: dict[str, list[str]],
    application: str,
    action: PermissionAction,
) -> tuple[bool, str]:
    state = overrides.get((ENTERPRISE, application, action.value))
    if state == REVOKED:
        return False, "revoked by the administrator for the enterprise"
    if state == RESTORED:
        granted, reason = True, "restored by the administrator for the enterprise"
    elif application in defaults:
        granted, reason = True, f"default from business scope {', '.join(defaults[application])}"
    else:
        granted, reason = False, "not a default of the enterprise's business scope"
    if holder.account_id is None or not granted:
        return granted, reason
    if action is PermissionAction.DECLARE and holder.level is not OperatorLevel.DECLARATION:
        return False, MAKER_CHECKER
    state = overrides.get((holder.account_id, application, action.value))
    if state == REVOKED:
        return False, "revoked by the administrator for this operator"
    if state == RESTORED:
        return True, "restored by the administrator for this operator"
    return granted, reason


def holder_of(account: Account) -> Holder:
    """Whose permissions an account holds: its enterprise's, or an operator's own."""
    assert account.uscc is not None
    if account.role is Role.OPERATOR:
        return Holder(account.uscc, account.account_id, account.operator_level)
    return Holder(account.uscc)


async def _operator(connection: AsyncConnection, uscc: str, name: str) -> Account:
    row = (
        (
            await connection.execute(
                select(*ACCOUNT_COLUMNS)
                .select_from(WITH_ENTERPRISE)
                .where(accounts.c.account_key == account_key(name))
            )
        )
        .mappings()
        .first()
    )
    account = None if row is None else account_from_row(row)
    if account is None or account.uscc != uscc or account.role is not Role.OPERATOR:
        message = "is not an operator of your enterprise"
        raise DomainError(
            ErrorCode.NOT_FOUND,
            f"invalid fields: operator {message}",
            (FieldError(path="operator", message=message),),
        )
    return account


def _listing(
    holder: Holder, operator: str | None, entries: list[PermissionEntry]
) -> PermissionList:
    return PermissionList(
        uscc=holder.uscc,
        operator=operator,
        operator_level=holder.level,
        permissions=tuple(entries),
    )


@routes.serve(contract.PERMISSIONS_LIST)
async def list_permissions(request: ListPermissions, deps: AccountsRuntime) -> PermissionList:
    """List the application permissions, granted or not and why: the enterprise's, an
    operator's (`operator`; an operator sees its own)."""
    async with deps.service.db.transaction() as connection:
        caller = (await authorize(deps, connection, request.token, Action.LIST_PERMISSIONS)).account
        uscc = caller.uscc
        assert uscc is not None  # LIST_PERMISSIONS acts on the caller's own enterprise
        name: str | None = None
        if caller.role is Role.OPERATOR:
            if request.operator is not None and account_key(request.operator) != account_key(
                caller.account
            ):
                raise DomainError(ErrorCode.FORBIDDEN, "an operator sees its own permissions only")
            holder, name = holder_of(caller), caller.account
        elif request.operator is not None:
            operator = await _operator(connection, uscc, request.operator)
            holder, name = holder_of(operator), operator.account
        else:
            holder = Holder(uscc)
        return _listing(holder, name, await held(connection, holder))


async def _change(request: ChangePermission, deps: AccountsRuntime, state: str) -> PermissionList:
    application = catalogue().applications.get(request.application)
    if application is None:
        message = "is not an application (see `swctl permissions list`)"
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: application {message}",
            (FieldError(path="application", message=message),),
        )
    if request.action is not None and request.action not in application.actions:
        message = f"is not an action of {application.id}"
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: action {message}",
            (FieldError(path="action", message=message),),
        )
    actions = application.actions if request.action is None else (request.action,)
    now = deps.service.clock.now()
    async with deps.service.db.transaction() as connection:
        caller = (
            await authorize(deps, connection, request.token, Action.CHANGE_PERMISSIONS)
        ).account
        uscc = caller.uscc
        assert uscc is not None  # CHANGE_PERMISSIONS acts on the caller's own enterprise
        holder, name = Holder(uscc), None
        if request.operator is not None:
            operator = await _operator(connection, uscc, request.operator)
            holder, name = holder_of(operator), operator.account
            if state == RESTORED and holder.level is not OperatorLevel.DECLARATION:
                if request.action is PermissionAction.DECLARE:
                    message = f"{MAKER_CHECKER}; {operator.account} is a data-entry operator"
                    raise DomainError(
                        ErrorCode.INVALID,
                        f"invalid fields: action {message}",
                        (FieldError(path="action", message=message),),
                    )
                actions = tuple(a for a in actions if a is not PermissionAction.DECLARE)
        await _set_overrides(connection, holder, application.id, actions, state, caller, now)
        change = PermissionsChanged(
            uscc=uscc,
            operator=name,
            application=application.id,
            actions=tuple(a.value for a in actions),
            change=state,
            changed_by=caller.account,
        )
        await deps.service.emit(connection, contract.PERMISSIONS_CHANGED, change, subject=uscc)
        await deps.service.emit(connection, contract.PERMISSIONS_AUDITED, change, subject=uscc)
        return _listing(holder, name, await held(connection, holder))


async def _set_overrides(
    connection: AsyncConnection,
    holder: Holder,
    application: str,
    actions: tuple[PermissionAction, ...],
    state: str,
    caller: Account,
    now: datetime,
) -> None:
    account_id = holder.account_id or ENTERPRISE
    for action in actions:
        key = (
            (permission_overrides.c.uscc == holder.uscc)
            & (permission_overrides.c.account_id == account_id)
            & (permission_overrides.c.application == application)
            & (permission_overrides.c.action == action.value)
        )
        await connection.execute(delete(permission_overrides).where(key))
        await connection.execute(
            insert(permission_overrides).values(
                uscc=holder.uscc,
                account_id=account_id,
                application=application,
                action=action.value,
                state=state,
                changed_by=caller.account,
                changed_at=now,
            )
        )


@routes.serve(contract.PERMISSIONS_REVOKE)
async def revoke_permission(request: ChangePermission, deps: AccountsRuntime) -> PermissionList:
    """Revoke an application (one action, or all) for the enterprise or one operator."""
    return await _change(request, deps, REVOKED)


@routes.serve(contract.PERMISSIONS_RESTORE)
async def restore_permission(request: ChangePermission, deps: AccountsRuntime) -> PermissionList:
    """Restore an application (one action, or all) for the enterprise or one operator; an
    enterprise-level restore brings back what each operator had."""
    return await _change(request, deps, RESTORED)


async def scope_changed(
    deps: AccountsRuntime, connection: AsyncConnection, uscc: str, changed_by: str
) -> None:
    """A new business scope re-derives the defaults (the overrides stay): tell the systems."""
    await deps.service.emit(
        connection,
        contract.PERMISSIONS_CHANGED,
        PermissionsChanged(
            uscc=uscc,
            operator=None,
            application=None,
            actions=(),
            change="scope-changed",
            changed_by=changed_by,
        ),
        subject=uscc,
    )


scope.SCOPE_CHANGED_HOOKS.append(scope_changed)


# The decision API (business systems)


@dataclass(frozen=True)
class Found:
    """A token's or account name's account, and why it may not act, if it may not."""

    account: Account | None
    session: SessionRecord | None
    inactive: str | None
    row: RowMapping | None = None


def _first(
    connection: Connection, statement: Select[Any], params: dict[str, str]
) -> RowMapping | None:
    """The statement's first row: a decision's one read, in one trip (`Database.read`)."""
    return connection.execute(statement, params).mappings().first()


async def _by_token(
    deps: AccountsRuntime,
    token: str,
    statement: Select[Any] = _CALLER,
    params: dict[str, str] | None = None,
) -> Found:
    params = {"digest": token_digest(token)} | (params or {})
    row = await deps.service.db.read(_first, statement, params)
    if row is None:
        return Found(None, None, "no such session")
    account = account_from_row(row)
    session = SessionRecord(
        digest="",
        method=row["session_method"],
        last_seen_at=as_utc(row["session_last_seen_at"]),
        expires_at=as_utc(row["session_expires_at"]),
        revoked_at=None if row["session_revoked_at"] is None else as_utc(row["session_revoked_at"]),
        card_number=row["session_card_number"],
        card_still_bound=row["bound_account_id"] == account.account_id,
        card_serial=None if row["session_card_serial"] is None else int(row["session_card_serial"]),
    )
    now = deps.service.clock.now()
    if session_lapsed(deps, session, now):
        return Found(account, session, "the session has ended", row)
    if account.status is not AccountStatus.ACTIVE:
        return Found(account, session, f"the account is {account.status.value}", row)
    if session.method == "card":
        try:
            _check_card_not_revoked(deps, session, now)
        except DomainError as exc:
            return Found(account, session, exc.message, row)
    return Found(account, session, None, row)


def _override(holder_id: ColumnElement[str] | str) -> ScalarSelect[str]:
    return (
        select(permission_overrides.c.state)
        .where(permission_overrides.c.uscc == accounts.c.uscc)
        .where(permission_overrides.c.account_id == holder_id)
        .where(permission_overrides.c.application == bindparam("application"))
        .where(permission_overrides.c.action == bindparam("action"))
        .correlate(accounts)
        .scalar_subquery()
    )


_DECISION_COLUMNS = (
    select(business_scopes.c.codes)
    .where(business_scopes.c.uscc == accounts.c.uscc)
    .order_by(business_scopes.c.version.desc())
    .limit(1)
    .correlate(accounts)
    .scalar_subquery()
    .label("scope_codes"),
    _override(ENTERPRISE).label("enterprise_state"),
    _override(accounts.c.account_id).label("operator_state"),
)
"""What a decision needs beside the account, in the same statement: one round trip."""

_BY_KEY = (
    select(*ACCOUNT_COLUMNS)
    .select_from(WITH_ENTERPRISE)
    .where(accounts.c.account_key == bindparam("key"))
)
_CHECK_BY_TOKEN = _CALLER.add_columns(*_DECISION_COLUMNS)
_CHECK_BY_KEY = _BY_KEY.add_columns(*_DECISION_COLUMNS)
_INTROSPECT = _CALLER.add_columns(sessions.c.created_at.label("session_created_at"))


@routes.serve(contract.PERMISSIONS_CHECK)
async def check_permission(request: CheckPermission, deps: AccountsRuntime) -> PermissionDecision:
    """May this session or account take the action in the application? Allowed or refused,
    with the reason (for the business systems; it does not extend the session)."""
    if (request.token is None) == (request.account is None):
        message = "give either token or account"
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: token {message}",
            (FieldError(path="token", message=message),),
        )
    application = catalogue().applications.get(request.application)
    if application is None or request.action not in application.actions:
        return PermissionDecision(allowed=False, reason="no such application or action")
    asked = {"application": application.id, "action": request.action.value}
    if request.token is not None:
        found = await _by_token(deps, request.token, _CHECK_BY_TOKEN, asked)
    else:
        params = asked | {"key": account_key(request.account or "")}
        row = await deps.service.db.read(_first, _CHECK_BY_KEY, params)
        account = None if row is None else account_from_row(row)
        inactive = None
        if account is None:
            inactive = "no such account"
        elif account.status is not AccountStatus.ACTIVE:
            inactive = f"the account is {account.status.value}"
        found = Found(account, None, inactive, row)
    account, row = found.account, found.row
    who = {} if account is None else {"account": account.account, "uscc": account.uscc}
    if found.inactive is not None:
        return PermissionDecision(allowed=False, reason=found.inactive, **who)
    assert account is not None
    assert row is not None
    if account.uscc is None:
        return PermissionDecision(
            allowed=False, reason="an individual user has no enterprise applications", **who
        )
    if account.required_actions:
        owed = account.required_actions[0].value.replace("_", " ")
        return PermissionDecision(
            allowed=False, reason=f"the account must first complete: {owed}", **who
        )
    holder = holder_of(account)
    asked_for = (application.id, request.action.value)
    overrides: dict[tuple[str, str, str], str] = {}
    if row["enterprise_state"] is not None:
        overrides[(ENTERPRISE, *asked_for)] = row["enterprise_state"]
    if holder.account_id is not None and row["operator_state"] is not None:
        overrides[(holder.account_id, *asked_for)] = row["operator_state"]
    codes = json.loads(row["scope_codes"]) if row["scope_codes"] else []
    defaults = catalogue().defaults(codes)
    allowed, reason = _decide(holder, overrides, defaults, application.id, request.action)
    return PermissionDecision(allowed=allowed, reason=reason, **who)


@routes.serve(contract.SESSION_INTROSPECT)
async def introspect_session(request: IntrospectSession, deps: AccountsRuntime) -> Introspection:
    """Whether a session token is active and whose it is, as RFC 7662 token introspection
    answers (it does not extend the session)."""
    found = await _by_token(deps, request.token, _INTROSPECT)
    account, session, row = found.account, found.session, found.row
    if found.inactive is not None or account is None or session is None or row is None:
        return Introspection(active=False)
    expires = deps.sessions.idle_expiry(session.last_seen_at, session.expires_at)
    return Introspection(
        active=True,
        sub=account.account_id,
        username=account.account,
        token_type="session",
        enterprise=account.uscc,
        role=account.role,
        level=account.operator_level,
        method=session.method,
        iat=int(as_utc(row["session_created_at"]).timestamp()),
        exp=int(expires.timestamp()),
    )
