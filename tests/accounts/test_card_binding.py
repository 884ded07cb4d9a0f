"""My IC card, the handlers called directly: which card an account may bind, that the bound card
then logs in to it, and that unbinding takes the password and ends the card's sessions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from singlewindow.accounts.cardbinding import bind_card, show_card, unbind_card
from singlewindow.accounts.cards import login_card
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import NewAccount
from singlewindow.accounts.login import login_password, show_session
from singlewindow.accounts.operators import delete_operator
from singlewindow.accounts.scope import set_scope
from singlewindow.accounts.tables import card_bindings, create_account
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    BindCard,
    BusinessScope,
    CardBindingView,
    DeleteOperator,
    LoginWithCard,
    LoginWithPassword,
    SessionView,
    SetScope,
    ShowCardBinding,
    ShowSession,
    UnbindCard,
)
from singlewindow.contracts.card_gateway import OperatorLevel
from singlewindow.contracts.common import AccountHolder
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.clock import ManualClock

from tests.support.accounts import PASSWORD, answer, card_admin, cardless_admin
from tests.support.cards import Card, CardAuthority, holder
from tests.support.handlers import staged
from tests.support.identifiers import make_account, make_uscc


async def password_session(deps: AccountsRuntime, account: str) -> SessionView:
    return await login_password(LoginWithPassword(account=account, password=PASSWORD), deps)


async def ready_cardless_admin(deps: AccountsRuntime, uscc: str) -> SessionView:
    """A cardless administrator's password session, the business scope declared."""
    session = await password_session(deps, await cardless_admin(deps, uscc=uscc))
    await set_scope(SetScope(token=session.token, codes=(BusinessScope.CUSTOMS_BROKER,)), deps)
    return session


async def operator_session(deps: AccountsRuntime, uscc: str, level: OperatorLevel) -> SessionView:
    """A cardless operator of `uscc` at `level`, logged in with its password."""
    account = make_account("operator")
    async with deps.service.db.transaction() as connection:
        await create_account(
            connection,
            NewAccount(
                holder=AccountHolder.model_validate(holder(account)),
                role=contract.Role.OPERATOR,
                uscc=uscc,
                password_hash=await deps.passwords.hash(PASSWORD),
                password_must_change=False,
                operator_level=level,
            ),
            deps.service.clock.now(),
        )
    return await password_session(deps, account)


async def bind(deps: AccountsRuntime, session: SessionView, card: Card) -> CardBindingView:
    request = BindCard.model_validate(await answer(deps, card) | {"token": session.token})
    return await bind_card(request, deps)


async def bind_refusal(deps: AccountsRuntime, session: SessionView, card: Card) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await bind(deps, session, card)
    return raised.value


async def card_login(deps: AccountsRuntime, card: Card) -> SessionView:
    return await login_card(LoginWithCard.model_validate(await answer(deps, card)), deps)


async def unbind(deps: AccountsRuntime, session: SessionView, password: str = PASSWORD) -> Any:
    return await unbind_card(UnbindCard(token=session.token, current_password=password), deps)


async def events(deps: AccountsRuntime, spec: Any) -> list[Any]:
    return [spec.parse(e) for e in await staged(deps.service) if e.type == spec.type]


# Binding


async def test_a_cardless_administrator_binds_a_legal_person_card_and_logs_in_with_it(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    admin = await ready_cardless_admin(deps, uscc)
    nothing = await show_card(ShowCardBinding(token=admin.token), deps)
    assert (nothing.account, nothing.binding) == (admin.account, None)
    card = authority.issue(uscc=uscc)
    bound = await bind(deps, admin, card)
    assert (bound.account, bound.card_number, bound.card_type) == (
        admin.account,
        card.data["card_number"],
        "legal-person",
    )
    assert bound.certificate_serial == f"{card.serial_number:x}"
    shown = await show_card(ShowCardBinding(token=admin.token), deps)
    assert shown.binding == bound

    session = await card_login(deps, card)
    assert (session.account, session.method, session.uscc) == (admin.account, "card", uscc)

    [public] = await events(deps, contract.CARD_BOUND)
    assert public.model_dump() == {
        "uscc": uscc,
        "account": admin.account,
        "card_number": card.data["card_number"],
        "card_type": "legal-person",
    }
    [audited] = await events(deps, contract.CARD_BINDING_AUDITED)
    assert (audited.change, audited.by, audited.session_method) == (
        "bound",
        admin.account,
        "password",
    )
    attempts = [
        (a.purpose, a.outcome)
        for a in await events(deps, contract.AUTHENTICATION_ATTEMPTED)
        if a.method == "card"
    ]
    assert attempts == [("bind-card", "succeeded"), ("login", "succeeded")]


async def test_a_card_of_another_enterprise_is_refused_and_audited(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    admin = await ready_cardless_admin(deps, make_uscc())
    foreign = authority.issue(uscc=make_uscc())
    refusal = await bind_refusal(deps, admin, foreign)
    assert (refusal.code, refusal.message) == (
        ErrorCode.CARD_REFUSED,
        "this card belongs to another enterprise",
    )
    assert (await show_card(ShowCardBinding(token=admin.token), deps)).binding is None
    attempts = await events(deps, contract.AUTHENTICATION_ATTEMPTED)
    [attempt] = [a for a in attempts if a.method == "card"]
    assert (attempt.purpose, attempt.outcome, attempt.account) == (
        "bind-card",
        "failed",
        admin.account,
    )
    assert await events(deps, contract.CARD_BOUND) == []


async def test_a_card_bound_to_another_account_is_refused(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    _card, admin = await card_admin(deps, authority, uscc=uscc)
    card = authority.issue(uscc=uscc, card_type="operator", level="entry")
    first = await operator_session(deps, uscc, OperatorLevel.ENTRY)
    second = await operator_session(deps, uscc, OperatorLevel.ENTRY)
    await bind(deps, first, card)
    refusal = await bind_refusal(deps, second, card)
    assert (refusal.code, refusal.message) == (
        ErrorCode.CONFLICT,
        "this card is already bound to another account",
    )
    assert [f.path for f in refusal.fields] == ["card.card_number"]
    again = await bind_refusal(deps, first, card)
    assert again.message == "this card is already bound to your account"
    assert (await card_login(deps, card)).account == first.account
    assert admin.account != first.account


async def test_an_account_has_one_card_at_most(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    card, admin = await card_admin(deps, authority, uscc=uscc)
    another = authority.issue(uscc=uscc, holder_name="王五")
    refusal = await bind_refusal(deps, admin, another)
    assert refusal.code is ErrorCode.CONFLICT
    assert refusal.message == (
        f"this account already has card {card.data['card_number']} bound (one card per "
        "account); unbind it first: swctl card unbind"
    )


async def test_two_cards_bound_to_one_account_at_once_make_one_binding(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    admin = await ready_cardless_admin(deps, uscc)
    cards = [authority.issue(uscc=uscc, holder_name=f"法人{i}") for i in range(3)]
    requests = [
        BindCard.model_validate(await answer(deps, card) | {"token": admin.token}) for card in cards
    ]
    outcomes = await asyncio.gather(
        *(bind_card(request, deps) for request in requests), return_exceptions=True
    )
    bound = [o for o in outcomes if isinstance(o, CardBindingView)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert (len(bound), len(refused)) == (1, 2), outcomes
    assert {r.code for r in refused} == {ErrorCode.CONFLICT}
    shown = await show_card(ShowCardBinding(token=admin.token), deps)
    assert shown.binding == bound[0]


async def test_the_card_must_fit_the_account(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    admin = await ready_cardless_admin(deps, uscc)
    operator = await operator_session(deps, uscc, OperatorLevel.DECLARATION)
    operator_card = authority.issue(uscc=uscc, card_type="operator", level="declaration")
    entry_card = authority.issue(uscc=uscc, card_type="operator", level="entry")
    legal_person = authority.issue(uscc=uscc)
    cases = [
        (
            admin,
            operator_card,
            "the administrator binds a legal-person card; this is an operator card",
        ),
        (operator, legal_person, "an operator binds an operator card; this is a legal-person card"),
        (
            operator,
            entry_card,
            "this operator card is of the entry level; the operator's level is declaration",
        ),
    ]
    for session, card, message in cases:
        refusal = await bind_refusal(deps, session, card)
        assert (refusal.code, refusal.message) == (ErrorCode.CARD_REFUSED, message)
    bound = await bind(deps, operator, operator_card)
    assert (bound.card_type, bound.operator_level) == ("operator", OperatorLevel.DECLARATION)
    session = await card_login(deps, operator_card)
    assert (session.account, session.operator_level) == (
        operator.account,
        OperatorLevel.DECLARATION,
    )


async def test_binding_waits_for_the_required_actions(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    session = await password_session(deps, await cardless_admin(deps, uscc=uscc))
    refusal = await bind_refusal(deps, session, authority.issue(uscc=uscc))
    assert refusal.code is ErrorCode.ACTION_REQUIRED


# Unbinding


async def test_unbinding_needs_the_current_password_and_ends_the_cards_sessions(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    admin = await ready_cardless_admin(deps, uscc)
    card = authority.issue(uscc=uscc)
    await bind(deps, admin, card)
    card_session = await card_login(deps, card)

    with pytest.raises(DomainError) as wrong:
        await unbind(deps, admin, "not-the-password")
    assert (wrong.value.code, wrong.value.message) == (
        ErrorCode.UNAUTHENTICATED,
        "the current password is incorrect",
    )
    assert [f.path for f in wrong.value.fields] == ["current_password"]
    assert (await show_session(ShowSession(token=card_session.token), deps)).method == "card"

    unbound = await unbind(deps, admin)
    assert (unbound.card_number, unbound.sessions_ended, unbound.this_session_ended) == (
        card.data["card_number"],
        1,
        False,
    )
    with pytest.raises(DomainError) as ended:
        await show_session(ShowSession(token=card_session.token), deps)
    assert ended.value.code is ErrorCode.UNAUTHENTICATED
    assert (await show_session(ShowSession(token=admin.token), deps)).method == "password"
    assert (await show_card(ShowCardBinding(token=admin.token), deps)).binding is None
    with pytest.raises(DomainError) as not_bound:
        await card_login(deps, card)
    assert not_bound.value.message.startswith("this card is not bound to an account")

    # Bound again, the card opens new sessions; the old one stays ended.
    await bind(deps, admin, card)
    assert (await card_login(deps, card)).account == admin.account
    with pytest.raises(DomainError):
        await show_session(ShowSession(token=card_session.token), deps)

    [public] = await events(deps, contract.CARD_UNBOUND)
    assert (public.account, public.card_number) == (admin.account, card.data["card_number"])
    changes = [
        (a.change, a.sessions_ended) for a in await events(deps, contract.CARD_BINDING_AUDITED)
    ]
    assert changes == [("bound", 0), ("unbound", 1), ("bound", 0)]
    passwords = [
        (a.purpose, a.outcome)
        for a in await events(deps, contract.AUTHENTICATION_ATTEMPTED)
        if a.purpose == "unbind-card"
    ]
    assert passwords == [("unbind-card", "failed"), ("unbind-card", "succeeded")]


async def test_a_card_session_unbinding_its_own_card_ends_itself(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    card, _registered = await card_admin(deps, authority)
    session = await card_login(deps, card)
    unbound = await unbind(deps, session)
    assert (unbound.sessions_ended, unbound.this_session_ended) == (2, True)
    with pytest.raises(DomainError) as ended:
        await show_session(ShowSession(token=session.token), deps)
    assert ended.value.code is ErrorCode.UNAUTHENTICATED
    # The card-registered administrator keeps its password.
    assert (await password_session(deps, session.account)).method == "password"


async def test_unbinding_without_a_card_says_so(deps: AccountsRuntime) -> None:
    admin = await ready_cardless_admin(deps, make_uscc())
    with pytest.raises(DomainError) as raised:
        await unbind(deps, admin)
    assert (raised.value.code, raised.value.message) == (
        ErrorCode.NOT_FOUND,
        "no card is bound to this account",
    )


async def test_wrong_passwords_to_unbind_are_throttled_like_logins(
    deps: AccountsRuntime, authority: CardAuthority, clock: ManualClock
) -> None:
    _card, admin = await card_admin(deps, authority)
    for _attempt in range(4):  # three free failures, the fourth starts a delay
        with pytest.raises(DomainError) as wrong:
            await unbind(deps, admin, "not-the-password")
        assert wrong.value.code is ErrorCode.UNAUTHENTICATED
    with pytest.raises(DomainError) as throttled:
        await unbind(deps, admin)
    assert throttled.value.code is ErrorCode.THROTTLED
    # The same name's password logins wait too.
    with pytest.raises(DomainError) as login:
        await password_session(deps, admin.account)
    assert login.value.code is ErrorCode.THROTTLED
    clock.advance(2)
    assert (await unbind(deps, admin)).sessions_ended == 1


async def test_a_card_session_ends_once_its_binding_is_gone_even_unrevoked(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    # Unbinding revokes the card's sessions; authorization also ends any card session whose card
    # is no longer bound to its account, whatever removed the binding.
    card, _registered = await card_admin(deps, authority)
    session = await card_login(deps, card)
    async with deps.service.db.transaction() as connection:
        await connection.execute(
            card_bindings.delete().where(card_bindings.c.card_number == card.data["card_number"])
        )
    with pytest.raises(DomainError) as ended:
        await show_session(ShowSession(token=session.token), deps)
    assert ended.value.code is ErrorCode.UNAUTHENTICATED


async def test_deleting_a_card_bound_operator_frees_its_card_and_says_so(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    admin = await ready_cardless_admin(deps, uscc)
    operator = await operator_session(deps, uscc, OperatorLevel.ENTRY)
    card = authority.issue(uscc=uscc, card_type="operator", level="entry")
    await bind(deps, operator, card)

    await delete_operator(DeleteOperator(token=admin.token, account=operator.account), deps)

    unbound = await events(deps, contract.CARD_UNBOUND)
    assert [(e.account, e.card_number) for e in unbound] == [
        (operator.account, card.data["card_number"])
    ]
    audited = await events(deps, contract.CARD_BINDING_AUDITED)
    assert (audited[-1].change, audited[-1].by) == ("unbound", admin.account)
    async with deps.service.db.reading() as connection:
        rows = (await connection.execute(card_bindings.select())).all()
    assert rows == []
