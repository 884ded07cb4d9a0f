"""Bad input anywhere on the bus gets a clear error reply, changes nothing, and crashes nothing."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from singlewindow.contracts import accounts, registration, review
from singlewindow.contracts.endpoints import Endpoint, endpoints_of
from singlewindow.swctl.platform import Platform, http_json

from tests.support.platform import Bus, bus, caller_of, connect, eventually

ENDPOINTS = [
    endpoint for contract in (registration, review, accounts) for endpoint in endpoints_of(contract)
]
"""Every endpoint of the services this platform runs (card-gateway has its own tests)."""
DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi"

BAD_BODIES = [
    (b"{not json", "malformed", "not valid JSON"),
    (b"", "malformed", "not valid JSON"),
    (b"\xff\xfe\x00", "malformed", "not valid JSON"),
    (b"[1, 2, 3]", "malformed", "JSON object"),
    (b"[" * 60_000, "malformed", "not valid JSON"),
    (b'{"token": ' * 6_000, "malformed", "not valid JSON"),
    (b'{"token": "\\ud800", "application_id": "\\udfff"}', "malformed", "not valid JSON"),
    (b'"a string"', "malformed", "JSON object"),
    (b'{"token": 42, "application_id": 7, "task_id": [], "uscc": {}}', "invalid", "invalid fields"),
    (b'{"unexpected": true}', "invalid", "invalid fields"),
    (b"{" + b'"x":"' + b"a" * 1_000_000 + b'"}', "too_large", "limit is 65536 bytes"),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.subject)
async def test_every_request_subject_answers_bad_bodies_with_a_typed_error(
    platform: Platform, endpoint: Endpoint[Any, Any]
) -> None:
    async with bus(platform, caller_of(endpoint)) as caller:
        for body, code, message in BAD_BODIES:
            async with asyncio.timeout(5):
                reply = await caller.raw(endpoint, body)
            assert set(reply) == {"error"}, (endpoint.subject, body[:40], reply)
            assert reply["error"]["code"] == code, (endpoint.subject, body[:40], reply)
            assert message in reply["error"]["message"]


async def test_wrong_types_name_each_field(nats_bus: Bus) -> None:
    reply = await nats_bus.raw(
        review.DECIDE_TASK, b'{"token": 7, "task_id": 1, "decision": "maybe", "reviewer": null}'
    )
    paths = {field["path"] for field in reply["error"]["fields"]}
    assert paths == {"token", "task_id", "decision", "reviewer"}


async def test_an_unknown_subject_is_refused_at_once_not_left_hanging(platform: Platform) -> None:
    # Nobody may send an undeclared request: NATS refuses it before any service sees it.
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error))

    nc = await connect(platform, "portal", error_cb=on_error)
    try:
        await nc.publish("sw.rpc.registration.no-such-operation", b"{}", reply="_INBOX_portal.x")
        await nc.flush()
        # The server's -ERR reaches the error callback in a task of its own, maybe after the PONG.
        await eventually(lambda: asyncio.sleep(0, result=errors or None), within=5)
    finally:
        await nc.close()
    assert errors == [
        'nats: permissions violation for publish to "sw.rpc.registration.no-such-operation"'
    ]


async def test_services_are_still_up_and_ready_after_all_of_it(
    platform: Platform, nats_bus: Bus
) -> None:
    for endpoint in ENDPOINTS:
        async with bus(platform, caller_of(endpoint)) as caller:
            for body, _code, _message in BAD_BODIES:
                await caller.raw(endpoint, body)
    assert platform.exited() == {}
    for service, port in platform.config.service_ports.items():
        ready = http_json(f"http://127.0.0.1:{port}/readyz")
        assert ready is not None, service
        assert ready["status"] == "ready", (service, ready)


async def test_refusals_show_in_each_services_metrics(platform: Platform, nats_bus: Bus) -> None:
    await nats_bus.raw(registration.SHOW_APPLICATION, b"{oops")
    port = platform.config.service_ports["registration"]
    metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    assert (
        'sw_requests_total{outcome="malformed",subject="sw.rpc.registration.application.show"}'
        in metrics
    )


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


async def test_each_service_serves_the_asyncapi_document_its_declarations_make(
    platform: Platform,
) -> None:
    for service, port in platform.config.service_ports.items():
        served = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/docs/asyncapi")
        committed = (DOCS / f"{service}.json").read_text("utf-8")
        assert json.loads(served) == json.loads(committed), service
