"""The accounts handlers called directly: a runtime per test, a clock it moves, a card CA."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.runtime.clock import ManualClock

from tests.support.accounts import accounts_runtime
from tests.support.cards import CardAuthority


@pytest.fixture
def clock() -> ManualClock:
    # Starts at the real time: the test CA's certificates are valid from now on.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def authority(tmp_path: Path) -> CardAuthority:
    return CardAuthority(tmp_path / "card-ca")


@pytest.fixture
async def deps(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> AsyncIterator[AccountsRuntime]:
    async with accounts_runtime(tmp_path, clock, authority) as runtime:
        yield runtime
