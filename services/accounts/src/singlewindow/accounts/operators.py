"""Operators: accounts an enterprise's administrator adds, bound to an operator card, or cardless
with a one-time password (the guide's 88888888 by default, or a random one sent to their mobile).

An administrator sees and changes only their own enterprise's operators: any other name, another
enterprise's operator included, is "not found". Disabling or deleting ends the operator's
sessions at once; a deleted operator's row stays (its history), and its login is refused as an
unknown account's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import structlog
from singlewindow.accounts.authorization import Action, authorize
from singlewindow.accounts.cardbinding import BoundCard, announce_binding
from singlewindow.accounts.cards import OTHER_ENTERPRISE, Cards, audit, prove_card, refuse
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account, AccountStatus, NewAccount, account_key
from singlewindow.accounts.enterprises import Enterprises, card_account_conflict, check_password
from singlewindow.accounts.login import Logins
from singlewindow.accounts.routes import routes
from singlewindow.accounts.selfservice import Accounts, audit_change
from singlewindow.accounts.tables import (
    ACCOUNT_COLUMNS,
    WITH_ENTERPRISE,
    account_by_id,
    account_from_row,
    accounts,
    card_bindings,
    create_account,
)
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AddCardOperator,
    AddOperator,
    DeleteOperator,
    DisableOperator,
    EnableOperator,
    ListOperators,
    OperatorAdded,
    OperatorChanged,
    OperatorDetails,
    OperatorList,
    OperatorStatusChanged,
    OperatorView,
    ResetOperatorPassword,
    Role,
    ShowOperator,
    UpdateOperator,
)
from singlewindow.contracts.card_gateway import CardType
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.identifiers import mask_id_number, mask_mobile
from singlewindow.runtime.db import IntegrityError
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.operators")


class Operators:
    """An enterprise's operator accounts, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def add(self, new: NewAccount, now: datetime) -> Account:
        """Create an active operator account."""
        assert new.role is Role.OPERATOR
        return await create_account(self.connection, new, now)


@routes.serve(contract.ADD_CARD_OPERATOR)
async def add_operator_by_card(request: AddCardOperator, deps: AccountsRuntime) -> OperatorView:
    """Add an operator bound to an operator card of the administrator's own enterprise."""
    async with deps.service.db.transaction() as connection:
        authorized = await authorize(deps, connection, request.token, Action.ADD_OPERATOR)
    caller = authorized.account
    uscc = caller.uscc
    assert uscc is not None  # ADD_OPERATOR acts on the caller's own enterprise
    operator = request.operator
    check_password(deps, operator, "operator")
    proven = await prove_card(deps, request, "add-operator")
    card = proven.card

    refused = partial(refuse, deps, card=card, purpose="add-operator", account=operator.account)

    if authorized.refusal(Action.ADD_OPERATOR, on=card.enterprise_uscc) is not None:
        await refused(OTHER_ENTERPRISE, ErrorCode.CARD_REFUSED)
    if card.card_type is not CardType.OPERATOR or card.operator_level is None:
        await refused(
            "this is a legal-person card; an operator is added with their own operator card",
            ErrorCode.CARD_REFUSED,
        )
    level = card.operator_level
    if operator.level is not None and operator.level is not level:
        await refused(
            f"invalid fields: operator.level the card is a {level.value} card",
            ErrorCode.INVALID,
            (FieldError(path="operator.level", message=f"the card says {level.value}"),),
        )
    async with deps.service.db.reading() as connection:
        conflict = await card_account_conflict(connection, card, operator, "operator")
    if conflict is not None:
        await refused(conflict.message, conflict.code, conflict.fields)
    password_hash = await deps.passwords.hash(operator.password)
    now = deps.service.clock.now()
    try:
        async with deps.service.db.transaction() as connection:
            account = await Operators(connection).add(
                NewAccount(
                    holder=operator,
                    role=Role.OPERATOR,
                    uscc=uscc,
                    password_hash=password_hash,
                    # The operator is at the card reader to type the PIN, and types this
                    # password too: it is theirs, not an initial one the administrator knows.
                    password_must_change=False,
                    operator_level=level,
                ),
                now,
            )
            await Cards(connection).bind(
                card.card_number, account.account_id, card.card_type, proven.certificate, now
            )
            await deps.service.emit(
                connection,
                contract.OPERATOR_ADDED,
                OperatorAdded(
                    uscc=uscc,
                    account=account.account,
                    name=account.name,
                    level=level.value,
                    via="card",
                    card_number=card.card_number,
                    added_by=caller.account,
                ),
                subject=uscc,
            )
            await audit(
                deps, connection, card, "add-operator", "succeeded", None, account=account.account
            )
    except IntegrityError:
        async with deps.service.db.reading() as connection:
            conflict = await card_account_conflict(connection, card, operator, "operator")
        if conflict is None:
            raise
        await refused(conflict.message, conflict.code, conflict.fields)
    return OperatorView(
        account=account.account,
        role=account.role,
        operator_level=account.operator_level,
        name=account.name,
        id_number_masked=mask_id_number(account.id_number),
        mobile_masked=mask_mobile(account.mobile),
        email=account.email,
        uscc=account.uscc,
        enterprise_name=account.enterprise_name,
        status=account.status,
        card_number=card.card_number,
        created_at=account.created_at,
    )


# --- cardless operators and their administration (issue 9) ---

RANDOM = "random"
"""`SW_ACCOUNTS_INITIAL_PASSWORD=random`: a random one-time password, sent to the mobile."""
_RANDOM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
"""Letters and digits that cannot be misread from a text message (no 0/O, 1/l/I)."""
OPERATOR_FIELDS = ("name", "email", "landline", "operator_level")


def new_initial_password(deps: AccountsRuntime) -> tuple[str, str]:
    """A one-time password for an operator and how it is given: `default` (the deployment's,
    the guide's 88888888 unless set) or `random` (12 characters, sent to the mobile)."""
    configured = deps.settings.initial_password.get_secret_value()
    if configured == RANDOM:
        return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(12)), RANDOM
    return configured, "default"


def taken(account: str) -> DomainError:
    """The refusal of an account name already in use."""
    return DomainError(
        ErrorCode.CONFLICT,
        f"account name {account} is taken; choose another",
        (FieldError(path="operator.account", message="is taken"),),
    )


def not_found(account: str) -> DomainError:
    """The refusal of a name that is no operator of the caller's enterprise (whatever else)."""
    return DomainError(
        ErrorCode.NOT_FOUND,
        f"your enterprise has no operator {account}",
        (FieldError(path="account", message="no such operator in your enterprise"),),
    )


@dataclass(frozen=True)
class OperatorRecord:
    """An operator account and the card bound to it, if any."""

    account: Account
    card_number: str | None

    def details(self) -> OperatorDetails:
        """The operator as their administrator sees it."""
        account = self.account
        return OperatorDetails(
            account=account.account,
            role=account.role,
            operator_level=account.operator_level,
            name=account.name,
            id_number_masked=mask_id_number(account.id_number),
            mobile_masked=mask_mobile(account.mobile),
            email=account.email,
            landline=account.landline,
            uscc=account.uscc,
            enterprise_name=account.enterprise_name,
            status=account.status.value,
            card_number=self.card_number,
            password_must_change=account.password_must_change,
            password_expires_at=account.password_expires_at,
            initial_password=account.initial_password or "none",
            created_at=account.created_at,
        )


class EnterpriseOperators:
    """One enterprise's operators (deleted ones left out), inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection, uscc: str) -> None:
        self.connection = connection
        self.uscc = uscc

    async def named(self, name: str) -> OperatorRecord | None:
        """The enterprise's operator named `name` (any case), if there is one."""
        row = (
            (
                await self.connection.execute(
                    _OPERATORS.where(accounts.c.account_key == account_key(name)),
                    {"uscc": self.uscc},
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _operator(row)

    async def all(self) -> tuple[OperatorRecord, ...]:
        """Every operator of the enterprise, by account name."""
        rows = (
            await self.connection.execute(
                _OPERATORS.order_by(accounts.c.account_key), {"uscc": self.uscc}
            )
        ).mappings()
        return tuple(_operator(row) for row in rows)

    async def set_status(self, account_id: str, status: AccountStatus, now: datetime) -> None:
        """Enable, disable or delete an operator; disabling and deleting end its sessions, and
        deleting frees its card (the binding goes; the account row stays as history)."""
        values: dict[str, object] = {"status": status.value}
        if status is AccountStatus.DELETED:
            values["deleted_at"] = now
        await self.connection.execute(
            update(accounts).where(accounts.c.account_id == account_id).values(**values)
        )
        if status is not AccountStatus.ACTIVE:
            await Accounts(self.connection).revoke_sessions(account_id, now)
        if status is AccountStatus.DELETED:
            await self.connection.execute(
                delete(card_bindings).where(card_bindings.c.account_id == account_id)
            )


def _operator(row: RowMapping) -> OperatorRecord:
    return OperatorRecord(account=account_from_row(row), card_number=row["card_number"])


_OPERATORS = (
    select(*ACCOUNT_COLUMNS, card_bindings.c.card_number)
    .select_from(
        WITH_ENTERPRISE.outerjoin(
            card_bindings, card_bindings.c.account_id == accounts.c.account_id
        )
    )
    .where(
        accounts.c.uscc == bindparam("uscc"),
        accounts.c.role == Role.OPERATOR.value,
        accounts.c.status != AccountStatus.DELETED.value,
    )
)


async def _admin(deps: AccountsRuntime, connection: AsyncConnection, token: str) -> Account:
    """The administrator behind `token`, if it may manage its enterprise's operators."""
    caller = (await authorize(deps, connection, token, Action.MANAGE_OPERATORS)).account
    assert caller.uscc is not None  # MANAGE_OPERATORS acts on the caller's own enterprise
    return caller


async def _found(repository: EnterpriseOperators, name: str) -> OperatorRecord:
    found = await repository.named(name)
    if found is None:
        raise not_found(name)
    return found


@routes.serve(contract.ADD_OPERATOR)
async def add_operator(request: AddOperator, deps: AccountsRuntime) -> OperatorDetails:
    """Add a cardless operator with a one-time password, to change at first login."""
    operator = request.operator
    async with deps.service.db.transaction() as connection:
        caller = (await authorize(deps, connection, request.token, Action.ADD_OPERATOR)).account
        name_taken = await Enterprises(connection).account_taken(operator.account)
    uscc = caller.uscc
    assert uscc is not None  # ADD_OPERATOR acts on the caller's own enterprise
    if name_taken:
        raise taken(operator.account)
    password, kind = new_initial_password(deps)
    password_hash = await deps.passwords.hash(password)
    now = deps.service.clock.now()
    expires_at = now + timedelta(days=deps.settings.initial_password_ttl_days)
    try:
        async with deps.service.db.transaction() as connection:
            account = await Operators(connection).add(
                NewAccount(
                    holder=operator,
                    role=Role.OPERATOR,
                    uscc=uscc,
                    password_hash=password_hash,
                    password_must_change=True,
                    operator_level=operator.level,
                    password_expires_at=expires_at,
                    initial_password=kind,
                ),
                now,
            )
            await deps.service.emit(
                connection,
                contract.OPERATOR_ADDED,
                OperatorAdded(
                    uscc=uscc,
                    account=account.account,
                    name=account.name,
                    level=operator.level.value,
                    via="password",
                    card_number=None,
                    added_by=caller.account,
                ),
                subject=uscc,
            )
            await audit_change(deps, connection, account, "operator-added", by=caller.account)
            if kind == RANDOM:
                await _send_password(deps, connection, account, password, expires_at)
    except IntegrityError:
        # Another administrator took the name between the check above and this insert.
        log.info("operator name taken meanwhile", account=operator.account, by=caller.account)
        raise taken(operator.account) from None
    log.info("operator added", uscc=uscc, account=account.account, by=caller.account)
    return OperatorRecord(account, None).details()


async def _send_password(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    account: Account,
    password: str,
    expires_at: datetime,
) -> None:
    # Imported here: the notification module belongs to the one-time codes' feature.
    from singlewindow.accounts.notifications import send_message

    text = (
        f"Single Window: the one-time password of your account {account.account} is"
        f" {password}. Change it at your first login, before {expires_at:%Y-%m-%d %H:%M} UTC."
    )
    await send_message(
        deps,
        connection,
        to=account.mobile,
        kind="initial_password",
        text=text,
        account=account.account,
    )


@routes.serve(contract.LIST_OPERATORS)
async def list_operators(request: ListOperators, deps: AccountsRuntime) -> OperatorList:
    """List the operators of the caller's enterprise (administrator only)."""
    async with deps.service.db.transaction() as connection:
        caller = await _admin(deps, connection, request.token)
        assert caller.uscc is not None
        found = await EnterpriseOperators(connection, caller.uscc).all()
    return OperatorList(operators=tuple(record.details() for record in found))


@routes.serve(contract.SHOW_OPERATOR)
async def show_operator(request: ShowOperator, deps: AccountsRuntime) -> OperatorDetails:
    """Show one operator of the caller's enterprise (administrator only)."""
    async with deps.service.db.transaction() as connection:
        caller = await _admin(deps, connection, request.token)
        assert caller.uscc is not None
        found = await _found(EnterpriseOperators(connection, caller.uscc), request.account)
    return found.details()


@routes.serve(contract.UPDATE_OPERATOR)
async def update_operator(request: UpdateOperator, deps: AccountsRuntime) -> OperatorDetails:
    """Change an operator's name, e-mail, landline or (cardless) level (administrator only)."""
    changes = request.changes
    async with deps.service.db.transaction() as connection:
        caller = await _admin(deps, connection, request.token)
        assert caller.uscc is not None
        repository = EnterpriseOperators(connection, caller.uscc)
        found = await _found(repository, request.account)
        given = {
            ("operator_level" if name == "level" else name): getattr(changes, name)
            for name in changes.model_fields_set
        }
        for name in ("name", "level"):
            if name in changes.model_fields_set and getattr(changes, name) is None:
                raise DomainError(
                    ErrorCode.INVALID,
                    f"invalid fields: changes.{name} cannot be empty",
                    (FieldError(path=f"changes.{name}", message="cannot be empty"),),
                )
        level = given.get("operator_level")
        if found.card_number is not None and level not in (None, found.account.operator_level):
            raise DomainError(
                ErrorCode.CONFLICT,
                "a card operator's level is its card's; it cannot be changed",
                (FieldError(path="changes.level", message="is the operator card's"),),
            )
        values = {
            name: value for name, value in given.items() if getattr(found.account, name) != value
        }
        if values:
            stored = {k: (v.value if k == "operator_level" else v) for k, v in values.items()}
            await Accounts(connection).set_details(found.account.account_id, stored)
            fields = tuple("level" if name == "operator_level" else name for name in values)
            await deps.service.emit(
                connection,
                contract.OPERATOR_CHANGED,
                OperatorChanged(
                    uscc=caller.uscc,
                    account=found.account.account,
                    fields=fields,
                    level=None if level is None else level.value,
                    by=caller.account,
                ),
                subject=caller.uscc,
            )
            await audit_change(
                deps,
                connection,
                found.account,
                "operator-changed",
                by=caller.account,
                fields=fields,
            )
        changed = await _found(repository, request.account)
    return changed.details()


@routes.serve(contract.DISABLE_OPERATOR)
async def disable_operator(request: DisableOperator, deps: AccountsRuntime) -> OperatorDetails:
    """Disable an operator: its sessions end at once and it cannot log in."""
    return await _set_status(deps, request.token, request.account, AccountStatus.DISABLED)


@routes.serve(contract.ENABLE_OPERATOR)
async def enable_operator(request: EnableOperator, deps: AccountsRuntime) -> OperatorDetails:
    """Enable a disabled operator again."""
    return await _set_status(deps, request.token, request.account, AccountStatus.ACTIVE)


@routes.serve(contract.DELETE_OPERATOR)
async def delete_operator(request: DeleteOperator, deps: AccountsRuntime) -> OperatorDetails:
    """Delete an operator: its sessions end, its history stays, its login is refused."""
    return await _set_status(deps, request.token, request.account, AccountStatus.DELETED)


_STATUS_EVENTS = {
    AccountStatus.DISABLED: (contract.OPERATOR_DISABLED, "operator-disabled"),
    AccountStatus.ACTIVE: (contract.OPERATOR_ENABLED, "operator-enabled"),
    AccountStatus.DELETED: (contract.OPERATOR_DELETED, "operator-deleted"),
}


async def _set_status(
    deps: AccountsRuntime, token: str, name: str, status: AccountStatus
) -> OperatorDetails:
    now = deps.service.clock.now()
    async with deps.service.db.transaction() as connection:
        authorized = await authorize(deps, connection, token, Action.MANAGE_OPERATORS)
        caller = authorized.account
        assert caller.uscc is not None  # MANAGE_OPERATORS acts on the caller's own enterprise
        if account_key(name) == account_key(caller.account) and status is not AccountStatus.ACTIVE:
            verb = "delete" if status is AccountStatus.DELETED else "disable"
            raise DomainError(
                ErrorCode.CONFLICT,
                f"an administrator cannot {verb} their own account",
                (FieldError(path="account", message="is your own account"),),
            )
        repository = EnterpriseOperators(connection, caller.uscc)
        found = await _found(repository, name)
        if found.account.status is not status:
            await repository.set_status(found.account.account_id, status, now)
            spec, change = _STATUS_EVENTS[status]
            await deps.service.emit(
                connection,
                spec,
                OperatorStatusChanged(
                    uscc=caller.uscc, account=found.account.account, by=caller.account
                ),
                subject=caller.uscc,
            )
            await audit_change(deps, connection, found.account, change, by=caller.account)
            if status is AccountStatus.DELETED and found.card_number is not None:
                await announce_binding(
                    deps,
                    connection,
                    found.account,
                    BoundCard(found.card_number, CardType.OPERATOR),
                    "unbound",
                    authorized.session.method,
                    by=caller.account,
                )
        account = await account_by_id(connection, found.account.account_id)
    assert account is not None
    return OperatorRecord(
        account, None if status is AccountStatus.DELETED else found.card_number
    ).details()


@routes.serve(contract.RESET_OPERATOR_PASSWORD)
async def reset_operator_password(
    request: ResetOperatorPassword, deps: AccountsRuntime
) -> OperatorDetails:
    """Give an operator a new one-time password; their sessions end, it must be changed at login."""
    async with deps.service.db.transaction() as connection:
        caller = await _admin(deps, connection, request.token)
        assert caller.uscc is not None
        await _found(EnterpriseOperators(connection, caller.uscc), request.account)
    password, kind = new_initial_password(deps)
    password_hash = await deps.passwords.hash(password)
    now = deps.service.clock.now()
    expires_at = now + timedelta(days=deps.settings.initial_password_ttl_days)
    async with deps.service.db.transaction() as connection:
        repository = EnterpriseOperators(connection, caller.uscc)
        found = await _found(repository, request.account)
        accounts_ = Accounts(connection)
        await accounts_.set_one_time_password(
            found.account.account_id, password_hash, expires_at, kind
        )
        await accounts_.revoke_sessions(found.account.account_id, now)
        await Logins(connection).clear_failures(account_key(found.account.account))
        await audit_change(deps, connection, found.account, "password-reset", by=caller.account)
        if kind == RANDOM:
            await _send_password(deps, connection, found.account, password, expires_at)
        changed = await _found(repository, request.account)
    return changed.details()
