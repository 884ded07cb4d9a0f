"""Logging in: sessions, required actions, throttling, and the audit trail."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow.contracts import accounts
from singlewindow.contracts.accounts import AccountView, SessionView
from singlewindow.contracts.errors import DomainError, ErrorCode

from tests.integration.test_exactly_once import approved_and_registered
from tests.support.identifiers import application
from tests.support.platform import Bus

PASSWORD = "Chongqing-Trade-2026"


async def admin(bus: Bus, reviewer: str) -> str:
    content = application(password=PASSWORD)
    await approved_and_registered(bus, content, reviewer)
    return str(content["admin"]["account"])


async def login(bus: Bus, account: str, password: str = PASSWORD) -> SessionView:
    session: SessionView = await bus.call(
        accounts.LOGIN_PASSWORD, {"account": account, "password": password}
    )
    return session


async def refused_login(bus: Bus, account: str, password: str) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await login(bus, account, password)
    return raised.value


async def test_an_unknown_account_and_a_wrong_password_get_the_same_reply(
    nats_bus: Bus, reviewer: str
) -> None:
    account = await admin(nats_bus, reviewer)
    wrong = await refused_login(nats_bus, account, "not-the-password")
    unknown = await refused_login(nats_bus, "nobody_at_all", "not-the-password")
    assert wrong.body() == unknown.body()
    assert wrong.code is ErrorCode.UNAUTHENTICATED


async def test_the_first_session_can_only_declare_business_scope(
    nats_bus: Bus, reviewer: str
) -> None:
    account = await admin(nats_bus, reviewer)
    session = await login(nats_bus, account.upper())
    assert session.required_actions == ("business_scope",)
    with pytest.raises(DomainError) as raised:
        await nats_bus.call(accounts.SHOW_ACCOUNT, {"token": session.token})
    assert raised.value.code is ErrorCode.ACTION_REQUIRED
    with pytest.raises(DomainError) as invalid:
        await nats_bus.call(
            accounts.SET_SCOPE,
            {"token": session.token, "codes": ["smuggling"]},
        )
    assert [f.path for f in invalid.value.fields] == ["codes.0"]
    declared = await nats_bus.call(
        accounts.SET_SCOPE,
        {"token": session.token, "codes": ["customs_broker"]},
    )
    assert declared.version == 1
    changed = await nats_bus.call(
        accounts.SET_SCOPE,
        {"token": session.token, "codes": ["processing_trade", "customs_broker"]},
    )
    assert changed.version == 2  # history kept: a new version, not an overwrite
    me: AccountView = await nats_bus.call(accounts.SHOW_ACCOUNT, {"token": session.token})
    assert me.business_scope == ("processing_trade", "customs_broker")
    assert me.id_number_masked == "110105********002X"
    # The next login has nothing left to do first.
    assert (await login(nats_bus, account)).required_actions == ()


async def test_logout_revokes_the_session_on_the_server(nats_bus: Bus, reviewer: str) -> None:
    account = await admin(nats_bus, reviewer)
    session = await login(nats_bus, account)
    await nats_bus.call(accounts.SHOW_SESSION, {"token": session.token})
    reply = await nats_bus.raw(accounts.LOGOUT, json.dumps({"token": session.token}).encode())
    assert reply == {"result": None}
    with pytest.raises(DomainError) as raised:
        await nats_bus.call(accounts.SHOW_SESSION, {"token": session.token})
    assert raised.value.code is ErrorCode.UNAUTHENTICATED
    assert len(session.token) >= 43  # 256 random bits, URL-safe


async def test_failures_after_the_free_ones_are_refused_as_throttled(
    nats_bus: Bus, reviewer: str
) -> None:
    # The delays themselves, doubling and lapsing, are pinned in tests/accounts with a clock.
    account = await admin(nats_bus, reviewer)
    for _ in range(4):  # the free failures, then the one that starts a delay
        assert (
            await refused_login(nats_bus, account, "wrong-password")
        ).code is ErrorCode.UNAUTHENTICATED
    throttled = await refused_login(nats_bus, account, PASSWORD)
    assert throttled.code is ErrorCode.THROTTLED  # even the right password waits
    assert re.fullmatch(r"too many login attempts; try again in \d+ seconds", throttled.message)
    assert throttled.body() == (await refused_login(nats_bus, account, PASSWORD)).body()


async def test_concurrent_guesses_are_verified_no_more_than_the_throttle_allows(
    nats_bus: Bus, reviewer: str
) -> None:
    account = await admin(nats_bus, reviewer)
    outcomes = await asyncio.gather(
        *(login(nats_bus, account, "wrong-password") for _ in range(30)), return_exceptions=True
    )
    codes = [o.code for o in outcomes if isinstance(o, DomainError)]
    assert len(codes) == 30
    # Three free failures and the one that starts the delay were verified; the rest waited.
    assert codes.count(ErrorCode.UNAUTHENTICATED) == 4
    assert codes.count(ErrorCode.THROTTLED) == 26
    audit = await _all(nats_bus, "SW_AUDIT", "sw.audit.>")
    verified = [e for e in audit if e["data"].get("account") == account]
    assert [e["data"]["outcome"] for e in verified].count("failed") == 4
    throttled = await refused_login(nats_bus, account, PASSWORD)
    assert throttled.code is ErrorCode.THROTTLED
    # The delay four verified failures earn (the test settings' 600 s base), not thirty's.
    wait = int(re.findall(r"\d+", throttled.message)[0])
    assert 1 <= wait <= 600


async def test_every_attempt_is_audited_apart_from_public_events_without_the_password(
    nats_bus: Bus, reviewer: str
) -> None:
    account = await admin(nats_bus, reviewer)
    await login(nats_bus, account)
    await refused_login(nats_bus, account, "secret-typo-123")
    audit = await _all(nats_bus, "SW_AUDIT", "sw.audit.>")
    mine = [e for e in audit if e["data"].get("account") == account]
    assert [e["data"]["outcome"] for e in mine] == ["succeeded", "failed"]
    assert all(e["type"] == accounts.AUTHENTICATION_ATTEMPTED.type for e in mine)
    everything = json.dumps(audit) + json.dumps(await _all(nats_bus, "SW_ACCOUNTS", "sw.events.>"))
    assert "secret-typo-123" not in everything
    assert PASSWORD not in everything
    public = await _all(nats_bus, "SW_ACCOUNTS", "sw.events.accounts.>")
    assert not any(e["type"] == accounts.AUTHENTICATION_ATTEMPTED.type for e in public)


async def _all(bus: Bus, stream: str, subject: str) -> list[dict[str, Any]]:
    subscription = await bus.js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    events = []
    try:
        while True:
            try:
                events.append(json.loads((await subscription.next_msg(timeout=0.5)).data))
            except TimeoutError:
                break
    finally:
        await subscription.unsubscribe()
    return events


async def test_card_requests_are_refused_plainly_where_no_card_ca_is_trusted(
    nats_bus: Bus,
) -> None:
    with pytest.raises(DomainError) as raised:
        await nats_bus.call(accounts.CARD_CHALLENGE, {})
    assert raised.value.code is ErrorCode.CARD_REFUSED
    assert raised.value.message == (
        "card requests are not available: no trusted card CA is configured "
        "(SW_ACCOUNTS_CARD_TRUST_ANCHOR)"
    )
