"""Bad input anywhere on the bus gets a clear error reply, changes nothing, and crashes nothing."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from nats.errors import NoRespondersError
from singlewindow.shared.contracts import accounts, registration, review
from singlewindow.swctl.platform import Platform, http_json

from tests.support.platform import Bus

REQUEST_SUBJECTS = [
    registration.SUBMIT_CARDLESS,
    registration.RESUBMIT_CARDLESS,
    registration.SHOW_APPLICATION,
    registration.ONBOARDING_DETAILS,
    review.LIST_TASKS,
    review.SHOW_TASK,
    review.DECIDE_TASK,
    accounts.LOGIN_PASSWORD,
    accounts.LOGOUT,
    accounts.SHOW_SESSION,
    accounts.SHOW_ACCOUNT,
    accounts.SCOPE_OPTIONS,
    accounts.SET_SCOPE,
    accounts.ONBOARDING_CHECK,
    accounts.CARD_CHALLENGE,
    accounts.CARD_STATUS,
    accounts.LOGIN_CARD,
    accounts.REGISTER_CARD_ADMIN,
    accounts.ADD_CARD_OPERATOR,
]

BAD_BODIES = [
    (b"{not json", "malformed", "not valid JSON"),
    (b"", "malformed", "not valid JSON"),
    (b"\xff\xfe\x00", "malformed", "not valid JSON"),
    (b"[1, 2, 3]", "malformed", "JSON object"),
    (b'"a string"', "malformed", "JSON object"),
    (b'{"token": 42, "application_id": 7, "task_id": [], "uscc": {}}', "invalid", "invalid fields"),
    (b'{"unexpected": true}', "invalid", "invalid fields"),
    (b"{" + b'"x":"' + b"a" * 1_000_000 + b'"}', "too_large", "limit is 65536 bytes"),
]


@pytest.mark.parametrize("subject", REQUEST_SUBJECTS)
async def test_every_request_subject_answers_bad_bodies_with_a_typed_error(
    nats_bus: Bus, subject: str
) -> None:
    for body, code, message in BAD_BODIES:
        reply = await nats_bus.raw(subject, body)
        assert set(reply) == {"error"}, (subject, body[:40], reply)
        assert reply["error"]["code"] == code, (subject, body[:40], reply)
        assert message in reply["error"]["message"]


async def test_wrong_types_name_each_field(nats_bus: Bus) -> None:
    reply = await nats_bus.raw(
        review.DECIDE_TASK, b'{"task_id": 1, "decision": "maybe", "reviewer": null}'
    )
    paths = {field["path"] for field in reply["error"]["fields"]}
    assert paths == {"task_id", "decision", "reviewer"}


async def test_an_unknown_subject_is_refused_at_once_not_left_hanging(nats_bus: Bus) -> None:
    async with asyncio.timeout(2):
        with pytest.raises(NoRespondersError):
            await nats_bus.nc.request("sw.rpc.registration.no-such-operation", b"{}", timeout=5)


async def test_services_are_still_up_and_ready_after_all_of_it(
    platform: Platform, nats_bus: Bus
) -> None:
    for subject in REQUEST_SUBJECTS:
        for body, _code, _message in BAD_BODIES:
            await nats_bus.raw(subject, body)
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
