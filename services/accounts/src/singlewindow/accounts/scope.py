"""Business scope: what an enterprise actually does, declared by its administrator, with history."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime

from singlewindow.accounts.authorization import Action, authorize
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import business_scopes
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    SCOPE_LABELS,
    BusinessScope,
    BusinessScopeDeclared,
    RequiredAction,
    ScopeDeclared,
    ScopeOption,
    ScopeOptionList,
    ScopeOptions,
    SetScope,
)
from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection


class Scopes:
    """Versions of enterprises' business scope, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def current(self, uscc: str) -> tuple[tuple[BusinessScope, ...], int]:
        """The enterprise's business scope in force and its version (0: never declared)."""
        row = (await self.connection.execute(_CURRENT, {"uscc": uscc})).first()
        if row is None:
            return (), 0
        return tuple(BusinessScope(code) for code in json.loads(row.codes)), row.version

    async def declare(
        self,
        uscc: str,
        codes: tuple[BusinessScope, ...],
        declared_by: str,
        version: int,
        now: datetime,
    ) -> None:
        """Add a version of the enterprise's business scope; earlier versions stay as history."""
        await self.connection.execute(
            insert(business_scopes).values(
                uscc=uscc,
                version=version,
                codes=json.dumps([code.value for code in codes]),
                declared_by=declared_by,
                declared_at=now,
            )
        )


_CURRENT = (
    select(business_scopes.c.codes, business_scopes.c.version)
    .where(business_scopes.c.uscc == bindparam("uscc"))
    .order_by(business_scopes.c.version.desc())
    .limit(1)
)


@routes.serve(contract.SCOPE_OPTIONS)
async def scope_options(request: ScopeOptions, deps: AccountsRuntime) -> ScopeOptionList:
    """List the business scope choices, marking those the enterprise has declared."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize(deps, connection, request.token, Action.LIST_SCOPE_OPTIONS)
        current: tuple[BusinessScope, ...] = ()
        if caller.account.uscc:
            current, _version = await Scopes(connection).current(caller.account.uscc)
    return ScopeOptionList(
        options=tuple(
            ScopeOption(code=code, name_zh=zh, name_en=en, selected=code in current)
            for code, (zh, en) in SCOPE_LABELS.items()
        )
    )


@routes.serve(contract.SET_SCOPE)
async def set_scope(request: SetScope, deps: AccountsRuntime) -> ScopeDeclared:
    """Declare the enterprise's business scope (administrator only); earlier ones are kept."""
    codes = request.codes
    async with deps.service.db.transaction() as connection:
        caller = await authorize(deps, connection, request.token, Action.SET_SCOPE)
        account = caller.account
        uscc = account.uscc
        assert uscc is not None  # SET_SCOPE acts on the caller's own enterprise
        scopes = Scopes(connection)
        _current, version = await scopes.current(uscc)
        await scopes.declare(uscc, codes, account.account, version + 1, deps.service.clock.now())
        await deps.service.emit(
            connection,
            contract.BUSINESS_SCOPE_DECLARED,
            BusinessScopeDeclared(
                uscc=uscc,
                codes=tuple(code.value for code in codes),
                version=version + 1,
                declared_by=account.account,
            ),
            subject=uscc,
        )
        for hook in SCOPE_CHANGED_HOOKS:  # issue 10: permissions re-derive their defaults
            await hook(deps, connection, uscc, account.account)
    remaining = tuple(a for a in caller.required_actions if a is not RequiredAction.BUSINESS_SCOPE)
    return ScopeDeclared(codes=codes, version=version + 1, required_actions=remaining)


# --- qualifications and permissions (issue 10) ---
SCOPE_CHANGED_HOOKS: list[
    Callable[[AccountsRuntime, AsyncConnection, str, str], Awaitable[None]]
] = []
"""Called inside the transaction that declares a new scope (`permissions` tells the systems)."""
