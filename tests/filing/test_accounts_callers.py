"""Accounts says who an enterprise session is, for filing's own checks (`session.resolve`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from singlewindow.accounts.callers import resolve_session
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.login import login_password
from singlewindow.contracts.accounts import LoginWithPassword, ResolveSession, Role
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.clock import ManualClock

from tests.support.accounts import PASSWORD, accounts_runtime, card_admin, cardless_admin
from tests.support.cards import CardAuthority


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
