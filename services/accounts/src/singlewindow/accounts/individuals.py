"""Individual users: no enterprise, limited functions, active once their mobile is proven.

`individuals.register` creates a pending account and sends an activation code to its mobile;
`individuals.activate` with that code makes it active (and announces `individual-registered`).
A pending registration whose code has expired no longer holds its account name.
"""

from __future__ import annotations

from singlewindow.accounts.codes import VerifiedCode, issue_code, verify_code
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import AccountStatus, NewAccount, account_key
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import (
    ACCOUNT_COLUMNS,
    WITH_ENTERPRISE,
    account_from_row,
    accounts,
    create_account,
    one_time_codes,
)
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    ActivateIndividual,
    CodePurpose,
    CodeSent,
    IndividualActivated,
    IndividualRegistered,
    RegisterIndividual,
    Role,
)
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.identifiers import mask_id_number
from singlewindow.runtime.db import IntegrityError, as_utc
from singlewindow.runtime.passwords import policy_problem
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

NO_REGISTRATION = "no registration of that account is waiting for its code"


@routes.serve(contract.REGISTER_INDIVIDUAL)
async def register_individual(request: RegisterIndividual, deps: AccountsRuntime) -> CodeSent:
    """Register an individual user, pending until the code sent to its mobile activates it."""
    problem = policy_problem(
        request.password, account=request.account, min_length=deps.settings.password_min_length
    )
    if problem:
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: password {problem}",
            (FieldError(path="password", message=f"password {problem}"),),
        )
    password_hash = await deps.passwords.hash(request.password)
    now = deps.service.clock.now()
    try:
        async with deps.service.db.transaction() as connection:
            await _release_lapsed_registration(deps, connection, request.account)
            account = await create_account(
                connection,
                NewAccount(
                    holder=request,
                    role=Role.INDIVIDUAL,
                    uscc=None,
                    password_hash=password_hash,
                    password_must_change=False,
                ),
                now,
            )
            await connection.execute(
                update(accounts)
                .where(accounts.c.account_id == account.account_id)
                .values(status=AccountStatus.PENDING.value)
            )
            return await issue_code(
                deps, connection, CodePurpose.INDIVIDUAL_ACTIVATION, account, request.mobile
            )
    except IntegrityError:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"account name {request.account} is taken; choose another",
            (FieldError(path="account", message="is taken"),),
        ) from None


async def _release_lapsed_registration(
    deps: AccountsRuntime, connection: AsyncConnection, name: str
) -> None:
    """Delete a pending individual registration of `name` whose code has expired (or was used
    up); refuse, saying until when, while its code is live."""
    row = (
        await connection.execute(
            select(accounts.c.account_id).where(
                accounts.c.account_key == account_key(name),
                accounts.c.role == Role.INDIVIDUAL.value,
                accounts.c.status == AccountStatus.PENDING.value,
            )
        )
    ).first()
    if row is None:
        return
    account_id = row[0]
    live = (
        await connection.execute(
            select(one_time_codes.c.expires_at)
            .where(
                one_time_codes.c.account_id == account_id,
                one_time_codes.c.expires_at > deps.service.clock.now(),
                one_time_codes.c.used_at.is_(None),
                one_time_codes.c.voided_at.is_(None),
                one_time_codes.c.failures < deps.settings.code_max_tries,
            )
            .order_by(one_time_codes.c.expires_at.desc())
        )
    ).first()
    if live is not None:
        message = (
            "is registered and waiting for its activation code: activate it with "
            f"`swctl register verify --account {name} CODE`, or register again after "
            f"{as_utc(live[0]).isoformat(timespec='seconds')}"
        )
        raise DomainError(
            ErrorCode.CONFLICT,
            f"account {name} {message}",
            (FieldError(path="account", message=message),),
        )
    await connection.execute(
        delete(one_time_codes).where(one_time_codes.c.account_id == account_id)
    )
    await connection.execute(delete(accounts).where(accounts.c.account_id == account_id))


@routes.serve(contract.ACTIVATE_INDIVIDUAL)
async def activate_individual(
    request: ActivateIndividual, deps: AccountsRuntime
) -> IndividualActivated:
    """Activate a pending individual account with the code sent to its mobile (audited)."""
    async with deps.service.db.reading() as connection:
        row = (
            (
                await connection.execute(
                    select(*ACCOUNT_COLUMNS)
                    .select_from(WITH_ENTERPRISE)
                    .where(accounts.c.account_key == account_key(request.account))
                )
            )
            .mappings()
            .first()
        )
    account = None if row is None else account_from_row(row)
    if account is None or account.role is not Role.INDIVIDUAL:
        raise DomainError(
            ErrorCode.NOT_FOUND,
            NO_REGISTRATION,
            (FieldError(path="account", message=NO_REGISTRATION),),
        )
    if account.status is AccountStatus.ACTIVE:
        message = "is already active; log in with `swctl login --account`"
        raise DomainError(
            ErrorCode.CONFLICT,
            f"account {account.account} {message}",
            (FieldError(path="account", message=message),),
        )

    async def apply(connection: AsyncConnection, code: VerifiedCode) -> None:
        await connection.execute(
            update(accounts)
            .where(
                accounts.c.account_id == account.account_id,
                accounts.c.status == AccountStatus.PENDING.value,
            )
            .values(status=AccountStatus.ACTIVE.value)
        )
        await deps.service.emit(
            connection,
            contract.INDIVIDUAL_REGISTERED,
            IndividualRegistered(
                account=account.account,
                name=account.name,
                id_type=row_id_type,
                id_number_masked=mask_id_number(account.id_number),
                activated_at=code.used_at,
            ),
            subject=None,
        )

    assert row is not None
    row_id_type = str(row["id_type"])
    verified = await verify_code(
        deps, CodePurpose.INDIVIDUAL_ACTIVATION, account, request.code, apply
    )
    return IndividualActivated(
        account=account.account,
        role=Role.INDIVIDUAL,
        status=AccountStatus.ACTIVE.value,
        activated_at=verified.used_at,
    )
