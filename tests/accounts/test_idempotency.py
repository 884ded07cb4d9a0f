"""A login through the request path: without a key it costs what it always did; with one, a
retry gets the same session, and a counted failure is counted once."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.login import login_password
from singlewindow.contracts import accounts as contract
from singlewindow.runtime.idempotency import HEADER
from singlewindow.runtime.rpc import respond

from tests.support.accounts import PASSWORD, cardless_admin, statements
from tests.support.handlers import staged

KEY = "3c1d7f0e-5b9a-4e62-8f0d-2a7b6c5d4e3f"


async def login(deps: AccountsRuntime, account: str, password: str, key: str | None) -> Any:
    """A password login as the service's request path gets it; the decoded reply."""

    async def handle(request: Any) -> BaseModel | None:
        return await login_password(request, deps)

    body = json.dumps({"account": account, "password": password}).encode()
    reply = await respond(
        contract.LOGIN_PASSWORD,
        body,
        None,
        handle,
        headers={HEADER: key} if key else {},
        idempotency=deps.service.idempotency,
    )
    return json.loads(reply)


async def sessions(deps: AccountsRuntime) -> int:
    async with deps.service.db.reading() as connection:
        return len((await connection.exec_driver_sql("SELECT 1 FROM sessions")).all())


async def test_a_login_without_a_key_costs_the_statements_of_the_handler_alone(
    deps: AccountsRuntime,
) -> None:
    account = await cardless_admin(deps)
    await login_password(contract.LoginWithPassword(account=account, password=PASSWORD), deps)
    with statements(deps) as alone:
        await login_password(contract.LoginWithPassword(account=account, password=PASSWORD), deps)
    with statements(deps) as through_the_runtime:
        assert "result" in await login(deps, account, PASSWORD, key=None)
    assert through_the_runtime == alone


async def test_a_login_retried_with_its_key_gets_the_same_session_and_opens_no_other(
    deps: AccountsRuntime,
) -> None:
    account = await cardless_admin(deps)
    first = await login(deps, account, PASSWORD, KEY)
    with statements(deps) as seen:
        again = await login(deps, account, PASSWORD, KEY)
    assert again == first
    assert seen == ["BEGIN DEFERRED", "SELECT"]
    assert await sessions(deps) == 1


async def test_a_wrong_password_retried_with_its_key_is_refused_again_and_counted_once(
    deps: AccountsRuntime,
) -> None:
    account = await cardless_admin(deps)
    first = await login(deps, account, "wrong-password", KEY)
    assert first["error"]["code"] == "unauthenticated"
    assert await login(deps, account, "wrong-password", KEY) == first
    failed = [
        event
        for event in await staged(deps.service)
        if event.type == contract.AUTHENTICATION_ATTEMPTED.type
        and contract.AUTHENTICATION_ATTEMPTED.parse(event).outcome == "failed"
    ]
    assert len(failed) == 1


async def test_the_right_password_with_the_key_of_a_wrong_one_is_refused_as_reused(
    deps: AccountsRuntime,
) -> None:
    account = await cardless_admin(deps)
    await login(deps, account, "wrong-password", KEY)
    reply = await login(deps, account, PASSWORD, KEY)
    assert reply["error"]["code"] == "idempotency_key_reused"
    assert await sessions(deps) == 0
