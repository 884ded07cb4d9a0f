"""Cardless operators and account self-service, the handlers called directly: the one-time
password changed first and expiring by the clock, tenant isolation, no self-disable, sessions
ended on disable, delete and password change, and the events each change leaves."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import INCORRECT_CREDENTIALS
from singlewindow.accounts.login import login_password, show_account, show_session
from singlewindow.accounts.operators import (
    add_operator,
    delete_operator,
    disable_operator,
    enable_operator,
    list_operators,
    reset_operator_password,
    show_operator,
    update_operator,
)
from singlewindow.accounts.scope import set_scope
from singlewindow.accounts.selfservice import change_password, update_account
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AddOperator,
    BusinessScope,
    ChangePassword,
    DeleteOperator,
    DisableOperator,
    EnableOperator,
    ListOperators,
    LoginWithPassword,
    OperatorDetails,
    RequiredAction,
    ResetOperatorPassword,
    SessionView,
    SetScope,
    ShowAccount,
    ShowOperator,
    ShowSession,
    UpdateAccount,
    UpdateOperator,
)
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.clock import ManualClock
from singlewindow.runtime.passwords import PasswordHashing

from tests.support.accounts import CHEAP_ARGON2, PASSWORD, accounts_runtime, cardless_admin
from tests.support.cards import CardAuthority
from tests.support.handlers import staged
from tests.support.identifiers import make_account

DEFAULT = "88888888"
OPERATOR_PASSWORD = "Operator-Own-Passphrase-7"


def operator(account: str | None = None, **fields: Any) -> dict[str, Any]:
    """A cardless operator's details, as `examples/operator.json` has them."""
    return {
        "account": account or make_account("op"),
        "name": "王五",
        "id_type": "resident_id",
        "id_number": "11010519491231002X",
        "mobile": "13700000002",
        "email": "wangwu@example.com",
        "level": "entry",
        **fields,
    }


async def login(deps: AccountsRuntime, account: str, password: str) -> SessionView:
    return await login_password(LoginWithPassword(account=account, password=password), deps)


async def admin(deps: AccountsRuntime) -> SessionView:
    """A cardless enterprise's administrator, business scope declared."""
    session = await login(deps, await cardless_admin(deps), PASSWORD)
    await set_scope(SetScope(token=session.token, codes=(BusinessScope.CUSTOMS_BROKER,)), deps)
    return session


async def add(deps: AccountsRuntime, session: SessionView, **fields: Any) -> OperatorDetails:
    request = AddOperator.model_validate({"token": session.token, "operator": operator(**fields)})
    return await add_operator(request, deps)


async def refusal(call: Any) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await call
    return raised.value


async def working_operator(deps: AccountsRuntime, session: SessionView) -> SessionView:
    """An operator added by `session`'s admin, its one-time password changed."""
    added = await add(deps, session)
    first = await login(deps, added.account, DEFAULT)
    return await change_password(
        ChangePassword(token=first.token, current_password=DEFAULT, new_password=OPERATOR_PASSWORD),
        deps,
    )


async def test_an_operator_logs_in_with_88888888_and_must_change_it_before_anything_else(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    boss = await admin(deps)
    added = await add(deps, boss)
    assert (added.status, added.operator_level, added.initial_password) == (
        "active",
        "entry",
        "default",
    )
    assert added.password_must_change
    assert added.password_expires_at == clock.now() + timedelta(days=7)

    first = await login(deps, added.account, DEFAULT)
    assert first.required_actions == (RequiredAction.CHANGE_PASSWORD,)
    assert (first.role, first.uscc, first.operator_level) == ("operator", boss.uscc, "entry")
    owed = await refusal(show_account(ShowAccount(token=first.token), deps))
    assert owed.code is ErrorCode.ACTION_REQUIRED
    assert owed.message == "first complete the required action: change password"
    assert (await show_session(ShowSession(token=first.token), deps)).account == added.account

    weak = await refusal(
        change_password(
            ChangePassword(token=first.token, current_password=DEFAULT, new_password="password1"),
            deps,
        )
    )
    assert (weak.code, weak.fields[0].path) == (ErrorCode.INVALID, "new_password")
    changed = await change_password(
        ChangePassword(token=first.token, current_password=DEFAULT, new_password=OPERATOR_PASSWORD),
        deps,
    )
    assert changed.required_actions == ()
    assert changed.token == first.token  # the session that changed it goes on
    shown = await show_account(ShowAccount(token=first.token), deps)
    assert (shown.account, shown.role) == (added.account, "operator")
    # The one-time password is spent.
    spent = await refusal(login(deps, added.account, DEFAULT))
    assert (spent.code, spent.message) == (ErrorCode.UNAUTHENTICATED, INCORRECT_CREDENTIALS)
    assert (await login(deps, added.account, OPERATOR_PASSWORD)).required_actions == ()

    events = await staged(deps.service)
    [announced] = [e for e in events if e.type == contract.OPERATOR_ADDED.type]
    data = contract.OPERATOR_ADDED.parse(announced)
    assert (data.account, data.via, data.level, data.added_by, data.card_number) == (
        added.account,
        "password",
        "entry",
        boss.account,
        None,
    )
    changes = [
        (c.account, c.change, c.by)
        for c in (
            contract.ACCOUNT_CHANGED.parse(e)
            for e in events
            if e.type == contract.ACCOUNT_CHANGED.type
        )
    ]
    assert changes == [
        (added.account, "operator-added", boss.account),
        (added.account, "password-changed", added.account),
    ]
    everything = json.dumps([e.model_dump(mode="json") for e in events])
    for secret in (DEFAULT, OPERATOR_PASSWORD, "11010519491231002X"):
        assert secret not in everything


async def test_an_operator_is_refused_every_administrator_command(deps: AccountsRuntime) -> None:
    boss = await admin(deps)
    mine = await working_operator(deps, boss)
    other = await add(deps, boss)
    token = mine.token
    for call in (
        add_operator(AddOperator.model_validate({"token": token, "operator": operator()}), deps),
        list_operators(ListOperators(token=token), deps),
        show_operator(ShowOperator(token=token, account=other.account), deps),
        disable_operator(DisableOperator(token=token, account=other.account), deps),
        delete_operator(DeleteOperator(token=token, account=other.account), deps),
        reset_operator_password(ResetOperatorPassword(token=token, account=other.account), deps),
        set_scope(SetScope(token=token, codes=(BusinessScope.CUSTOMS_BROKER,)), deps),
    ):
        refused = await refusal(call)
        assert refused.code is ErrorCode.FORBIDDEN, refused.message
        assert "administrator" in refused.message
    # What an operator may do: its own account.
    assert (await show_account(ShowAccount(token=token), deps)).role == "operator"
    updated = await update_account(
        UpdateAccount.model_validate({"token": token, "landline": "023-6666 8888"}), deps
    )
    assert updated.landline == "023-6666 8888"


async def test_an_unused_one_time_password_expires_and_a_reset_gives_a_new_one(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    boss = await admin(deps)
    added = await add(deps, boss)
    clock.advance(timedelta(days=7))
    expired = await refusal(login(deps, added.account, DEFAULT))
    assert expired.code is ErrorCode.UNAUTHENTICATED
    assert "one-time password has expired" in expired.message
    # A wrong password says nothing of the expiry: only the right one learns it.
    wrong = await refusal(login(deps, added.account, "not-the-password"))
    assert wrong.message == INCORRECT_CREDENTIALS

    reset = await reset_operator_password(
        ResetOperatorPassword(
            token=(await login(deps, boss.account, PASSWORD)).token, account=added.account
        ),
        deps,
    )
    assert reset.password_expires_at == clock.now() + timedelta(days=7)
    again = await login(deps, added.account, DEFAULT)
    assert again.required_actions == (RequiredAction.CHANGE_PASSWORD,)


async def test_an_admin_sees_and_changes_only_their_own_enterprises_operators(
    deps: AccountsRuntime,
) -> None:
    ours, theirs = await admin(deps), await admin(deps)
    their_operator = await add(deps, theirs)
    token = (await login(deps, ours.account, PASSWORD)).token
    assert (await list_operators(ListOperators(token=token), deps)).operators == ()
    nobody = await refusal(show_operator(ShowOperator(token=token, account="op_nobody"), deps))
    for call in (
        show_operator(ShowOperator(token=token, account=their_operator.account), deps),
        disable_operator(DisableOperator(token=token, account=their_operator.account), deps),
        delete_operator(DeleteOperator(token=token, account=their_operator.account), deps),
        reset_operator_password(
            ResetOperatorPassword(token=token, account=their_operator.account), deps
        ),
        update_operator(
            UpdateOperator.model_validate(
                {"token": token, "account": their_operator.account, "changes": {"name": "x"}}
            ),
            deps,
        ),
    ):
        refused = await refusal(call)
        assert refused.code is ErrorCode.NOT_FOUND
        assert refused.message.replace(their_operator.account, "op_nobody") == nobody.message
    # Nor is an administrator an operator to manage, their own or another's.
    for name in (theirs.account, ours.account):
        refused = await refusal(show_operator(ShowOperator(token=token, account=name), deps))
        assert refused.code is ErrorCode.NOT_FOUND
    assert (await login(deps, their_operator.account, DEFAULT)).required_actions


async def test_an_admin_cannot_disable_or_delete_themselves(deps: AccountsRuntime) -> None:
    boss = await admin(deps)
    for call in (
        disable_operator(DisableOperator(token=boss.token, account=boss.account.upper()), deps),
        delete_operator(DeleteOperator(token=boss.token, account=boss.account), deps),
    ):
        refused = await refusal(call)
        assert refused.code is ErrorCode.CONFLICT
        assert "cannot" in refused.message
        assert "own account" in refused.message
    assert (await show_account(ShowAccount(token=boss.token), deps)).role == "admin"


async def test_disabling_ends_the_operators_sessions_at_once_and_enabling_lets_it_back(
    deps: AccountsRuntime,
) -> None:
    boss = await admin(deps)
    mine = await working_operator(deps, boss)
    disabled = await disable_operator(DisableOperator(token=boss.token, account=mine.account), deps)
    assert disabled.status == "disabled"
    ended = await refusal(show_account(ShowAccount(token=mine.token), deps))
    assert ended.code is ErrorCode.UNAUTHENTICATED
    refused = await refusal(login(deps, mine.account, OPERATOR_PASSWORD))
    assert refused.code is ErrorCode.FORBIDDEN
    await enable_operator(EnableOperator(token=boss.token, account=mine.account), deps)
    # The old session stays ended; a new login works.
    assert (await refusal(show_account(ShowAccount(token=mine.token), deps))).code is (
        ErrorCode.UNAUTHENTICATED
    )
    assert (await login(deps, mine.account, OPERATOR_PASSWORD)).required_actions == ()
    types = [e.type for e in await staged(deps.service)]
    assert contract.OPERATOR_DISABLED.type in types
    assert contract.OPERATOR_ENABLED.type in types


async def test_a_deleted_operator_keeps_its_history_and_logs_in_like_an_unknown_account(
    deps: AccountsRuntime,
) -> None:
    boss = await admin(deps)
    mine = await working_operator(deps, boss)
    deleted = await delete_operator(DeleteOperator(token=boss.token, account=mine.account), deps)
    assert deleted.status == "deleted"
    assert (await refusal(show_session(ShowSession(token=mine.token), deps))).code is (
        ErrorCode.UNAUTHENTICATED
    )
    gone = await refusal(login(deps, mine.account, OPERATOR_PASSWORD))
    unknown = await refusal(login(deps, "op_never_was", OPERATOR_PASSWORD))
    assert (gone.code, gone.message) == (unknown.code, unknown.message)
    assert (await list_operators(ListOperators(token=boss.token), deps)).operators == ()
    refused = await refusal(
        show_operator(ShowOperator(token=boss.token, account=mine.account), deps)
    )
    assert refused.code is ErrorCode.NOT_FOUND
    # Its name stays with its history.
    taken = await refusal(add(deps, boss, account=mine.account))
    assert (taken.code, taken.fields[0].path) == (ErrorCode.CONFLICT, "operator.account")
    [event] = [e for e in await staged(deps.service) if e.type == contract.OPERATOR_DELETED.type]
    assert contract.OPERATOR_DELETED.parse(event).by == boss.account


async def test_a_password_change_ends_every_other_session_and_needs_the_current_password(
    deps: AccountsRuntime,
) -> None:
    boss = await admin(deps)
    here = await login(deps, boss.account, PASSWORD)
    wrong = await refusal(
        change_password(
            ChangePassword(
                token=here.token, current_password="Not-" + PASSWORD, new_password=OPERATOR_PASSWORD
            ),
            deps,
        )
    )
    assert (wrong.code, wrong.fields[0].path) == (ErrorCode.UNAUTHENTICATED, "current_password")
    assert (await show_account(ShowAccount(token=boss.token), deps)).account == boss.account

    changed = await change_password(
        ChangePassword(token=here.token, current_password=PASSWORD, new_password=OPERATOR_PASSWORD),
        deps,
    )
    assert changed.token == here.token
    assert (await show_account(ShowAccount(token=here.token), deps)).account == boss.account
    ended = await refusal(show_account(ShowAccount(token=boss.token), deps))
    assert ended.code is ErrorCode.UNAUTHENTICATED
    assert (await refusal(login(deps, boss.account, PASSWORD))).code is ErrorCode.UNAUTHENTICATED
    await login(deps, boss.account, OPERATOR_PASSWORD)
    attempts = [
        (a.outcome, a.purpose)
        for a in (
            contract.AUTHENTICATION_ATTEMPTED.parse(e)
            for e in await staged(deps.service)
            if e.type == contract.AUTHENTICATION_ATTEMPTED.type
        )
        if a.purpose == "password-change"
    ]
    assert attempts == [("failed", "password-change"), ("succeeded", "password-change")]


async def test_guessing_the_current_password_is_throttled_like_a_login(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    boss = await admin(deps)
    outcomes = []
    for attempt in range(5):
        refused = await refusal(
            change_password(
                ChangePassword(
                    token=boss.token,
                    current_password=f"guess-{attempt}-xyz",
                    new_password=OPERATOR_PASSWORD,
                ),
                deps,
            )
        )
        outcomes.append(refused.code)
    assert outcomes[:3] == [ErrorCode.UNAUTHENTICATED] * 3
    assert ErrorCode.THROTTLED in outcomes[3:]
    # The throttle is the login's: the name is blocked for logins too.
    assert (await refusal(login(deps, boss.account, PASSWORD))).code is ErrorCode.THROTTLED


async def test_account_update_changes_name_email_landline_and_refuses_identity_fields(
    deps: AccountsRuntime,
) -> None:
    boss = await admin(deps)
    updated = await update_account(
        UpdateAccount.model_validate(
            {
                "token": boss.token,
                "name": "李四光",
                "email": "li@example.com",
                "landline": "023-6789 0000",
            }
        ),
        deps,
    )
    assert (updated.name, updated.email, updated.landline) == (
        "李四光",
        "li@example.com",
        "023-6789 0000",
    )
    cleared = await update_account(
        UpdateAccount.model_validate({"token": boss.token, "email": None}), deps
    )
    assert (cleared.name, cleared.email) == ("李四光", None)
    assert (await show_account(ShowAccount(token=boss.token), deps)).landline == "023-6789 0000"
    for field in ("id_number", "account", "id_type"):
        with pytest.raises(ValueError, match="cannot be changed") as raised:
            UpdateAccount.model_validate({"token": boss.token, field: "X", "name": "张"})
        assert field in str(raised.value)
    [audit] = [
        contract.ACCOUNT_CHANGED.parse(e)
        for e in await staged(deps.service)
        if e.type == contract.ACCOUNT_CHANGED.type
        and "email" in e.data["fields"]
        and "name" in e.data["fields"]
    ]
    assert (audit.change, audit.by, audit.fields) == (
        "account-updated",
        boss.account,
        ("name", "email", "landline"),
    )


async def test_an_operators_details_and_level_are_changed_and_announced(
    deps: AccountsRuntime,
) -> None:
    boss = await admin(deps)
    added = await add(deps, boss)
    changed = await update_operator(
        UpdateOperator.model_validate(
            {
                "token": boss.token,
                "account": added.account,
                "changes": {"level": "declaration", "landline": "023-1234 5678"},
            }
        ),
        deps,
    )
    assert (changed.operator_level, changed.landline) == ("declaration", "023-1234 5678")
    [event] = [e for e in await staged(deps.service) if e.type == contract.OPERATOR_CHANGED.type]
    data = contract.OPERATOR_CHANGED.parse(event)
    assert (set(data.fields), data.level, data.by) == (
        {"level", "landline"},
        "declaration",
        boss.account,
    )
    first = await login(deps, added.account, DEFAULT)
    assert first.operator_level == "declaration"
    with pytest.raises(ValueError, match="cannot be changed") as raised:
        UpdateOperator.model_validate(
            {"token": boss.token, "account": added.account, "changes": {"id_number": "X1234"}}
        )
    assert "changes.id_number" in str(raised.value).replace("\n", ".")


async def test_a_password_in_the_operator_file_is_refused_by_name(deps: AccountsRuntime) -> None:
    with pytest.raises(ValueError, match="one-time") as raised:
        AddOperator.model_validate({"token": "t", "operator": operator(password="Mine-12345678")})
    assert "operator.password" in str(raised.value).replace("\n", ".")


class MeetingHashing(PasswordHashing):
    """Argon2id whose hashes, once `meet` is set, wait until that many have begun: every add has
    then passed its "is the name free?" check before any inserts."""

    meet: asyncio.Barrier | None = None

    async def hash(self, password: str) -> str:
        if self.meet is not None:
            await self.meet.wait()
        return await super().hash(password)


async def test_two_admins_adding_one_operator_name_at_once_one_is_told_it_is_taken(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> None:
    hashing = MeetingHashing(CHEAP_ARGON2, max_concurrent=2)
    async with accounts_runtime(tmp_path / "race", clock, authority, passwords=hashing) as deps:
        first, second = await admin(deps), await admin(deps)
        name = make_account("op")
        hashing.meet = asyncio.Barrier(2)
        outcomes = await asyncio.gather(
            add(deps, first, account=name),
            add(deps, second, account=name.upper()),
            return_exceptions=True,
        )
        added = [o for o in outcomes if isinstance(o, OperatorDetails)]
        refused = [o for o in outcomes if isinstance(o, DomainError)]
        assert len(added) == 1, outcomes
        assert len(refused) == 1, outcomes
        assert (refused[0].code, refused[0].fields[0].path) == (
            ErrorCode.CONFLICT,
            "operator.account",
        )
        assert refused[0].message.endswith("is taken; choose another")
        events = await staged(deps.service)
        assert [e.type for e in events].count(contract.OPERATOR_ADDED.type) == 1


async def test_random_one_time_passwords_go_to_the_operators_mobile_alone(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> None:
    async with accounts_runtime(
        tmp_path / "random", clock, authority, initial_password="random"
    ) as deps:
        boss = await admin(deps)
        added = await add(deps, boss, mobile="13700000009")
        assert added.initial_password == "random"
        assert (await refusal(login(deps, added.account, DEFAULT))).code is (
            ErrorCode.UNAUTHENTICATED
        )
        events = await staged(deps.service)
        [message] = [
            contract.MESSAGE_REQUESTED.parse(e)
            for e in events
            if e.type == contract.MESSAGE_REQUESTED.type
        ]
        assert (message.to, message.kind, message.account) == (
            "13700000009",
            "initial_password",
            added.account,
        )
        password = message.text.split(" is ", 1)[1].split(".", 1)[0]
        assert len(password) == 12
        assert (await login(deps, added.account, password)).required_actions == (
            RequiredAction.CHANGE_PASSWORD,
        )
        others = json.dumps(
            [e.model_dump(mode="json") for e in events if e.type != contract.MESSAGE_REQUESTED.type]
        )
        assert password not in others
