"""Changing the caller's own mobile number: a one-time code to the new number proves it.

Any session (administrator, operator, individual) may change its own number.
"""

from __future__ import annotations

from singlewindow.accounts.authorization import Action, authorize
from singlewindow.accounts.codes import VerifiedCode, issue_code, verify_code
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.login import show_account
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import accounts
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AccountView,
    ChangeMobile,
    CodePurpose,
    CodeSent,
    MobileChanged,
    ShowAccount,
    VerifyMobile,
)
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.identifiers import mask_mobile
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection


@routes.serve(contract.MOBILE_CHANGE)
async def change_mobile(request: ChangeMobile, deps: AccountsRuntime) -> CodeSent:
    """Send a one-time code to the new mobile number; `mobile.verify` completes the change."""
    async with deps.service.db.transaction() as connection:
        account = (await authorize(deps, connection, request.token, Action.CHANGE_MOBILE)).account
        if request.mobile == account.mobile:
            message = "is already this account's mobile number"
            raise DomainError(
                ErrorCode.INVALID,
                f"invalid fields: mobile {message}",
                (FieldError(path="mobile", message=message),),
            )
        return await issue_code(
            deps, connection, CodePurpose.MOBILE_CHANGE, account, request.mobile
        )


@routes.serve(contract.MOBILE_VERIFY)
async def verify_mobile(request: VerifyMobile, deps: AccountsRuntime) -> AccountView:
    """Make the number the code was sent to the account's mobile; every attempt is audited."""
    async with deps.service.db.transaction() as connection:
        account = (await authorize(deps, connection, request.token, Action.CHANGE_MOBILE)).account

    async def apply(connection: AsyncConnection, code: VerifiedCode) -> None:
        await connection.execute(
            update(accounts)
            .where(accounts.c.account_id == account.account_id)
            .values(mobile=code.target)
        )
        await deps.service.emit(
            connection,
            contract.MOBILE_CHANGED,
            MobileChanged(
                account=account.account,
                uscc=account.uscc,
                mobile_masked=mask_mobile(code.target),
                previous_mobile_masked=mask_mobile(account.mobile),
            ),
            subject=account.uscc,
        )

    await verify_code(deps, CodePurpose.MOBILE_CHANGE, account, request.code, apply)
    return await show_account(ShowAccount(token=request.token), deps)
