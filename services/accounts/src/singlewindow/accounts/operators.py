"""Operators: accounts an enterprise's administrator adds, each bound to its own operator card."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from singlewindow.accounts.authorization import Action, authorize
from singlewindow.accounts.cards import OTHER_ENTERPRISE, Cards, audit, prove_card, refuse
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account, NewAccount
from singlewindow.accounts.enterprises import card_account_conflict, check_password
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import create_account
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AddCardOperator,
    OperatorAdded,
    OperatorView,
    Role,
)
from singlewindow.contracts.card_gateway import CardType
from singlewindow.contracts.errors import ErrorCode, FieldError
from singlewindow.contracts.identifiers import mask_id_number, mask_mobile
from singlewindow.runtime.db import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection


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
