"""A lost reply to a submit, retried with its idempotency key, on the real platform: the retry
gets the first application's id, and the platform holds and announces one application."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from singlewindow.contracts import registration
from singlewindow.contracts.endpoints import IDEMPOTENCY_HEADER
from singlewindow.swctl.platform import Platform

from tests.integration.test_exactly_once import events_of
from tests.support.identifiers import application
from tests.support.platform import Bus
from tests.support.swctl import Swctl


async def submit(bus: Bus, body: bytes, key: str) -> dict[str, Any]:
    """A submission with an idempotency key; the decoded reply."""
    message = await bus.nc.request(
        registration.SUBMIT_CARDLESS.subject,
        body,
        timeout=10,
        headers={IDEMPOTENCY_HEADER: key},
    )
    reply: dict[str, Any] = json.loads(message.data)
    return reply


async def announced(bus: Bus, uscc: str) -> int:
    """How many submissions of `uscc` registration announced."""
    return len(await events_of(bus, registration.STREAM.name, registration.SUBMITTED.subject, uscc))


async def test_a_submit_whose_reply_was_lost_is_retried_with_its_key_and_gets_the_same_id(
    nats_bus: Bus,
) -> None:
    content = application()
    body, key = json.dumps(content).encode(), str(uuid.uuid4())
    first = await submit(nats_bus, body, key)
    retried = await submit(nats_bus, body, key)
    assert retried == first
    assert first["result"]["application_id"]
    assert await announced(nats_bus, content["enterprise"]["uscc"]) == 1


async def test_concurrent_duplicates_of_a_submit_get_one_application(nats_bus: Bus) -> None:
    content = application()
    body, key = json.dumps(content).encode(), str(uuid.uuid4())
    replies = await asyncio.gather(*(submit(nats_bus, body, key) for _ in range(6)))
    answered = [reply for reply in replies if "result" in reply]
    assert len({reply["result"]["application_id"] for reply in answered}) == 1
    waiting = [reply for reply in replies if "result" not in reply]
    assert {reply["error"]["code"] for reply in waiting} <= {"in_progress"}
    assert await submit(nats_bus, body, key) == answered[0]
    assert await announced(nats_bus, content["enterprise"]["uscc"]) == 1


async def test_the_same_key_with_another_body_is_refused(nats_bus: Bus) -> None:
    key = str(uuid.uuid4())
    first = application()
    assert "result" in await submit(nats_bus, json.dumps(first).encode(), key)
    other = application()
    reply = await submit(nats_bus, json.dumps(other).encode(), key)
    assert reply["error"]["code"] == "idempotency_key_reused"
    assert reply["error"]["fields"][0]["path"] == IDEMPOTENCY_HEADER
    assert await announced(nats_bus, other["enterprise"]["uscc"]) == 0


def test_swctl_run_again_with_the_same_idempotency_key_prints_the_same_application(
    platform: Platform, tmp_path: Any
) -> None:
    swctl = Swctl(platform.config.nats_url, tmp_path / "swctl", platform.config.data_dir)
    path = tmp_path / "application.json"
    path.write_text(json.dumps(application()), encoding="utf-8")
    key = f"script-{uuid.uuid4()}"
    first = swctl("--json", "--idempotency-key", key, "register", "cardless", "--file", str(path))
    again = swctl("register", "cardless", "--file", str(path), "--json", "--idempotency-key", key)
    assert first.code == 0, first.stderr
    assert again.code == 0, again.stderr
    assert again.json()["application_id"] == first.json()["application_id"]
    fresh = swctl("--json", "register", "cardless", "--file", str(path))
    assert fresh.json()["error"]["code"] == "conflict"  # a new key: a second submission


async def test_a_malformed_key_is_refused_naming_the_header_and_submits_nothing(
    nats_bus: Bus,
) -> None:
    content = application()
    reply = await submit(nats_bus, json.dumps(content).encode(), "not a key!")
    assert reply["error"]["code"] == "invalid"
    assert [field["path"] for field in reply["error"]["fields"]] == [IDEMPOTENCY_HEADER]
    assert await announced(nats_bus, content["enterprise"]["uscc"]) == 0
