"""swctl's idempotency keys on the wire, against a real nats-server and a responder the test
plays: a fresh key per state-changing command, the same key on its retry after a timeout, and
the key in the --json error when no reply came."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from singlewindow.contracts import accounts, registration
from singlewindow.contracts.endpoints import IDEMPOTENCY_HEADER
from singlewindow.contracts.errors import ErrorBody, ErrorCode
from singlewindow.contracts.registration import ApplicationState, SubmittedApplication
from singlewindow.contracts.wire import encode_error, encode_result
from singlewindow.swctl.platform import nats_server_binary

from tests.support.identifiers import application
from tests.support.platform import free_port
from tests.support.swctl import Result, Swctl

pytestmark = pytest.mark.integration


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A bare nats-server of the test's own."""
    port = free_port()
    with (tmp_path / "nats.log").open("w") as log:
        server = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


async def quiet(error: Exception) -> None:
    """The server may not listen yet: the fixture tries again."""


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    async def connected() -> NatsClient:
        while True:
            try:
                return await nats.connect(
                    nats_url, connect_timeout=1, allow_reconnect=False, error_cb=quiet
                )
            except Exception:
                await asyncio.sleep(0.05)

    client = await asyncio.wait_for(connected(), timeout=10)
    try:
        yield client
    finally:
        await client.close()


ANSWER = SubmittedApplication(
    application_id="app_0123456789abcdef",
    kind="cardless",
    uscc="91500000MA5U7X1C69",
    enterprise_name="重庆某某贸易有限公司",
    admin_account="admin_one",
    state=ApplicationState.PENDING,
    reason=None,
    attempt=1,
    submitted_at=datetime(2026, 1, 5, tzinfo=UTC),
    decided_at=None,
    claim_secret="a-claim-secret-of-the-test-0123456789",
)


IN_PROGRESS = encode_error(ErrorBody(code=ErrorCode.IN_PROGRESS, message="in progress"))


class Responder:
    """Plays a service on one subject: keeps each request, answers from the `answer_from`th
    (the ones before `busy_until` with `in_progress`)."""

    def __init__(self, answer_from: int | None, busy_until: int = 0) -> None:
        self.answer_from = answer_from
        self.busy_until = busy_until
        self.requests: list[Msg] = []

    async def handle(self, msg: Msg) -> None:
        self.requests.append(msg)
        if len(self.requests) < self.busy_until:
            await msg.respond(IN_PROGRESS)
        elif self.answer_from is not None and len(self.requests) >= self.answer_from:
            await msg.respond(encode_result(ANSWER))

    def keys(self) -> list[str | None]:
        return [(m.headers or {}).get(IDEMPOTENCY_HEADER) for m in self.requests]


async def run(swctl: Swctl, *args: str) -> Result:
    return await asyncio.to_thread(swctl, *args)


def application_file(tmp_path: Path) -> str:
    path = tmp_path / "application.json"
    path.write_text(json.dumps(application()), encoding="utf-8")
    return str(path)


async def test_a_timed_out_submit_is_sent_again_with_the_same_fresh_key(
    nc: NatsClient, nats_url: str, tmp_path: Path
) -> None:
    responder = Responder(answer_from=2)
    await nc.subscribe(registration.SUBMIT_CARDLESS.subject, cb=responder.handle)
    swctl = Swctl(nats_url, tmp_path / "swctl")
    result = await run(
        swctl, "--timeout", "0.5", "register", "cardless", "--file", application_file(tmp_path)
    )
    assert result.code == 0, result.stderr
    [first, second] = responder.keys()
    assert first is not None
    assert first == second
    assert uuid.UUID(first)
    again = await run(swctl, "register", "cardless", "--file", application_file(tmp_path))
    assert again.code == 0, again.stderr
    assert responder.keys()[2] not in (None, first)  # each command its own key


async def test_no_reply_at_all_prints_the_key_to_retry_with(
    nc: NatsClient, nats_url: str, tmp_path: Path
) -> None:
    responder = Responder(answer_from=None)
    await nc.subscribe(registration.SUBMIT_CARDLESS.subject, cb=responder.handle)
    swctl = Swctl(nats_url, tmp_path / "swctl")
    result = await run(
        swctl,
        "--json",
        "--timeout",
        "0.3",
        "--idempotency-key",
        "nightly-import-0042",
        "register",
        "cardless",
        "--file",
        application_file(tmp_path),
    )
    error = result.json()["error"]
    assert (error["code"], error["idempotency_key"]) == ("unreachable", "nightly-import-0042")
    assert "--idempotency-key nightly-import-0042" in error["message"]
    assert responder.keys() == ["nightly-import-0042", "nightly-import-0042"]


async def test_a_request_whose_key_is_in_progress_is_sent_again_until_it_is_answered(
    nc: NatsClient, nats_url: str, tmp_path: Path
) -> None:
    responder = Responder(answer_from=1, busy_until=3)
    await nc.subscribe(registration.SUBMIT_CARDLESS.subject, cb=responder.handle)
    swctl = Swctl(nats_url, tmp_path / "swctl")
    result = await run(
        swctl, "--json", "register", "cardless", "--file", application_file(tmp_path)
    )
    assert result.code == 0, result.stderr
    assert result.json()["application_id"] == ANSWER.application_id
    assert len(set(responder.keys())) == 1
    assert len(responder.keys()) == 3


async def test_a_key_still_in_progress_when_time_is_up_is_printed(
    nc: NatsClient, nats_url: str, tmp_path: Path
) -> None:
    responder = Responder(answer_from=None, busy_until=1000)
    await nc.subscribe(registration.SUBMIT_CARDLESS.subject, cb=responder.handle)
    swctl = Swctl(nats_url, tmp_path / "swctl")
    result = await run(
        swctl,
        "--json",
        "--timeout",
        "0.5",
        "--idempotency-key",
        "nightly-import-0043",
        "register",
        "cardless",
        "--file",
        application_file(tmp_path),
    )
    error = result.json()["error"]
    assert (error["code"], error["idempotency_key"]) == ("in_progress", "nightly-import-0043")


async def test_a_read_carries_no_key_and_is_not_sent_twice(
    nc: NatsClient, nats_url: str, tmp_path: Path
) -> None:
    responder = Responder(answer_from=None)
    await nc.subscribe(accounts.SHOW_SESSION.subject, cb=responder.handle)
    swctl = Swctl(nats_url, tmp_path / "swctl")
    swctl.config_dir.mkdir()
    (swctl.config_dir / "session.json").write_text(json.dumps({"token": "a-session-token"}))
    result = await run(swctl, "--json", "--timeout", "0.3", "whoami")
    assert "idempotency_key" not in result.json()["error"]
    assert responder.keys() == [None]


def test_a_bad_idempotency_key_is_a_usage_error(nats_url: str, tmp_path: Path) -> None:
    swctl = Swctl(nats_url, tmp_path / "swctl")
    result = swctl("--json", "--idempotency-key", "no spaces", "whoami")
    assert result.json()["error"]["code"] == "usage"
    assert "--idempotency-key" in result.json()["error"]["message"]
