"""The current password, asked again before a change that needs it (a new password, unbinding a
card): verified under the login throttle of the account's name, so a session guesses no faster
than a login does, and each check is an authentication attempt in the audit trail."""

from __future__ import annotations

import structlog
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account, account_key
from singlewindow.accounts.login import reserve_attempt, throttled
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import AuthenticationAttempted
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.reauth")

WRONG_CURRENT = "the current password is incorrect"


async def confirm_password(
    deps: AccountsRuntime, account: Account, password: str, purpose: str
) -> str:
    """Verify `account`'s current password for `purpose`; a throttled or wrong one is audited
    and refused. Returns the throttle key: the caller's write clears its failures
    (`Logins.clear_failures`) and audits the success with `audit_check`."""
    key = account_key(account.account)
    now = deps.service.clock.now()
    blocked = await reserve_attempt(deps, key, now)
    if blocked is not None:
        async with deps.service.db.transaction() as connection:
            await audit_check(deps, connection, account, purpose, "throttled", "too many attempts")
        raise throttled(blocked, now)
    if not await deps.passwords.verify(account.password_hash, password):
        async with deps.service.db.transaction() as connection:
            await audit_check(
                deps, connection, account, purpose, "failed", "incorrect current password"
            )
        raise DomainError(
            ErrorCode.UNAUTHENTICATED,
            WRONG_CURRENT,
            (FieldError(path="current_password", message="is incorrect"),),
        )
    return key


async def audit_check(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    account: Account,
    purpose: str,
    outcome: str,
    reason: str | None,
) -> None:
    """A current-password check as an authentication attempt, in the caller's transaction."""
    log.info(
        "authentication attempt",
        account=account.account,
        outcome=outcome,
        reason=reason,
        purpose=purpose,
    )
    await deps.service.emit(
        connection,
        contract.AUTHENTICATION_ATTEMPTED,
        AuthenticationAttempted(
            account=account.account,
            method="password",
            outcome=outcome,
            reason=reason,
            purpose=purpose,
        ),
        subject=account.uscc,
    )
