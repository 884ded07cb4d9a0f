"""Requests answered on plain nats-py subscriptions (`rpc.Answers`), against a real nats-server:
the reply envelope and its correlation id, requests side by side, and a drain that lets those
under way finish."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel
from singlewindow.contracts.endpoints import Audience, Endpoint
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.wire import Request
from singlewindow.runtime.idempotency import Idempotency
from singlewindow.runtime.rpc import Answers
from singlewindow.swctl.platform import nats_server_binary

from tests.support.platform import free_port

pytestmark = pytest.mark.integration


class Wait(Request):
    name: str


class Waited(BaseModel):
    name: str


WAIT = Endpoint("test", "wait", Wait, Waited, Audience.PUBLIC)


class Gate:
    """A handler that holds every request until the test opens it."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.waiting = 0
        self.woken = 0
        self._arrivals = asyncio.Condition()

    async def handle(self, request: Wait) -> Waited:
        if request.name == "nobody":
            raise DomainError(ErrorCode.NOT_FOUND, "no such person")
        if request.name != "quick":
            async with self._arrivals:
                self.waiting += 1
                self._arrivals.notify_all()
            await self.opened.wait()
        return Waited(name=request.name)

    async def holding(self, count: int) -> None:
        """Return once `count` requests are held."""
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: self.waiting >= count)

    def after(self) -> None:
        self.woken += 1


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    for _ in range(50):
        try:
            client = await nats.connect(nats_url, connect_timeout=1, max_reconnect_attempts=0)
            break
        except Exception:
            await asyncio.sleep(0.1)
    else:
        raise RuntimeError("nats-server did not start")
    yield client
    await client.close()


def answers(gate: Gate, limit: int = 16) -> Answers:
    idempotency: Idempotency = None  # type: ignore[assignment]  # no Idempotency-Key is sent
    served = Answers(idempotency, gate.after, limit=limit)
    served.add(WAIT, gate.handle)
    return served


async def ask(nc: NatsClient, name: str, **headers: str) -> tuple[dict[str, object], str]:
    reply = await nc.request(
        WAIT.subject, json.dumps({"name": name}).encode(), timeout=5, headers=headers or None
    )
    return json.loads(reply.data), (reply.headers or {}).get("correlation_id", "")


async def test_the_reply_is_the_envelope_with_the_requests_correlation_id(nc: NatsClient) -> None:
    gate = Gate()
    served = answers(gate)
    await served.subscribe(nc)
    try:
        assert await ask(nc, "quick", correlation_id="c-1") == (
            {"result": {"name": "quick"}},
            "c-1",
        )
        refused, made = await ask(nc, "nobody")
        assert refused == {
            "error": {"code": "not_found", "message": "no such person", "fields": []}
        }
        assert made  # a request without one gets a fresh correlation id
        malformed = await nc.request(WAIT.subject, b"not json", timeout=5)
        assert json.loads(malformed.data)["error"]["code"] == "malformed"
        assert gate.woken == 3  # the outbox is woken after every request, refused or not
    finally:
        await served.drain(1)


async def test_requests_are_answered_side_by_side_up_to_the_limit(nc: NatsClient) -> None:
    gate = Gate()
    served = answers(gate, limit=3)
    await served.subscribe(nc)
    try:
        held = [asyncio.create_task(ask(nc, f"held-{n}")) for n in range(3)]
        await gate.holding(3)
        # All three slots are taken: a fourth request waits, in NATS, for one of them.
        fourth = asyncio.create_task(ask(nc, "quick"))
        await asyncio.sleep(0.2)
        assert not fourth.done()
        gate.opened.set()
        assert [(await task)[0] for task in held] == [
            {"result": {"name": f"held-{n}"}} for n in range(3)
        ]
        assert (await fourth)[0] == {"result": {"name": "quick"}}
    finally:
        await served.drain(1)


async def test_a_slow_request_does_not_hold_up_a_quick_one(nc: NatsClient) -> None:
    gate = Gate()
    served = answers(gate)
    await served.subscribe(nc)
    try:
        slow = asyncio.create_task(ask(nc, "slow"))
        await gate.holding(1)
        assert (await ask(nc, "quick"))[0] == {"result": {"name": "quick"}}
        assert not slow.done()
        gate.opened.set()
        assert (await slow)[0] == {"result": {"name": "slow"}}
    finally:
        await served.drain(1)


async def test_draining_stops_new_requests_and_finishes_those_under_way(nc: NatsClient) -> None:
    gate = Gate()
    served = answers(gate)
    await served.subscribe(nc)
    under_way = asyncio.create_task(ask(nc, "under-way"))
    await gate.holding(1)
    draining = asyncio.create_task(served.drain(5))
    await asyncio.sleep(0.1)
    assert not draining.done()  # it waits for the request under way
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request(WAIT.subject, b'{"name": "quick"}', timeout=1)
    gate.opened.set()
    await draining
    assert (await under_way)[0] == {"result": {"name": "under-way"}}
