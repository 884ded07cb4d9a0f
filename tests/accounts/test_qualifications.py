"""My qualifications, the handlers called directly: read-only basics, the inspection
qualification saved with optimistic versioning, its password sealed at rest and audited as
"password changed", key rotation keeping it readable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import NewAccount
from singlewindow.accounts.login import login_password
from singlewindow.accounts.qualifications import (
    KeyProblem,
    edit_qualifications,
    inspection_password,
    list_authorities,
    new_key_entry,
    parse_keys,
    reseal_secrets,
    save_qualifications,
    show_qualifications,
)
from singlewindow.accounts.tables import create_account, qualifications
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    EditQualifications,
    ListAuthorities,
    LoginWithPassword,
    SaveQualifications,
    SessionView,
    ShowQualifications,
)
from singlewindow.contracts.card_gateway import OperatorLevel
from singlewindow.contracts.common import AccountHolder
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.clock import ManualClock
from sqlalchemy import select

from tests.support.accounts import PASSWORD, accounts_runtime, card_admin
from tests.support.cards import CardAuthority, holder
from tests.support.handlers import staged
from tests.support.identifiers import make_account

OLD_KEY = new_key_entry("old")
NEW_KEY = new_key_entry("new")
SECRET = "Inspection-Pass-7788"
FILE = {
    "registration_number": "3100600001",
    "declaration_account": "cq-trade-01",
    "password": SECRET,
    "authority": "8000",
}


@pytest.fixture
async def deps(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> AsyncIterator[AccountsRuntime]:
    async with accounts_runtime(tmp_path, clock, authority, secret_keys=OLD_KEY) as runtime:
        yield runtime


async def operator_session(deps: AccountsRuntime, uscc: str, level: OperatorLevel) -> SessionView:
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
    return await login_password(LoginWithPassword(account=account, password=PASSWORD), deps)


async def save(
    deps: AccountsRuntime, session: SessionView, version: int, **inspection: Any
) -> contract.QualificationsView:
    request = SaveQualifications.model_validate(
        {"token": session.token, "version": version, "inspection": inspection}
    )
    return await save_qualifications(request, deps)


async def refusal(coroutine: Any) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await coroutine
    return raised.value


async def stored_rows(deps: AccountsRuntime) -> list[Any]:
    async with deps.service.db.reading() as connection:
        return list((await connection.execute(select(qualifications))).mappings().all())


async def test_show_gives_the_basics_and_an_empty_inspection_qualification_at_version_0(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    view = await show_qualifications(ShowQualifications(token=session.token), deps)
    assert view.basics.uscc == session.uscc
    assert view.basics.name == session.enterprise_name
    assert view.basics.registered_via == "card"
    assert view.version == 0
    assert view.editable
    assert view.inspection.registration_number is None
    assert not view.inspection.password_set


async def test_the_administrator_saves_and_the_password_is_only_said_to_be_set(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    opened = await edit_qualifications(EditQualifications(token=session.token), deps)
    saved = await save(deps, session, opened.version, **FILE)
    assert saved.version == 1
    assert saved.inspection.registration_number == "3100600001"
    assert saved.inspection.authority_name == "重庆海关"
    assert saved.inspection.password_set
    assert SECRET not in saved.model_dump_json()
    shown = await show_qualifications(ShowQualifications(token=session.token), deps)
    assert shown == saved
    [row] = await stored_rows(deps)
    assert SECRET not in str(dict(row))
    assert row["password_key_id"] == "old"
    assert session.uscc is not None
    assert await inspection_password(deps, session.uscc) == SECRET


async def test_a_save_without_the_password_keeps_it(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    await save(deps, session, 0, **FILE)
    without = {key: value for key, value in FILE.items() if key != "password"}
    saved = await save(deps, session, 1, **(without | {"declaration_account": "cq-trade-02"}))
    assert saved.inspection.password_set
    assert session.uscc is not None
    assert await inspection_password(deps, session.uscc) == SECRET


async def test_a_stale_version_is_refused_and_nothing_is_written(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    await save(deps, session, 0, **FILE)
    refused = await refusal(save(deps, session, 0, **(FILE | {"declaration_account": "other"})))
    assert refused.code is ErrorCode.CONFLICT
    assert "changed by someone else since you opened it" in refused.message
    [row] = await stored_rows(deps)
    assert row["declaration_account"] == "cq-trade-01"
    assert row["version"] == 1


async def test_two_editors_at_once_exactly_one_save_wins(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    for version in (0, 1):  # the first save (an insert) and a later one (an update)
        outcomes = await asyncio.gather(
            save(deps, session, version, **(FILE | {"declaration_account": "first"})),
            save(deps, session, version, **(FILE | {"declaration_account": "second"})),
            return_exceptions=True,
        )
        won = [o for o in outcomes if isinstance(o, contract.QualificationsView)]
        lost = [o for o in outcomes if isinstance(o, DomainError)]
        assert len(won) == 1, outcomes
        assert [e.code for e in lost] == [ErrorCode.CONFLICT]
        [row] = await stored_rows(deps)
        assert row["declaration_account"] == won[0].inspection.declaration_account
        assert row["version"] == version + 1


async def test_operators_view_but_do_not_edit(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)
    assert admin.uscc is not None
    await save(deps, admin, 0, **FILE)
    operator = await operator_session(deps, admin.uscc, OperatorLevel.DECLARATION)
    view = await show_qualifications(ShowQualifications(token=operator.token), deps)
    assert view.inspection.declaration_account == "cq-trade-01"
    assert not view.editable
    refused = await refusal(edit_qualifications(EditQualifications(token=operator.token), deps))
    assert refused.code is ErrorCode.FORBIDDEN
    refused = await refusal(save(deps, operator, 1, **FILE))
    assert refused.code is ErrorCode.FORBIDDEN
    assert refused.message == "only the enterprise administrator edits the qualifications"


async def test_an_unknown_authority_and_a_bad_registration_number_are_refused_by_field(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    refused = await refusal(save(deps, session, 0, **(FILE | {"authority": "1234"})))
    assert [f.path for f in refused.fields] == ["inspection.authority"]
    with pytest.raises(ValueError, match="registration_number"):
        await save(deps, session, 0, **(FILE | {"registration_number": "31006"}))
    assert await stored_rows(deps) == []


async def test_every_change_is_audited_with_old_and_new_values_and_password_changed(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    await save(deps, session, 0, **FILE)
    await save(deps, session, 1, **(FILE | {"authority": "2200", "password": "Another-1"}))
    audited = [
        contract.QUALIFICATIONS_CHANGED.parse(e)
        for e in await staged(deps.service)
        if e.type == contract.QUALIFICATIONS_CHANGED.type
    ]
    assert [a.version for a in audited] == [1, 2]
    second = {c.field: c for c in audited[1].changes}
    assert set(second) == {"inspection.authority", "inspection.password"}
    assert (second["inspection.authority"].old, second["inspection.authority"].new) == (
        "8000",
        "2200",
    )
    assert second["inspection.password"].note == "password changed"
    assert second["inspection.password"].old is None
    assert audited[1].changed_by == session.account
    for event in await staged(deps.service):
        assert SECRET not in event.model_dump_json()
        assert "Another-1" not in event.model_dump_json()


async def test_rotation_reseals_under_the_new_key_and_the_value_stays_readable(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> None:
    async with accounts_runtime(tmp_path, clock, authority, secret_keys=OLD_KEY) as deps:
        _card, session = await card_admin(deps, authority)
        await save(deps, session, 0, **FILE)
    rotated = f"{NEW_KEY},{OLD_KEY}"
    async with accounts_runtime(tmp_path, clock, authority, secret_keys=rotated) as deps:
        assert await reseal_secrets(deps) == 1
        assert await reseal_secrets(deps) == 0
        [row] = await stored_rows(deps)
        assert row["password_key_id"] == "new"
    async with accounts_runtime(tmp_path, clock, authority, secret_keys=NEW_KEY) as deps:
        assert session.uscc is not None
        assert await inspection_password(deps, session.uscc) == SECRET


async def test_without_a_key_a_password_is_not_stored(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> None:
    async with accounts_runtime(tmp_path, clock, authority) as deps:
        _card, session = await card_admin(deps, authority)
        refused = await refusal(save(deps, session, 0, **FILE))
        assert refused.code is ErrorCode.UNAVAILABLE
        without = {key: value for key, value in FILE.items() if key != "password"}
        assert (await save(deps, session, 0, **without)).version == 1


def test_malformed_keys_are_refused() -> None:
    for text in ("", "nocolon", "k1:c2hvcnQ=", "k1:!!!"):
        with pytest.raises(KeyProblem):
            parse_keys(text)
    assert parse_keys(f"# comment\n{NEW_KEY}\n{OLD_KEY}\n").current == "new"


async def test_the_authorities_are_listed_from_the_data_file(deps: AccountsRuntime) -> None:
    listed = await list_authorities(ListAuthorities(), deps)
    codes = {a.code: a.name_zh for a in listed.authorities}
    assert codes["8000"] == "重庆海关"
    assert len(codes) > 30


async def test_a_value_whose_key_is_gone_is_left_as_it_is_and_the_service_starts(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> None:
    async with accounts_runtime(tmp_path, clock, authority, secret_keys=OLD_KEY) as deps:
        _card, session = await card_admin(deps, authority)
        await save(deps, session, 0, **FILE)
    async with accounts_runtime(tmp_path, clock, authority, secret_keys=NEW_KEY) as deps:
        assert await reseal_secrets(deps) == 0
        [row] = await stored_rows(deps)
        assert row["password_key_id"] == "old"
