"""Staff sessions on a running platform, for tests that review over the bus.

The embedded platform bootstraps `admin` with a one-time password in its data directory; the
first call here changes it (once per platform), then adds the reviewers and supervisors asked
for, each with its one-time password changed, and logs them in.

    token = await staff_token(nats_bus, platform)               # a reviewer's
    boss = await staff_token(nats_bus, platform, "supervisor")
"""

from __future__ import annotations

import json
from pathlib import Path

from singlewindow.contracts import accounts
from singlewindow.contracts.accounts import StaffAdded, StaffSessionView
from singlewindow.swctl.platform import Platform
from singlewindow.swctl.staff import bootstrap_admin_file

from tests.support.platform import Bus

ADMIN_PASSWORD = "Integration-Chief-Passphrase-1"
"""What the bootstrap administrator's one-time password is changed to."""
STAFF_PASSWORD = "Integration-Staff-Passphrase-1"
"""What every staff member added here changes its one-time password to."""

_ready: set[tuple[Path, str]] = set()
"""(data directory, account) of staff whose password is set, platform by platform."""


def bootstrap_password(data_dir: Path) -> str:
    """The embedded platform's bootstrap one-time password."""
    password: str = json.loads(bootstrap_admin_file(data_dir).read_text())["password"]
    return password


async def login(bus: Bus, account: str, password: str) -> StaffSessionView:
    """A staff session."""
    session: StaffSessionView = await bus.call(
        accounts.STAFF_LOGIN, {"account": account, "password": password}
    )
    return session


async def change_password(bus: Bus, session: StaffSessionView, current: str, new: str) -> str:
    """The token of the session a password change opens."""
    changed: StaffSessionView = await bus.call(
        accounts.STAFF_PASSWORD,
        {"token": session.token, "current_password": current, "new_password": new},
    )
    return changed.token


async def admin_token(bus: Bus, platform: Platform) -> str:
    """The bootstrap administrator's token, its one-time password changed the first time."""
    data_dir = platform.config.data_dir
    if (data_dir, "admin") in _ready:
        return (await login(bus, "admin", ADMIN_PASSWORD)).token
    one_time = bootstrap_password(data_dir)
    token = await change_password(
        bus, await login(bus, "admin", one_time), one_time, ADMIN_PASSWORD
    )
    _ready.add((data_dir, "admin"))
    return token


async def staff_token(bus: Bus, platform: Platform, role: str = "reviewer") -> str:
    """A token of the platform's test `<role>` account (`reviewer`, `supervisor`), added and its
    password set the first time."""
    account = f"it-{role}"
    key = (platform.config.data_dir, account)
    if key not in _ready:
        added: StaffAdded = await bus.call(
            accounts.STAFF_ADD,
            {"token": await admin_token(bus, platform), "account": account, "role": role},
        )
        first = await login(bus, account, added.one_time_password)
        _ready.add(key)
        return await change_password(bus, first, added.one_time_password, STAFF_PASSWORD)
    return (await login(bus, account, STAFF_PASSWORD)).token
