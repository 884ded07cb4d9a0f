"""Answering a request: parse it, run the handler, reply with its result or typed refusal, and
count and log what happened. The envelope itself is `singlewindow.contracts.wire`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter, Histogram
from pydantic import BaseModel
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.errors import DomainError, ErrorBody, ErrorCode
from singlewindow.contracts.wire import encode_error, encode_result, parse_request
from singlewindow.runtime.idempotency import Idempotency, idempotency_key
from singlewindow.runtime.observability import (
    REQUEST_SECONDS,
    REQUESTS,
    bind_correlation_id,
    current_correlation_id,
)

log = structlog.get_logger("singlewindow.rpc")

RequestT = TypeVar("RequestT", bound=BaseModel)
Handle = Callable[[Any], Awaitable[BaseModel | None]]
"""A request handler with its service's dependencies bound: the typed request in, the reply out."""

REQUEST_CONCURRENCY = 16
"""Requests one replica handles at once (`Answers`)."""

CORRELATION_HEADER = "correlation_id"
"""The NATS header a request's correlation id travels in (the one FastStream used)."""


async def respond(
    endpoint: Endpoint[RequestT, Any],
    body: bytes,
    correlation_id: str | None,
    handle: Callable[[RequestT], Awaitable[BaseModel | None]],
    *,
    headers: Mapping[str, str] | None = None,
    idempotency: Idempotency | None = None,
) -> bytes:
    """Parse `body` as the endpoint's request, run `handle`, and encode its result or refusal.

    With `idempotency` and an `Idempotency-Key` header on a state-changing endpoint, a retry
    gets the first answer (`idempotency.py`)."""
    bind_correlation_id(correlation_id)
    started = time.perf_counter()
    outcome = "ok"
    subject = endpoint.subject
    try:
        key = idempotency_key(endpoint, headers) if idempotency is not None else None
        request = parse_request(body, endpoint.request)
        if key is None or idempotency is None:
            return encode_result(await handle(request))

        async def run() -> bytes:
            return encode_result(await handle(request))

        caller = getattr(request, "token", None)
        return await idempotency.answer(endpoint, key, caller, body, run)
    except DomainError as exc:
        outcome = exc.code.value
        log.info("request refused", subject=subject, code=exc.code.value, reason=exc.message)
        return encode_error(exc.body())
    except Exception:
        outcome = ErrorCode.INTERNAL.value
        log.exception("request failed", subject=subject)
        return encode_error(
            ErrorBody(
                code=ErrorCode.INTERNAL, message="internal error; the request was not applied"
            )
        )
    finally:
        _requests(subject, outcome).inc()
        _request_seconds(subject).observe(time.perf_counter() - started)


# A metric's child per label values, looked up once: `labels()` costs as much as the rest of
# counting a request (its keyword handling and lock), on every request.
@functools.cache
def _requests(subject: str, outcome: str) -> Counter:
    return REQUESTS.labels(subject=subject, outcome=outcome)


@functools.cache
def _request_seconds(subject: str) -> Histogram:
    return REQUEST_SECONDS.labels(subject=subject)


class Answers:
    """The endpoints a service answers, each a plain nats-py queue subscription.

    FastStream's subscriber pipeline (its middlewares, context and decoding around every
    message) cost about as much CPU as a cheap query itself, so requests skip it: each message
    goes straight to `respond` in a task of its own, at most `limit` at once (a login waiting
    for argon2 must not hold up the rest; the hashing pool, not this number, bounds the CPU and
    memory that password work takes). Beyond that the subscription stops reading, and NATS
    queues the requests. Events skip it too (`pull.PullConsumer`).

    The wire is as it was: the reply is the envelope alone, sent to the request's reply
    subject with the request's `correlation_id` header (a new one if it had none).
    """

    def __init__(
        self,
        idempotency: Idempotency,
        after: Callable[[], None],
        *,
        limit: int = REQUEST_CONCURRENCY,
    ) -> None:
        self._idempotency = idempotency
        self._after = after
        """Run once each request is answered (the outbox's wake-up)."""
        self._limit = limit
        self._served: list[tuple[Endpoint[Any, Any], Handle]] = []
        self._subscriptions: list[Subscription] = []
        self._running: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None

    def add(self, endpoint: Endpoint[Any, Any], handle: Handle) -> None:
        """Answer `endpoint` with `handle` once subscribed."""
        self._served.append((endpoint, handle))

    async def subscribe(self, nc: NatsClient) -> None:
        """Start answering every endpoint added, on `nc` (the broker's connection)."""
        self._slots = asyncio.Semaphore(self._limit)
        for endpoint, handle in self._served:
            subscription = await nc.subscribe(
                endpoint.subject, queue=endpoint.queue, cb=self._receiver(nc, endpoint, handle)
            )
            self._subscriptions.append(subscription)

    async def drain(self, within: float) -> None:
        """Stop taking requests, and give those already sent to it `within` seconds to be
        answered: those under way, and those NATS delivered but it has not yet read."""

        async def finish() -> None:
            await asyncio.gather(*(_drained(subscription) for subscription in self._subscriptions))
            while self._running:
                await asyncio.wait(set(self._running))

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finish(), within)
        self._subscriptions.clear()

    def _receiver(
        self, nc: NatsClient, endpoint: Endpoint[Any, Any], handle: Handle
    ) -> Callable[[Msg], Awaitable[None]]:
        async def receive(message: Msg) -> None:
            assert self._slots is not None
            await self._slots.acquire()
            task = asyncio.create_task(self._answer(nc, endpoint, handle, message))
            self._running.add(task)
            task.add_done_callback(self._finished)

        return receive

    async def _answer(
        self, nc: NatsClient, endpoint: Endpoint[Any, Any], handle: Handle, message: Msg
    ) -> None:
        headers = message.headers or {}
        try:
            reply = await respond(
                endpoint,
                message.data,
                headers.get(CORRELATION_HEADER),
                handle,
                headers=headers,
                idempotency=self._idempotency,
            )
        finally:
            self._after()
        if message.reply:
            correlation_id = current_correlation_id() or ""
            try:
                await nc.publish(message.reply, reply, headers={CORRELATION_HEADER: correlation_id})
            except Exception as exc:  # the connection closed under it: the caller times out
                log.warning("reply not sent", subject=endpoint.subject, error=repr(exc))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        assert self._slots is not None
        self._slots.release()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("request task failed", error=repr(error))


async def _drained(subscription: Subscription) -> None:
    with contextlib.suppress(Exception):  # a connection already closed: nothing more comes
        await subscription.drain()  # type: ignore[no-untyped-call]
