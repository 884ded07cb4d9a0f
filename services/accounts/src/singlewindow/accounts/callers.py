"""Who an enterprise session is, for another service's own checks (filing, issue 11)."""

from __future__ import annotations

from singlewindow.accounts.authorization import Action, authorize
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import enterprises
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import EnterpriseCaller, ResolveSession
from sqlalchemy import select


@routes.serve(contract.RESOLVE_SESSION)
async def resolve_session(request: ResolveSession, deps: AccountsRuntime) -> EnterpriseCaller:
    """Say which enterprise account a live session belongs to, for another service's checks."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize(deps, connection, request.token, Action.RESOLVE_FOR_SERVICE)
        account = caller.account
        assert account.uscc is not None
        assert account.enterprise_name is not None
        via = (
            await connection.execute(
                select(enterprises.c.registered_via).where(enterprises.c.uscc == account.uscc)
            )
        ).scalar_one()
    return EnterpriseCaller(
        account=account.account,
        role=account.role,
        uscc=account.uscc,
        enterprise_name=account.enterprise_name,
        operator_level=account.operator_level,
        registered_via=via,
    )
