"""No lost or doubled effects: duplicates, a crashed consumer, and a poisoned event."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow.contracts import accounts, registration, review
from singlewindow.contracts.accounts import SessionView
from singlewindow.swctl.platform import Platform

from tests.integration.test_registration_rules import approve, open_task, submit
from tests.support.identifiers import application
from tests.support.platform import Bus, bus, eventually
from tests.support.swctl import Swctl

APPROVALS = "accounts-registration-approved"
PASSWORD = "Chongqing-Trade-2026"


async def events_of(
    bus: Bus, stream: str, subject: str, uscc: str
) -> list[tuple[dict[str, Any], Any]]:
    """Every event on `subject` about `uscc`, with its raw message, read with a plain consumer."""
    found: list[tuple[dict[str, Any], Any]] = []
    subscription = await bus.js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    try:
        while True:
            try:
                message = await subscription.next_msg(timeout=0.5)
            except TimeoutError:
                break
            try:
                event = json.loads(message.data)
            except ValueError:
                continue  # the poison another test published
            if event.get("subject") == uscc:
                found.append((event, message))
    finally:
        await subscription.unsubscribe()
    return found


async def approve_with_accounts_down(
    platform: Platform, bus: Bus, application_id: str, reviewer: str, *, kill: bool = False
) -> None:
    """Approve while accounts is up (review asks it who the reviewer is), then stop accounts
    before registration, stopped meanwhile, turns the decision into the approval event."""
    task = await open_task(bus, application_id, reviewer)
    platform.stop_process("registration")
    try:
        await bus.call(
            review.DECIDE_TASK, {"token": reviewer, "task_id": task, "decision": "approve"}
        )
        platform.stop_process("accounts", kill=kill)
    finally:
        platform.start_service("registration")


async def drained(bus: Bus, stream: str, durable: str) -> None:
    """Wait until a durable consumer has delivered and settled everything in its stream."""

    async def check() -> bool | None:
        info = await bus.js.consumer_info(stream, durable)
        last = (await bus.js.stream_info(stream)).state.last_seq
        settled = info.num_ack_pending == 0 and info.num_pending == 0
        return True if settled and info.delivered.stream_seq >= last else None

    await eventually(check, within=30)


async def approved_and_registered(bus: Bus, content: dict[str, Any], reviewer: str) -> str:
    view = await submit(bus, content)
    await approve(bus, view.application_id, reviewer)
    uscc = view.uscc

    async def registered() -> bool | None:
        found = await events_of(
            bus, accounts.STREAM.name, accounts.ENTERPRISE_REGISTERED.subject, uscc
        )
        return True if found else None

    await eventually(registered)
    return uscc


@pytest.fixture
async def as_registration(platform: Platform) -> AsyncIterator[Bus]:
    """Registration's own connection: only its user may publish its events."""
    async with bus(platform, "registration") as connection:
        yield connection


async def test_an_approval_delivered_twice_creates_one_enterprise_and_one_admin(
    nats_bus: Bus, as_registration: Bus, reviewer: str
) -> None:
    content = application(password=PASSWORD)
    uscc = await approved_and_registered(nats_bus, content, reviewer)
    [(approved, message)] = await events_of(
        nats_bus, registration.STREAM.name, registration.APPROVED.subject, uscc
    )
    # The same event again, past JetStream's de-duplication (as after a relay crash and a long outage).
    await as_registration.js.publish(
        message.subject, message.data, headers={"Nats-Msg-Id": f"replay-{uuid.uuid4()}"}
    )
    # And a second approval of the same application under a new event id.
    again = approved | {"id": str(uuid.uuid4()), "time": datetime.now(UTC).isoformat()}
    await as_registration.js.publish(
        message.subject, json.dumps(again).encode(), headers={"Nats-Msg-Id": again["id"]}
    )
    await drained(nats_bus, registration.STREAM.name, APPROVALS)

    registered = await events_of(
        nats_bus, accounts.STREAM.name, accounts.ENTERPRISE_REGISTERED.subject, uscc
    )
    assert len(registered) == 1
    session: SessionView = await nats_bus.call(
        accounts.LOGIN_PASSWORD,
        {"account": content["admin"]["account"], "password": PASSWORD},
    )
    assert session.uscc == uscc


async def test_accounts_down_at_approval_applies_it_exactly_once_after_restart(
    platform: Platform, nats_bus: Bus, reviewer: str
) -> None:
    content = application(password=PASSWORD)
    view = await submit(nats_bus, content)
    await approve_with_accounts_down(platform, nats_bus, view.application_id, reviewer, kill=True)
    try:

        async def approved() -> bool | None:
            found = await events_of(
                nats_bus, registration.STREAM.name, registration.APPROVED.subject, view.uscc
            )
            return True if found else None

        await eventually(approved)
    finally:
        platform.start_service("accounts")
    await drained(nats_bus, registration.STREAM.name, APPROVALS)
    registered = await events_of(
        nats_bus, accounts.STREAM.name, accounts.ENTERPRISE_REGISTERED.subject, view.uscc
    )
    assert len(registered) == 1
    session: SessionView = await nats_bus.call(
        accounts.LOGIN_PASSWORD,
        {"account": content["admin"]["account"], "password": PASSWORD},
    )
    assert session.required_actions == ("business_scope",)


async def test_an_event_that_keeps_failing_is_dead_lettered_and_the_service_goes_on(
    nats_bus: Bus, as_registration: Bus, reviewer: str
) -> None:
    poisoned = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:test",
        "type": registration.APPROVED.type,
        "subject": "91500000MA5U7X1C69",
        "time": datetime.now(UTC).isoformat(),
        "dataschema": registration.APPROVED.dataschema,
        "data": {
            "application_id": "app_doesnotexist000",
            "uscc": "91500000MA5U7X1C69",
            "enterprise_name": "x",
            "admin_account": "x_admin",
            "reason": None,
        },
    }
    await as_registration.js.publish(
        registration.APPROVED.subject,
        json.dumps(poisoned).encode(),
        headers={"Nats-Msg-Id": poisoned["id"]},
    )
    await as_registration.js.publish(registration.APPROVED.subject, b"{not a cloudevent")

    async def dead_letters() -> list[Any] | None:
        subscription = await nats_bus.js.subscribe(
            "sw.deadletter.accounts.>",
            stream="SW_DEADLETTER",
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        found = []
        try:
            while True:
                try:
                    found.append(await subscription.next_msg(timeout=0.5))
                except TimeoutError:
                    break
        finally:
            await subscription.unsubscribe()
        return found if len(found) >= 2 else None

    letters = await eventually(dead_letters, within=30)
    reasons = [m.headers["Sw-Dead-Letter-Reason"] for m in letters]
    assert any("no application app_doesnotexist000" in reason for reason in reasons)
    assert any("not a CloudEvent" in reason for reason in reasons)
    assert all(m.headers["Sw-Original-Subject"] == registration.APPROVED.subject for m in letters)
    await drained(nats_bus, registration.STREAM.name, APPROVALS)
    # The consumer goes on: a real approval still goes through.
    await approved_and_registered(nats_bus, application(), reviewer)


async def test_a_dead_letter_replayed_after_the_fault_is_fixed_takes_effect_once(
    platform: Platform, nats_bus: Bus, tmp_path: Path, reviewer: str
) -> None:
    content = application(password=PASSWORD)
    view = await submit(nats_bus, content)
    await approve_with_accounts_down(platform, nats_bus, view.application_id, reviewer)

    async def approved() -> bool | None:
        found = await events_of(
            nats_bus, registration.STREAM.name, registration.APPROVED.subject, view.uscc
        )
        return True if found else None

    await eventually(approved)
    # Registration is down when accounts asks it for the applicant's details: every delivery fails.
    platform.stop_process("registration")
    platform.start_service("accounts")
    swctl = Swctl(platform.config.nats_url, tmp_path / "swctl", platform.config.data_dir)

    async def dead_lettered() -> dict[str, Any] | None:
        listed = await asyncio.to_thread(swctl, "deadletter", "list", "--json")
        assert listed.code == 0, listed.stderr
        mine = [d for d in listed.json()["dead_letters"] if view.uscc in d["body"]]
        return mine[0] if mine else None

    letter = await eventually(dead_lettered, within=30)
    assert letter["consumer"] == APPROVALS
    assert "registration service did not answer" in letter["reason"]

    platform.start_service("registration")
    replayed = swctl("deadletter", "replay", str(letter["sequence"]), "--json")
    assert replayed.code == 0, replayed.stderr
    await drained(nats_bus, registration.STREAM.name, APPROVALS)
    registered = await events_of(
        nats_bus, accounts.STREAM.name, accounts.ENTERPRISE_REGISTERED.subject, view.uscc
    )
    assert len(registered) == 1
    assert swctl("deadletter", "replay", str(letter["sequence"])).code == 1  # gone once replayed
