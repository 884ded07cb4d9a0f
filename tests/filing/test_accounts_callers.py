"""Accounts says who an enterprise session is, for filing's own checks (`session.resolve`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from singlewindow.accounts.callers import resolve_session
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.enterprises import register_admin_by_card
from singlewindow.accounts.handlers import routes
from singlewindow.accounts.login import login_password, show_account
from singlewindow.accounts.scope import set_scope
from singlewindow.contracts import filing
from singlewindow.contracts.accounts import (
    BusinessScope,
    LoginWithPassword,
    RegisterCardAdmin,
    ResolveSession,
    Role,
    SetScope,
    ShowAccount,
)
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.filing import RecordChanged, RecordStatus
from singlewindow.runtime.clock import ManualClock

from tests.support.accounts import (
    PASSWORD,
    accounts_runtime,
    answer,
    card_admin,
    cardless_admin,
)
from tests.support.cards import CardAuthority, holder
from tests.support.handlers import deliver
from tests.support.identifiers import make_account, make_uscc


@pytest.fixture
def authority(tmp_path: Path) -> CardAuthority:
    return CardAuthority(tmp_path / "card-ca")


@pytest.fixture
async def deps(tmp_path: Path, authority: CardAuthority) -> AsyncIterator[AccountsRuntime]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    async with accounts_runtime(tmp_path, clock, authority) as runtime:
        yield runtime


async def test_a_card_administrators_session_resolves_to_its_card_enterprise(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    caller = await resolve_session(ResolveSession(token=session.token), deps)
    assert (caller.account, caller.role, caller.uscc) == (session.account, Role.ADMIN, session.uscc)
    assert caller.registered_via == "card"
    assert caller.card_customs_code is None  # this card carries none


@pytest.mark.parametrize(
    ("on_card", "kept"), [(" 5000960042 ", "5000960042"), ("50009600421234", None), ("", None)]
)
async def test_the_customs_code_a_registering_card_carries_is_kept_for_filing(
    deps: AccountsRuntime, authority: CardAuthority, on_card: str, kept: str | None
) -> None:
    card = authority.issue(uscc=make_uscc()).with_data(customs_code=on_card)
    request = RegisterCardAdmin.model_validate(
        await answer(deps, card) | {"admin": holder(make_account())}
    )
    session = await register_admin_by_card(request, deps)
    await set_scope(SetScope(token=session.token, codes=(BusinessScope.CUSTOMS_BROKER,)), deps)
    caller = await resolve_session(ResolveSession(token=session.token), deps)
    assert caller.card_customs_code == kept


async def test_a_session_owing_its_required_actions_or_ended_is_refused(
    deps: AccountsRuntime,
) -> None:
    account = await cardless_admin(deps)
    session = await login_password(LoginWithPassword(account=account, password=PASSWORD), deps)
    with pytest.raises(DomainError) as raised:
        await resolve_session(ResolveSession(token=session.token), deps)
    assert raised.value.code is ErrorCode.ACTION_REQUIRED
    with pytest.raises(DomainError) as raised:
        await resolve_session(ResolveSession(token="no-such-token"), deps)
    assert raised.value.code is ErrorCode.UNAUTHENTICATED


async def test_the_enterprise_shows_its_customs_code_once_filed(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, session = await card_admin(deps, authority)
    assert session.uscc is not None
    filed = RecordChanged(
        uscc=session.uscc,
        enterprise_name="重庆某某贸易有限公司",
        customs_code="5000960001",
        status=RecordStatus.FILED,
        unit_type="consignee",
        valid_until=None,
        filing_id="fil_abcdefghijkl",
    )
    event = filing.FILED.make(filed, subject=session.uscc, source="urn:test:filing")
    for _twice in range(2):
        assert (await deliver(deps.service, routes, deps, event)).acked
    shown = await show_account(ShowAccount(token=session.token), deps)
    assert shown.customs_code == "5000960001"
