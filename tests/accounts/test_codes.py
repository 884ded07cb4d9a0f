"""One-time codes, the handlers called directly: mobile change and individual activation, the
code's expiry by the clock, single use, tries and the issuing throttle, and where codes go."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from singlewindow.accounts.authorization import PERMISSIONS, Action
from singlewindow.accounts.authorization import refusal as refusal_of
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account, AccountStatus
from singlewindow.accounts.individuals import activate_individual, register_individual
from singlewindow.accounts.login import login_password, show_account
from singlewindow.accounts.mobile import change_mobile, verify_mobile
from singlewindow.accounts.scope import scope_options, set_scope
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    ActivateIndividual,
    BusinessScope,
    ChangeMobile,
    LoginWithPassword,
    RegisterIndividual,
    Role,
    ScopeOptions,
    SessionView,
    SetScope,
    ShowAccount,
    VerifyMobile,
)
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.clock import ManualClock

from tests.support.accounts import PASSWORD, cardless_admin
from tests.support.cards import holder
from tests.support.handlers import staged
from tests.support.identifiers import make_account

NEW_MOBILE = "13800138000"
INDIVIDUAL = Account(
    account_id="acc_1",
    account="someone",
    role=Role.INDIVIDUAL,
    uscc=None,
    enterprise_name=None,
    name="李四",
    id_number="11010519491231002X",
    mobile="13900000001",
    email=None,
    password_hash="-",
    password_must_change=False,
    status=AccountStatus.ACTIVE,
    created_at=datetime(2026, 12, 1, tzinfo=UTC),
)


async def messages(deps: AccountsRuntime) -> list[Any]:
    return [
        contract.MESSAGE_REQUESTED.parse(event)
        for event in await staged(deps.service)
        if event.type == contract.MESSAGE_REQUESTED.type
    ]


async def last_code(deps: AccountsRuntime, to: str) -> str:
    [*_, message] = [m for m in await messages(deps) if m.to == to]
    found = re.search(r"\b([0-9]{6})\b", message.text)
    assert found is not None
    return found.group(1)


async def code_attempts(deps: AccountsRuntime) -> list[tuple[str, str | None, str | None]]:
    return [
        (attempt.outcome, attempt.purpose, attempt.reason)
        for attempt in (
            contract.AUTHENTICATION_ATTEMPTED.parse(event)
            for event in await staged(deps.service)
            if event.type == contract.AUTHENTICATION_ATTEMPTED.type
        )
        if attempt.method == "one-time-code"
    ]


async def admin_session(deps: AccountsRuntime) -> SessionView:
    account = await cardless_admin(deps)
    session = await login_password(LoginWithPassword(account=account, password=PASSWORD), deps)
    await set_scope(SetScope(token=session.token, codes=(BusinessScope.CUSTOMS_BROKER,)), deps)
    return session


async def refusal(call: Any) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await call
    return raised.value


def a_different_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# Mobile change


async def test_the_code_sent_to_the_new_number_changes_the_accounts_mobile(
    deps: AccountsRuntime,
) -> None:
    session = await admin_session(deps)
    sent = await change_mobile(ChangeMobile(token=session.token, mobile=NEW_MOBILE), deps)
    assert (sent.to_masked, sent.tries) == ("138****8000", 5)
    [message] = await messages(deps)
    assert (message.to, message.kind) == (NEW_MOBILE, "mobile_change")

    code = await last_code(deps, NEW_MOBILE)
    shown = await verify_mobile(VerifyMobile(token=session.token, code=code), deps)
    assert shown.mobile_masked == "138****8000"
    assert await code_attempts(deps) == [("succeeded", "mobile_change", None)]
    [changed] = [e for e in await staged(deps.service) if e.type == contract.MOBILE_CHANGED.type]
    assert changed.data["mobile_masked"] == "138****8000"


async def test_a_used_code_is_refused_the_second_time(deps: AccountsRuntime) -> None:
    session = await admin_session(deps)
    await change_mobile(ChangeMobile(token=session.token, mobile=NEW_MOBILE), deps)
    code = await last_code(deps, NEW_MOBILE)
    await verify_mobile(VerifyMobile(token=session.token, code=code), deps)
    again = await refusal(verify_mobile(VerifyMobile(token=session.token, code=code), deps))
    assert (again.code, again.message) == (
        ErrorCode.INVALID,
        "this code was already used; ask for a new one",
    )
    assert again.fields[0].path == "code"


async def test_a_code_expires_by_the_clock(deps: AccountsRuntime, clock: ManualClock) -> None:
    session = await admin_session(deps)
    await change_mobile(ChangeMobile(token=session.token, mobile=NEW_MOBILE), deps)
    code = await last_code(deps, NEW_MOBILE)
    clock.advance(300)
    expired = await refusal(verify_mobile(VerifyMobile(token=session.token, code=code), deps))
    assert expired.message == "the code has expired; ask for a new one"
    shown = await show_account(ShowAccount(token=session.token), deps)
    assert shown.mobile_masked == "139****0001"
    assert await code_attempts(deps) == [
        ("failed", "mobile_change", "the code has expired; ask for a new one")
    ]


async def test_a_wrong_code_says_the_tries_left_and_the_last_try_kills_the_code(
    deps: AccountsRuntime,
) -> None:
    session = await admin_session(deps)
    await change_mobile(ChangeMobile(token=session.token, mobile=NEW_MOBILE), deps)
    code = await last_code(deps, NEW_MOBILE)
    wrong = VerifyMobile(token=session.token, code=a_different_code(code))
    said = [(await refusal(verify_mobile(wrong, deps))).message for _ in range(5)]
    assert said == [
        "wrong code; 4 tries left",
        "wrong code; 3 tries left",
        "wrong code; 2 tries left",
        "wrong code; 1 try left",
        "wrong code; no tries left, ask for a new one",
    ]
    # Even the right code is refused now.
    dead = await refusal(verify_mobile(VerifyMobile(token=session.token, code=code), deps))
    assert dead.message == "no tries left for this code; ask for a new one"
    assert len(await code_attempts(deps)) == 6


async def test_a_new_code_voids_the_previous_one(deps: AccountsRuntime, clock: ManualClock) -> None:
    session = await admin_session(deps)
    await change_mobile(ChangeMobile(token=session.token, mobile=NEW_MOBILE), deps)
    first = await last_code(deps, NEW_MOBILE)
    clock.advance(60)
    await change_mobile(ChangeMobile(token=session.token, mobile=NEW_MOBILE), deps)
    second = await last_code(deps, NEW_MOBILE)
    if first != second:
        old = await refusal(verify_mobile(VerifyMobile(token=session.token, code=first), deps))
        assert old.message.startswith("wrong code")
    await verify_mobile(VerifyMobile(token=session.token, code=second), deps)


async def test_issuing_is_throttled_per_account_one_a_minute_and_five_an_hour(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    session = await admin_session(deps)
    numbers = [f"1380013800{n}" for n in range(7)]
    await change_mobile(ChangeMobile(token=session.token, mobile=numbers[0]), deps)
    soon = await refusal(change_mobile(ChangeMobile(token=session.token, mobile=numbers[1]), deps))
    assert (soon.code, soon.message) == (
        ErrorCode.THROTTLED,
        "a code was sent to this account just now; ask for a new code in 60 seconds",
    )
    for number in numbers[1:5]:
        clock.advance(60)
        await change_mobile(ChangeMobile(token=session.token, mobile=number), deps)
    clock.advance(60)
    hourly = await refusal(
        change_mobile(ChangeMobile(token=session.token, mobile=numbers[5]), deps)
    )
    assert hourly.message == (
        "5 codes were sent to this account within the hour; ask for a new code in 3300 seconds"
    )
    clock.advance(3300)
    # The session idled out meanwhile: a new one, the same account.
    login = LoginWithPassword(account=session.account, password=PASSWORD)
    session = await login_password(login, deps)
    await change_mobile(ChangeMobile(token=session.token, mobile=numbers[5]), deps)


async def test_issuing_is_throttled_per_number_across_accounts(deps: AccountsRuntime) -> None:
    first, second = await admin_session(deps), await admin_session(deps)
    await change_mobile(ChangeMobile(token=first.token, mobile=NEW_MOBILE), deps)
    refused = await refusal(
        change_mobile(ChangeMobile(token=second.token, mobile=NEW_MOBILE), deps)
    )
    assert refused.message.startswith("a code was sent to this number just now")


async def test_the_current_number_and_an_invalid_one_are_refused_by_field(
    deps: AccountsRuntime,
) -> None:
    session = await admin_session(deps)
    same = await refusal(
        change_mobile(ChangeMobile(token=session.token, mobile="13900000001"), deps)
    )
    assert (same.code, same.fields[0].path) == (ErrorCode.INVALID, "mobile")
    with pytest.raises(ValueError, match="mobile"):
        ChangeMobile(token=session.token, mobile="12345")


async def test_no_code_reaches_a_stored_event_but_the_message(deps: AccountsRuntime) -> None:
    session = await admin_session(deps)
    await change_mobile(ChangeMobile(token=session.token, mobile=NEW_MOBILE), deps)
    code = await last_code(deps, NEW_MOBILE)
    await refusal(
        verify_mobile(VerifyMobile(token=session.token, code=a_different_code(code)), deps)
    )
    await verify_mobile(VerifyMobile(token=session.token, code=code), deps)
    carrying = [e.type for e in await staged(deps.service) if code in e.model_dump_json()]
    assert carrying == [contract.MESSAGE_REQUESTED.type]
    assert contract.MESSAGE_REQUESTED.subject.startswith("sw.notify.")


# Individual users


def person(account: str) -> dict[str, Any]:
    return holder(account) | {"mobile": "13700137000"}


async def test_an_individual_registers_activates_with_the_code_and_logs_in(
    deps: AccountsRuntime,
) -> None:
    name = make_account("person")
    sent = await register_individual(RegisterIndividual.model_validate(person(name)), deps)
    assert (sent.account, sent.purpose.value) == (name, "individual_activation")
    pending = await refusal(
        login_password(LoginWithPassword(account=name, password=PASSWORD), deps)
    )
    assert pending.code is ErrorCode.FORBIDDEN

    code = await last_code(deps, "13700137000")
    activated = await activate_individual(ActivateIndividual(account=name, code=code), deps)
    assert (activated.role, activated.status) == (Role.INDIVIDUAL, "active")
    session = await login_password(LoginWithPassword(account=name, password=PASSWORD), deps)
    assert (session.role, session.uscc, session.required_actions) == (Role.INDIVIDUAL, None, ())
    shown = await show_account(ShowAccount(token=session.token), deps)
    assert (shown.role, shown.enterprise_name) == (Role.INDIVIDUAL, None)

    [registered] = [
        e for e in await staged(deps.service) if e.type == contract.INDIVIDUAL_REGISTERED.type
    ]
    assert registered.data["id_number_masked"] != "11010519491231002X"
    assert "11010519491231002X" not in registered.model_dump_json()
    again = await refusal(activate_individual(ActivateIndividual(account=name, code=code), deps))
    assert again.code is ErrorCode.CONFLICT


async def test_an_individual_is_refused_every_enterprise_request(deps: AccountsRuntime) -> None:
    name = make_account("person")
    await register_individual(RegisterIndividual.model_validate(person(name)), deps)
    code = await last_code(deps, "13700137000")
    await activate_individual(ActivateIndividual(account=name, code=code), deps)
    session = await login_password(LoginWithPassword(account=name, password=PASSWORD), deps)
    options = await refusal(scope_options(ScopeOptions(token=session.token), deps))
    assert options.code is ErrorCode.FORBIDDEN


async def test_an_account_name_is_unique_across_kinds_of_account(deps: AccountsRuntime) -> None:
    admin = await cardless_admin(deps)
    taken = await refusal(
        register_individual(RegisterIndividual.model_validate(person(admin)), deps)
    )
    assert (taken.code, taken.fields[0].path) == (ErrorCode.CONFLICT, "account")


async def test_a_lapsed_pending_registration_frees_its_name(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    name = make_account("person")
    request = RegisterIndividual.model_validate(person(name))
    await register_individual(request, deps)
    clock.advance(60)
    held = await refusal(register_individual(request, deps))
    assert held.code is ErrorCode.CONFLICT
    assert "waiting for its activation code" in held.message
    clock.advance(300)
    await register_individual(request, deps)
    code = await last_code(deps, "13700137000")
    await activate_individual(ActivateIndividual(account=name, code=code), deps)


async def test_of_two_attempts_with_the_right_code_at_once_one_succeeds(
    deps: AccountsRuntime,
) -> None:
    session = await admin_session(deps)
    await change_mobile(ChangeMobile(token=session.token, mobile=NEW_MOBILE), deps)
    verify = VerifyMobile(token=session.token, code=await last_code(deps, NEW_MOBILE))
    outcomes = await asyncio.gather(
        verify_mobile(verify, deps), verify_mobile(verify, deps), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(refused) == 1
    assert refused[0].message == "this code was already used; ask for a new one"


async def test_a_wrong_activation_code_is_audited_and_leaves_the_account_pending(
    deps: AccountsRuntime,
) -> None:
    name = make_account("person")
    await register_individual(RegisterIndividual.model_validate(person(name)), deps)
    code = await last_code(deps, "13700137000")
    wrong = await refusal(
        activate_individual(ActivateIndividual(account=name, code=a_different_code(code)), deps)
    )
    assert wrong.message == "wrong code; 4 tries left"
    assert await code_attempts(deps) == [
        ("failed", "individual_activation", "wrong code; 4 tries left")
    ]
    unknown = await refusal(
        activate_individual(ActivateIndividual(account="nobody_here", code=code), deps)
    )
    assert unknown.code is ErrorCode.NOT_FOUND


# Who may


@pytest.mark.parametrize("role", list(Role))
def test_every_role_may_change_its_own_mobile(role: Role) -> None:
    who = replace(INDIVIDUAL, role=role, uscc=None if role is Role.INDIVIDUAL else "uscc")
    assert refusal_of(who, (), Action.CHANGE_MOBILE) is None


def test_an_individual_may_take_no_enterprise_action() -> None:
    enterprise_only = [
        action for action, rule in PERMISSIONS.items() if Role.INDIVIDUAL not in rule.roles
    ]
    assert {Action.LIST_SCOPE_OPTIONS, Action.SET_SCOPE, Action.ADD_OPERATOR} <= set(
        enterprise_only
    )
    for action in enterprise_only:
        refused = refusal_of(INDIVIDUAL, (), action)
        assert refused is not None
        assert refused.code is ErrorCode.FORBIDDEN
