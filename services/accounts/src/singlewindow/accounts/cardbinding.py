"""My IC card: an enterprise account binds a card of its own, shows it, and unbinds it.

Binding takes the card's answer to a fresh challenge, checked as at card login (`prove_card`:
the chain to the trusted CA, validity, revocation, the signature, the card data against its
certificate). Then the card must be the account's enterprise's, of the account's kind (a
legal-person card for the administrator; an operator card at the operator's own level for an
operator) and bound to no account; and the account must have no card yet: one card per account
(the `one_card_per_account` index settles two binds racing for one account). From then on
`swctl login --card` opens that account, and only that one.

Unbinding takes the account's current password, verified under the same throttle as a password
login of that name. It ends the binding and revokes every session opened with the card, so a card
bound again later does not bring its old sessions back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

import structlog
from singlewindow.accounts.authorization import Action, authorize
from singlewindow.accounts.cards import OTHER_ENTERPRISE, Cards, audit, prove_card, refuse
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account
from singlewindow.accounts.login import Logins
from singlewindow.accounts.reauth import audit_check, confirm_password
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import card_bindings, sessions
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    BindCard,
    CardBindingAudited,
    CardBindingChanged,
    CardBindingView,
    CardUnbound,
    MyCard,
    Role,
    ShowCardBinding,
    UnbindCard,
)
from singlewindow.contracts.card_gateway import CardData, CardType
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.runtime.db import IntegrityError, as_utc
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.cardbinding")

BIND = "bind-card"
UNBIND = "unbind-card"
BOUND_HERE = "this card is already bound to your account"
BOUND_ELSEWHERE = "this card is already bound to another account"
NO_CARD = "no card is bound to this account"


@dataclass(frozen=True)
class Binding:
    """A card binding as stored."""

    card_number: str
    account_id: str
    card_type: CardType
    certificate_serial: int
    bound_at: datetime
    not_before: datetime | None
    not_after: datetime | None


class Bindings:
    """Card bindings by account, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def of_account(self, account_id: str) -> Binding | None:
        """The card bound to an account, if one is."""
        row = (
            (await self.connection.execute(_OF_ACCOUNT, {"account_id": account_id}))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return Binding(
            card_number=row["card_number"],
            account_id=row["account_id"],
            card_type=CardType(row["card_type"]),
            certificate_serial=int(row["certificate_serial"]),
            bound_at=as_utc(row["bound_at"]),
            not_before=None if row["not_before"] is None else as_utc(row["not_before"]),
            not_after=None if row["not_after"] is None else as_utc(row["not_after"]),
        )

    async def unbind(self, card_number: str, account_id: str, now: datetime) -> int | None:
        """End the binding and revoke the sessions opened with the card: how many (None: the
        card was no longer bound to the account)."""
        deleted = await self.connection.execute(
            _UNBIND, {"card_number": card_number, "account_id": account_id}
        )
        if deleted.rowcount != 1:
            return None
        revoked = await self.connection.execute(
            _REVOKE_CARD_SESSIONS, {"card": card_number, "owner": account_id, "now": now}
        )
        return int(revoked.rowcount)


_OF_ACCOUNT = select(card_bindings).where(card_bindings.c.account_id == bindparam("account_id"))
_UNBIND = card_bindings.delete().where(
    card_bindings.c.card_number == bindparam("card_number"),
    card_bindings.c.account_id == bindparam("account_id"),
)
_REVOKE_CARD_SESSIONS = (
    update(sessions)
    .where(
        sessions.c.account_id == bindparam("owner"),
        sessions.c.card_number == bindparam("card"),
        sessions.c.revoked_at.is_(None),
    )
    .values(revoked_at=bindparam("now"))
)


def card_kind_problem(account: Account, card: CardData) -> str | None:
    """Why this kind of card does not fit this account, if it does not."""
    if account.role is Role.ADMIN:
        if card.card_type is not CardType.LEGAL_PERSON:
            return "the administrator binds a legal-person card; this is an operator card"
        return None
    if card.card_type is not CardType.OPERATOR or card.operator_level is None:
        return "an operator binds an operator card; this is a legal-person card"
    if card.operator_level is not account.operator_level:
        level = account.operator_level.value if account.operator_level else "unknown"
        return (
            f"this operator card is of the {card.operator_level.value} level; "
            f"the operator's level is {level}"
        )
    return None


async def binding_conflict(
    connection: AsyncConnection, account: Account, card: CardData
) -> DomainError | None:
    """Which binding rule binding `card` to `account` would break, if any."""
    bound = await Cards(connection).bound_account(card.card_number)
    if bound is not None:
        message = BOUND_HERE if bound.account_id == account.account_id else BOUND_ELSEWHERE
        return DomainError(
            ErrorCode.CONFLICT,
            message,
            (FieldError(path="card.card_number", message="already bound"),),
        )
    existing = await Bindings(connection).of_account(account.account_id)
    if existing is not None:
        return DomainError(
            ErrorCode.CONFLICT,
            f"this account already has card {existing.card_number} bound (one card per "
            "account); unbind it first: swctl card unbind",
            (FieldError(path="account", message="already has a card bound"),),
        )
    return None


@routes.serve(contract.CARD_BIND)
async def bind_card(request: BindCard, deps: AccountsRuntime) -> CardBindingView:
    """Bind a card of the account's own enterprise and kind to the session's account."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize(deps, connection, request.token, Action.BIND_CARD)
    account = caller.account
    proven = await prove_card(deps, request, BIND)
    card = proven.card
    refused = partial(refuse, deps, card=card, purpose=BIND, account=account.account)
    if card.enterprise_uscc != account.uscc:
        await refused(OTHER_ENTERPRISE)
    problem = card_kind_problem(account, card)
    if problem is not None:
        await refused(problem)
    async with deps.service.db.reading() as connection:
        conflict = await binding_conflict(connection, account, card)
    if conflict is not None:
        await refused(conflict.message, conflict.code, conflict.fields)
    now = deps.service.clock.now()
    try:
        async with deps.service.db.transaction() as connection:
            await Cards(connection).bind(
                card.card_number, account.account_id, card.card_type, proven.certificate, now
            )
            await announce_binding(deps, connection, account, card, "bound", caller.session.method)
            await audit(deps, connection, card, BIND, "succeeded", None, account=account.account)
    except IntegrityError:
        # A concurrent bind of this card, or to this account, committed first: say which.
        async with deps.service.db.reading() as connection:
            conflict = await binding_conflict(connection, account, card)
        if conflict is None:
            raise
        await refused(conflict.message, conflict.code, conflict.fields)
    log.info("card bound", account=account.account, card_number=card.card_number)
    certificate = proven.certificate
    return CardBindingView(
        account=account.account,
        card_number=card.card_number,
        card_type=card.card_type,
        operator_level=card.operator_level,
        bound_at=now,
        certificate_serial=f"{certificate.serial_number:x}",
        certificate_not_before=certificate.not_before,
        certificate_not_after=certificate.not_after,
    )


@routes.serve(contract.CARD_UNBIND)
async def unbind_card(request: UnbindCard, deps: AccountsRuntime) -> CardUnbound:
    """Unbind the account's card (current password required); its sessions end with it."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize(deps, connection, request.token, Action.UNBIND_CARD)
        binding = await Bindings(connection).of_account(caller.account.account_id)
    account = caller.account
    if binding is None:
        raise DomainError(ErrorCode.NOT_FOUND, NO_CARD)
    key = await confirm_password(deps, account, request.current_password, UNBIND)
    now = deps.service.clock.now()
    async with deps.service.db.transaction() as connection:
        await Logins(connection).clear_failures(key)
        ended = await Bindings(connection).unbind(binding.card_number, account.account_id, now)
        if ended is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"{NO_CARD} (it was unbound meanwhile)")
        await audit_check(deps, connection, account, UNBIND, "succeeded", None)
        card = BoundCard(binding.card_number, binding.card_type)
        await announce_binding(
            deps, connection, account, card, "unbound", caller.session.method, ended=ended
        )
    log.info("card unbound", account=account.account, card_number=binding.card_number)
    this_session = caller.session.card_number == binding.card_number
    return CardUnbound(
        account=account.account,
        card_number=binding.card_number,
        sessions_ended=ended,
        this_session_ended=this_session,
    )


@routes.serve(contract.CARD_SHOW)
async def show_card(request: ShowCardBinding, deps: AccountsRuntime) -> MyCard:
    """Show the card bound to the session's own account, or that none is."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize(deps, connection, request.token, Action.SHOW_CARD)
        binding = await Bindings(connection).of_account(caller.account.account_id)
    account = caller.account
    if binding is None:
        return MyCard(account=account.account, binding=None)
    return MyCard(
        account=account.account,
        binding=CardBindingView(
            account=account.account,
            card_number=binding.card_number,
            card_type=binding.card_type,
            operator_level=account.operator_level
            if binding.card_type is CardType.OPERATOR
            else None,
            bound_at=binding.bound_at,
            certificate_serial=f"{binding.certificate_serial:x}",
            certificate_not_before=binding.not_before,
            certificate_not_after=binding.not_after,
        ),
    )


@dataclass(frozen=True)
class BoundCard:
    card_number: str
    card_type: CardType


async def announce_binding(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    account: Account,
    card: CardData | BoundCard,
    change: str,
    session_method: str,
    *,
    ended: int = 0,
    by: str | None = None,
) -> None:
    """The public event of a binding's change and its audit record, in the caller's transaction;
    `by` is who changed it when that is not the account itself (an administrator)."""
    assert account.uscc is not None  # only enterprise accounts bind cards
    public = contract.CARD_BOUND if change == "bound" else contract.CARD_UNBOUND
    await deps.service.emit(
        connection,
        public,
        CardBindingChanged(
            uscc=account.uscc,
            account=account.account,
            card_number=card.card_number,
            card_type=card.card_type.value,
        ),
        subject=account.uscc,
    )
    await deps.service.emit(
        connection,
        contract.CARD_BINDING_AUDITED,
        CardBindingAudited(
            uscc=account.uscc,
            account=account.account,
            change=change,
            card_number=card.card_number,
            card_type=card.card_type.value,
            by=by or account.account,
            session_method=session_method,
            sessions_ended=ended,
        ),
        subject=account.uscc,
    )
