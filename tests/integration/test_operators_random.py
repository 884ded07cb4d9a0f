"""A deployment with random one-time passwords (`SW_ACCOUNTS_INITIAL_PASSWORD=random`), through
swctl on the real stack: the operator's password reaches the development notifier (`swctl dev
messages`) and nothing else: not SW_ACCOUNTS, SW_AUDIT or any service's log. SQLite only: what
this pins is the bus and the notifier, the same on either database (the rules run on both in
`test_operators.py`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from singlewindow.contracts import accounts
from singlewindow.swctl.platform import Platform

from tests.integration.test_one_time_codes import stream_bodies
from tests.integration.test_operators import OPERATOR_PASSWORD, new_admin, operator_file
from tests.support.identifiers import make_account
from tests.support.platform import Bus, eventually, running_platform
from tests.support.swctl import Swctl

MOBILE = "13700000002"  # examples/operator.json's


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform, its operators given random one-time passwords."""
    data_dir: Path = tmp_path_factory.mktemp("platform-random")
    with running_platform("sqlite", data_dir, SW_ACCOUNTS_INITIAL_PASSWORD="random") as running:
        yield running


async def test_a_random_one_time_password_goes_to_the_operators_mobile_alone(
    platform: Platform, nats_bus: Bus, registration_bus: Bus, reviewer: str, tmp_path: Path
) -> None:
    admin = await new_admin(platform, nats_bus, registration_bus, reviewer, tmp_path)
    name = make_account("op")
    added = admin.swctl("operators", "add", "--file", operator_file(tmp_path, name), "--json")
    assert added.code == 0, added.stderr
    assert (added.json()["initial_password"], added.json()["password_must_change"]) == (
        "random",
        True,
    )

    async def sent() -> str | None:
        result = await asyncio.to_thread(admin.swctl, "dev", "messages", "--to", MOBILE, "--json")
        assert result.code == 0, result.stderr
        found = [m for m in result.json() if m["kind"] == "initial_password"]
        return str(found[0]["text"]) if found else None

    text = await eventually(sent)
    assert name in text
    password = text.split(" is ", 1)[1].split(".", 1)[0]
    assert len(password) == 12

    op = Swctl(platform.config.nats_url, tmp_path / "op", platform.config.data_dir)
    refused = op("login", "--account", name, "--password-stdin", "--json", stdin="88888888\n")
    assert refused.code == 1
    first = op("login", "--account", name, "--password-stdin", "--json", stdin=password + "\n")
    assert first.code == 0, first.stderr
    assert first.json()["required_actions"] == ["change_password"]
    changed = op(
        "password", "change", "--password-stdin", stdin=f"{password}\n{OPERATOR_PASSWORD}\n"
    )
    assert changed.code == 0, changed.stderr
    assert op("account", "show").code == 0

    for stream in (accounts.STREAM.name, accounts.AUDIT_STREAM.name):
        kept = b"\n".join(await stream_bodies(platform, stream))
        assert name.encode() in kept, stream
        assert password.encode() not in kept, stream
        assert OPERATOR_PASSWORD.encode() not in kept, stream
    for service in platform.config.service_ports:
        log = platform.log_path(service).read_text(encoding="utf-8")
        assert password not in log, service
    assert json.dumps(added.json()).find(password) == -1
