"""For customs filing (issue 11): who an enterprise session is, for filing's own checks, and the
customs code an approved filing assigned, kept on the enterprise."""

from __future__ import annotations

from singlewindow.accounts.authorization import Action, authorized
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import enterprises
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import EnterpriseCaller, ResolveSession
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.filing import RecordChanged
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection


@routes.serve(contract.RESOLVE_SESSION)
async def resolve_session(request: ResolveSession, deps: AccountsRuntime) -> EnterpriseCaller:
    """Say which enterprise account a live session belongs to, for another service's checks."""
    caller = await authorized(deps, request.token, Action.RESOLVE_FOR_SERVICE)
    account = caller.account
    assert account.uscc is not None
    assert account.enterprise_name is not None
    via, card_code = await deps.service.db.read(_registration, account.uscc)
    return EnterpriseCaller(
        account=account.account,
        role=account.role,
        uscc=account.uscc,
        enterprise_name=account.enterprise_name,
        operator_level=account.operator_level,
        registered_via=via,
        card_customs_code=card_code,
    )


def _registration(connection: Connection, uscc: str) -> tuple[str, str | None]:
    """How the enterprise registered, and the customs code its card carries (if any)."""
    via, card_code = connection.execute(_REGISTRATION, {"uscc": uscc}).one()
    return via, card_code


_REGISTRATION = select(enterprises.c.registered_via, enterprises.c.card_customs_code).where(
    enterprises.c.uscc == bindparam("uscc")
)


async def customs_code_of(connection: AsyncConnection, uscc: str | None) -> str | None:
    """The enterprise's customs code, once its filing was approved."""
    if uscc is None:
        return None
    result = await connection.execute(
        select(enterprises.c.customs_code).where(enterprises.c.uscc == uscc)
    )
    code: str | None = result.scalar_one_or_none()
    return code


@routes.consume(contract.FILING_RECORDS)
async def keep_customs_code(
    filed: RecordChanged, event: CloudEvent, connection: AsyncConnection, deps: AccountsRuntime
) -> None:
    """Show on the enterprise the customs code its approved first filing was assigned."""
    await connection.execute(
        update(enterprises)
        .where(enterprises.c.uscc == filed.uscc)
        .values(customs_code=filed.customs_code)
    )
