"""Who may do what, and on what: the permission table alone, then through the handlers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from singlewindow.accounts.authorization import PERMISSIONS, Action, refusal
from singlewindow.accounts.cards import login_card
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account, AccountStatus
from singlewindow.accounts.login import logout, show_account, show_session
from singlewindow.accounts.operators import add_operator_by_card
from singlewindow.accounts.scope import scope_options, set_scope
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AddCardOperator,
    BusinessScope,
    LoginWithCard,
    Logout,
    RequiredAction,
    Role,
    ScopeOptions,
    SetScope,
    ShowAccount,
    ShowSession,
)
from singlewindow.contracts.errors import DomainError, ErrorCode

from tests.support.accounts import answer, card_admin
from tests.support.cards import CardAuthority, holder
from tests.support.handlers import staged
from tests.support.identifiers import make_account, make_uscc

USCC = "91500000MA5U7X1C69"
SCOPE = (RequiredAction.BUSINESS_SCOPE,)


def account(role: Role = Role.ADMIN, uscc: str | None = USCC) -> Account:
    return Account(
        account_id="acc_1",
        account="someone",
        role=role,
        uscc=uscc,
        enterprise_name="重庆某某贸易有限公司",
        name="李四",
        id_number="11010519491231002X",
        mobile="13900000001",
        email=None,
        password_hash="-",
        password_must_change=False,
        status=AccountStatus.ACTIVE,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


def refused_with(
    who: Account, action: Action, owed: tuple[RequiredAction, ...] = (), on: str | None = None
) -> tuple[ErrorCode, str] | None:
    found = refusal(who, owed, action, on=on)
    return None if found is None else (found.code, found.message)


def test_every_action_has_a_rule() -> None:
    assert set(PERMISSIONS) == set(Action)


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.INDIVIDUAL])
def test_only_the_administrator_declares_business_scope(role: Role) -> None:
    assert refused_with(account(role), Action.SET_SCOPE) == (
        ErrorCode.FORBIDDEN,
        "only the enterprise administrator declares business scope",
    )
    assert refused_with(account(), Action.SET_SCOPE) is None


def test_only_the_administrator_adds_operators() -> None:
    assert refused_with(account(Role.OPERATOR), Action.ADD_OPERATOR) == (
        ErrorCode.FORBIDDEN,
        "only the enterprise administrator adds operators",
    )


def test_a_session_owing_the_scope_may_declare_it_and_little_else() -> None:
    admin = account()
    assert refused_with(admin, Action.SET_SCOPE, SCOPE) is None
    assert refused_with(admin, Action.LIST_SCOPE_OPTIONS, SCOPE) is None
    assert refused_with(admin, Action.SHOW_SESSION, SCOPE) is None
    assert refused_with(admin, Action.LOGOUT, SCOPE) is None
    required = (ErrorCode.ACTION_REQUIRED, "first complete the required action: business scope")
    assert refused_with(admin, Action.SHOW_ACCOUNT, SCOPE) == required
    assert refused_with(admin, Action.ADD_OPERATOR, SCOPE) == required


def test_a_session_owing_a_password_change_may_only_look_and_leave() -> None:
    owed = (RequiredAction.CHANGE_PASSWORD, RequiredAction.BUSINESS_SCOPE)
    assert refused_with(account(), Action.SHOW_SESSION, owed) is None
    assert refused_with(account(), Action.LOGOUT, owed) is None
    assert refused_with(account(), Action.SET_SCOPE, owed) == (
        ErrorCode.ACTION_REQUIRED,
        "first complete the required action: change password",
    )


def test_an_administrator_acts_on_its_own_enterprise_only() -> None:
    admin = account()
    assert refused_with(admin, Action.SET_SCOPE, on=USCC) is None
    assert refused_with(admin, Action.ADD_OPERATOR, on="91500000MA5U7X1D6X") == (
        ErrorCode.FORBIDDEN,
        "an account acts on its own enterprise only",
    )
    assert refused_with(account(uscc=None), Action.SET_SCOPE) == (
        ErrorCode.FORBIDDEN,
        "only the enterprise administrator declares business scope",
    )


# Through the handlers


async def test_every_session_request_refuses_a_token_that_is_no_session(
    deps: AccountsRuntime,
) -> None:
    token = "A" * 43
    calls: list[Any] = [
        logout(Logout(token=token), deps),
        show_session(ShowSession(token=token), deps),
        show_account(ShowAccount(token=token), deps),
        scope_options(ScopeOptions(token=token), deps),
        set_scope(SetScope(token=token, codes=(BusinessScope.CUSTOMS_BROKER,)), deps),
    ]
    for call in calls:
        with pytest.raises(DomainError) as raised:
            await call
        assert raised.value.code is ErrorCode.UNAUTHENTICATED


async def test_an_operator_cannot_declare_business_scope(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    _card, admin = await card_admin(deps, authority, uscc=uscc)
    operator_card = authority.issue(uscc=uscc, card_type="operator", level="declaration")
    await add_operator_by_card(
        AddCardOperator.model_validate(
            await answer(deps, operator_card)
            | {"token": admin.token, "operator": holder(make_account("operator"))}
        ),
        deps,
    )
    operator = await login_card(
        LoginWithCard.model_validate(await answer(deps, operator_card)), deps
    )
    assert operator.required_actions == ()
    with pytest.raises(DomainError) as raised:
        await set_scope(SetScope(token=operator.token, codes=(BusinessScope.BONDED_ZONE,)), deps)
    assert (raised.value.code, raised.value.message) == (
        ErrorCode.FORBIDDEN,
        "only the enterprise administrator declares business scope",
    )
    options = await scope_options(ScopeOptions(token=operator.token), deps)
    assert [o.code for o in options.options if o.selected] == [BusinessScope.CUSTOMS_BROKER]


async def test_an_operator_card_of_another_enterprise_is_refused_and_audited(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)
    foreign_uscc = make_uscc()
    foreign = authority.issue(uscc=foreign_uscc, card_type="operator", level="entry")
    with pytest.raises(DomainError) as raised:
        await add_operator_by_card(
            AddCardOperator.model_validate(
                await answer(deps, foreign)
                | {"token": admin.token, "operator": holder(make_account("operator"))}
            ),
            deps,
        )
    assert (raised.value.code, raised.value.message) == (
        ErrorCode.CARD_REFUSED,
        "this card belongs to another enterprise",
    )
    [attempt] = [
        contract.AUTHENTICATION_ATTEMPTED.parse(event)
        for event in await staged(deps.service)
        if event.subject == foreign_uscc
    ]
    assert (attempt.purpose, attempt.outcome) == ("add-operator", "failed")
    assert not [e for e in await staged(deps.service) if e.type == contract.OPERATOR_ADDED.type]


async def test_an_administrator_owing_the_scope_adds_no_operator(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    _card, admin = await card_admin(deps, authority, uscc=uscc, declare_scope=False)
    card = authority.issue(uscc=uscc, card_type="operator", level="entry")
    with pytest.raises(DomainError) as raised:
        await add_operator_by_card(
            AddCardOperator.model_validate(
                await answer(deps, card)
                | {"token": admin.token, "operator": holder(make_account("operator"))}
            ),
            deps,
        )
    assert raised.value.code is ErrorCode.ACTION_REQUIRED
