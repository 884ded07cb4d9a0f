"""An account's own details and password: update (name, e-mail, landline), password change.

A password change is also how a one-time password's required action `change_password` is done:
until then the session can do nothing else (`authorization.PERMISSIONS`). The current password
is verified through the login throttle, under the account's own login name, so a session
cannot be used to guess it faster than a login could; every other session of the account ends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from singlewindow.accounts.authorization import Action, authorize
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account
from singlewindow.accounts.login import Logins, account_view, session_view
from singlewindow.accounts.reauth import audit_check, confirm_password
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import account_by_id, accounts, sessions
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AccountChanged,
    AccountView,
    ChangePassword,
    SessionView,
    UpdateAccount,
)
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.runtime.passwords import policy_problem
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.selfservice")

EDITABLE = ("name", "email", "landline")
"""What an account holder may change of their own details."""
PASSWORD_CHANGE = "password-change"


class Accounts:
    """Accounts' details, passwords and sessions, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def set_details(self, account_id: str, values: dict[str, Any]) -> None:
        """Store new values of an account's editable details."""
        await self.connection.execute(
            update(accounts).where(accounts.c.account_id == account_id).values(**values)
        )

    async def replace_password(self, account_id: str, old_hash: str, new_hash: str) -> bool:
        """Set the holder's own password in place of `old_hash` (no one-time password any more);
        False if it changed meanwhile."""
        result = await self.connection.execute(
            update(accounts)
            .where(accounts.c.account_id == account_id, accounts.c.password_hash == old_hash)
            .values(
                password_hash=new_hash,
                password_must_change=False,
                password_expires_at=None,
                initial_password=None,
            )
        )
        return result.rowcount == 1

    async def set_one_time_password(
        self, account_id: str, password_hash: str, expires_at: datetime, kind: str
    ) -> None:
        """Give an account a one-time password, good until `expires_at`, to change at login."""
        await self.connection.execute(
            update(accounts)
            .where(accounts.c.account_id == account_id)
            .values(
                password_hash=password_hash,
                password_must_change=True,
                password_expires_at=expires_at,
                initial_password=kind,
            )
        )

    async def revoke_sessions(
        self, account_id: str, now: datetime, *, keep: str | None = None
    ) -> None:
        """End every live session of an account, but the one whose digest is `keep`."""
        statement = update(sessions).where(
            sessions.c.account_id == account_id, sessions.c.revoked_at.is_(None)
        )
        if keep is not None:
            statement = statement.where(sessions.c.token_digest != keep)
        await self.connection.execute(statement.values(revoked_at=now))


async def audit_change(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    account: Account,
    change: str,
    *,
    by: str,
    fields: tuple[str, ...] = (),
) -> None:
    """Record an administrative change, or an account's change to itself, in the audit trail."""
    log.info("account changed", account=account.account, change=change, by=by, fields=fields)
    await deps.service.emit(
        connection,
        contract.ACCOUNT_CHANGED,
        AccountChanged(
            account=account.account, uscc=account.uscc, change=change, by=by, fields=fields
        ),
        subject=account.uscc,
    )


def changed_values(request: Any, editable: tuple[str, ...], current: Account) -> dict[str, Any]:
    """The editable fields `request` gives, with values that differ from `current`'s."""
    given = {name: getattr(request, name) for name in editable if name in request.model_fields_set}
    if given.get("name", "") is None:
        raise DomainError(
            ErrorCode.INVALID,
            "invalid fields: name cannot be empty",
            (FieldError(path="name", message="cannot be empty"),),
        )
    return {name: value for name, value in given.items() if getattr(current, name) != value}


@routes.serve(contract.UPDATE_ACCOUNT)
async def update_account(request: UpdateAccount, deps: AccountsRuntime) -> AccountView:
    """Change the caller's own name, e-mail or landline; the account name and ID number stay."""
    async with deps.service.db.transaction() as connection:
        account = (await authorize(deps, connection, request.token, Action.UPDATE_ACCOUNT)).account
        values = changed_values(request, EDITABLE, account)
        if values:
            await Accounts(connection).set_details(account.account_id, values)
            await audit_change(
                deps,
                connection,
                account,
                "account-updated",
                by=account.account,
                fields=tuple(values),
            )
        updated = await account_by_id(connection, account.account_id)
        assert updated is not None
        return await account_view(connection, updated)


@routes.serve(contract.CHANGE_PASSWORD)
async def change_password(request: ChangePassword, deps: AccountsRuntime) -> SessionView:
    """Change the caller's own password (the current one required); every other session ends."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize(deps, connection, request.token, Action.CHANGE_PASSWORD)
    account = caller.account
    problem = policy_problem(
        request.new_password, account=account.account, min_length=deps.settings.password_min_length
    )
    if problem:
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: new_password {problem}",
            (FieldError(path="new_password", message=f"password {problem}"),),
        )
    if request.new_password == request.current_password:
        raise DomainError(
            ErrorCode.INVALID,
            "invalid fields: new_password must differ from the current password",
            (FieldError(path="new_password", message="must differ from the current password"),),
        )
    key = await confirm_password(deps, account, request.current_password, PASSWORD_CHANGE)
    now = deps.service.clock.now()
    new_hash = await deps.passwords.hash(request.new_password)
    async with deps.service.db.transaction() as connection:
        repository = Accounts(connection)
        if not await repository.replace_password(
            account.account_id, account.password_hash, new_hash
        ):
            raise DomainError(
                ErrorCode.CONFLICT, "the password was changed meanwhile; log in again"
            )
        await Logins(connection).clear_failures(key)
        await repository.revoke_sessions(account.account_id, now, keep=caller.session.digest)
        await audit_check(deps, connection, account, PASSWORD_CHANGE, "succeeded", None)
        await audit_change(deps, connection, account, "password-changed", by=account.account)
        changed = await account_by_id(connection, account.account_id)
    assert changed is not None
    log.info("password changed", account=account.account)
    session = caller.session
    return session_view(
        deps,
        changed,
        request.token,
        now,
        session.expires_at,
        method=session.method,
        card_number=session.card_number,
    )
