"""Card requests, the handlers called directly: challenges expire and are spent, certificates are
valid at the service's time, a card logs in to the account it is bound to."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from singlewindow.accounts.cards import card_challenge, card_status, login_card
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.enterprises import register_admin_by_card
from singlewindow.accounts.login import login_password, show_session
from singlewindow.accounts.operators import add_operator_by_card
from singlewindow.accounts.settings import Settings
from singlewindow.accounts.tables import enterprises
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AddCardOperator,
    CardStatus,
    LoginWithCard,
    LoginWithPassword,
    RegisterCardAdmin,
    RequestCardChallenge,
    RequiredAction,
    Role,
    SessionView,
    ShowSession,
)
from singlewindow.contracts.card_gateway import OperatorLevel
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.clock import ManualClock
from sqlalchemy import select

from tests.support.accounts import PASSWORD, answer, card_admin
from tests.support.cards import Card, CardAuthority, holder
from tests.support.handlers import staged
from tests.support.identifiers import make_account, make_uscc


async def card_login(deps: AccountsRuntime, proof: dict[str, object]) -> SessionView:
    return await login_card(LoginWithCard.model_validate(proof), deps)


async def card_refusal(deps: AccountsRuntime, proof: dict[str, object]) -> str:
    with pytest.raises(DomainError) as raised:
        await card_login(deps, proof)
    assert raised.value.code is ErrorCode.CARD_REFUSED
    return raised.value.message


async def test_a_challenge_lives_for_its_configured_seconds(
    deps: AccountsRuntime, clock: ManualClock, authority: CardAuthority
) -> None:
    card, _session = await card_admin(deps, authority)
    issued = await card_challenge(RequestCardChallenge(), deps)
    assert issued.expires_at == clock.now() + timedelta(seconds=120)
    clock.advance(119)
    assert (await card_login(deps, card.answer(issued))).method == "card"


async def test_an_answer_after_the_challenge_expired_is_refused(
    deps: AccountsRuntime, clock: ManualClock, authority: CardAuthority
) -> None:
    card, _session = await card_admin(deps, authority)
    issued = await card_challenge(RequestCardChallenge(), deps)
    clock.advance(120)
    assert await card_refusal(deps, card.answer(issued)) == (
        "challenge has expired; ask for a new one"
    )
    # Spent or expired, a challenge is remembered a while, then forgotten.
    clock.advance(timedelta(minutes=11))
    await card_challenge(RequestCardChallenge(), deps)
    assert await card_refusal(deps, card.answer(issued)) == (
        "challenge is unknown; ask for a new one"
    )


async def test_an_answer_is_accepted_once(deps: AccountsRuntime, authority: CardAuthority) -> None:
    card, _session = await card_admin(deps, authority)
    proof = await answer(deps, card)
    await card_login(deps, proof)
    assert await card_refusal(deps, proof) == "challenge was already used; ask for a new one"


async def test_a_certificate_is_checked_at_the_services_time(
    deps: AccountsRuntime, clock: ManualClock, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    card = authority.issue(uscc=uscc, not_after=clock.now() + timedelta(days=1))
    request = RegisterCardAdmin.model_validate(
        await answer(deps, card) | {"admin": holder(make_account())}
    )
    await register_admin_by_card(request, deps)
    assert (await card_login(deps, await answer(deps, card))).method == "card"
    clock.advance(timedelta(days=1, seconds=1))
    assert await card_refusal(deps, await answer(deps, card)) == "certificate has expired"


async def test_an_unbound_card_is_told_to_register_or_bind(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    card = authority.issue(uscc=make_uscc())
    assert await card_refusal(deps, await answer(deps, card)) == (
        "this card is not bound to an account; register with it or bind it under My IC card"
    )


async def test_a_legal_person_card_registers_the_administrator_once(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    before = await card_status(CardStatus(uscc=uscc), deps)
    assert (before.enterprise_registered, before.has_administrator) == (False, False)
    card, session = await card_admin(deps, authority, uscc=uscc, declare_scope=False)
    assert (session.role, session.method) == (Role.ADMIN, "card")
    assert session.required_actions == (RequiredAction.BUSINESS_SCOPE,)
    second = authority.issue(uscc=uscc, holder_name="王五")
    after = await card_status(CardStatus(uscc=uscc, card_number=second.data["card_number"]), deps)
    assert (after.enterprise_registered, after.has_administrator, after.card_bound) == (
        True,
        True,
        False,
    )
    bound = await card_status(CardStatus(uscc=uscc, card_number=card.data["card_number"]), deps)
    assert bound.card_bound
    with pytest.raises(DomainError) as conflict:
        await register_admin_by_card(
            RegisterCardAdmin.model_validate(
                await answer(deps, second) | {"admin": holder(make_account())}
            ),
            deps,
        )
    assert (conflict.value.code, conflict.value.message) == (
        ErrorCode.CONFLICT,
        "enterprise already has an administrator; log in instead",
    )
    [registered] = [
        e for e in await staged(deps.service) if e.type == contract.ENTERPRISE_REGISTERED.type
    ]
    assert contract.ENTERPRISE_REGISTERED.parse(registered).via == "card"


async def test_a_certificate_without_a_card_type_registers_no_administrator(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    # An operator's card whose certificate does not say so, its data file edited to claim
    # legal-person: the certificate alone decides, and it decides nothing here.
    uscc = make_uscc()
    card = authority.issue(uscc=uscc, card_type="operator", level="entry", certify_type=False)
    claimed = card.with_data(card_type="legal-person", operator_level=None)
    with pytest.raises(DomainError) as raised:
        await register_admin_by_card(
            RegisterCardAdmin.model_validate(
                await answer(deps, claimed) | {"admin": holder(make_account())}
            ),
            deps,
        )
    assert (raised.value.code, raised.value.message) == (
        ErrorCode.CARD_REFUSED,
        "certificate does not state the card type",
    )
    status = await card_status(CardStatus(uscc=uscc), deps)
    assert (status.enterprise_registered, status.has_administrator) == (False, False)


async def test_a_card_registration_stores_no_id_number_the_certificate_does_not_vouch_for(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    card, _session = await card_admin(deps, authority)
    async with deps.service.db.reading() as connection:
        row = (
            await connection.execute(
                select(enterprises.c.legal_rep_name, enterprises.c.legal_rep_id_number).where(
                    enterprises.c.uscc == card.data["enterprise_uscc"]
                )
            )
        ).one()
    assert card.data["holder_id_number"]  # the data file says one
    assert tuple(row) == (card.data["holder_name"], None)


async def test_an_operator_card_of_the_enterprise_adds_an_operator_who_logs_in_with_it(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    _card, admin = await card_admin(deps, authority, uscc=uscc)
    card = authority.issue(uscc=uscc, card_type="operator", level="entry")
    operator = await add(deps, admin, card)
    assert (operator.role, operator.operator_level, operator.uscc) == (
        Role.OPERATOR,
        OperatorLevel.ENTRY,
        uscc,
    )
    session = await card_login(deps, await answer(deps, card))
    assert (session.account, session.operator_level) == (operator.account, OperatorLevel.ENTRY)
    with pytest.raises(DomainError) as again:
        await add(deps, admin, card)
    assert again.value.code is ErrorCode.CONFLICT


async def test_an_operator_level_the_card_does_not_say_is_refused(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    _card, admin = await card_admin(deps, authority, uscc=uscc)
    card = authority.issue(uscc=uscc, card_type="operator", level="entry")
    with pytest.raises(DomainError) as raised:
        await add(deps, admin, card, level="declaration")
    assert raised.value.code is ErrorCode.INVALID
    assert [f.path for f in raised.value.fields] == ["operator.level"]


async def add(
    deps: AccountsRuntime, admin: SessionView, card: Card, *, level: str | None = None
) -> contract.OperatorView:
    details = holder(make_account("operator")) | {"level": level}
    request = AddCardOperator.model_validate(
        await answer(deps, card) | {"token": admin.token, "operator": details}
    )
    return await add_operator_by_card(request, deps)


# Revocation


async def test_a_card_session_ends_when_its_card_is_revoked(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    card, session = await card_admin(deps, authority)
    assert (await show_session(ShowSession(token=session.token), deps)).method == "card"
    authority.revoke(card)  # a new CRL file; nothing restarts
    with pytest.raises(DomainError) as raised:
        await show_session(ShowSession(token=session.token), deps)
    assert (raised.value.code, raised.value.message) == (
        ErrorCode.UNAUTHENTICATED,
        "the card of this session has been revoked; the session has ended",
    )
    # The account itself lives on: its password still opens a session.
    password = await login_password(
        LoginWithPassword(account=session.account, password=PASSWORD), deps
    )
    assert (await show_session(ShowSession(token=password.token), deps)).method == "password"


async def test_another_cards_revocation_leaves_a_card_session_alone(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    other, _ = await card_admin(deps, authority)
    authority.revoke(other)
    assert (await show_session(ShowSession(token=session.token), deps)).method == "card"


def test_production_refuses_card_login_without_a_crl(tmp_path: Path) -> None:
    anchor = tmp_path / "card-ca.pem"
    assert "SW_ACCOUNTS_CARD_CRL" in (Settings(card_trust_anchor=anchor).startup_problem() or "")
    assert (
        Settings(card_trust_anchor=anchor, card_crl=tmp_path / "ca.crl").startup_problem() is None
    )
    assert Settings().startup_problem() is None  # no card login at all
    development = Settings(card_trust_anchor=anchor, environment="development")
    assert development.startup_problem() is None
