"""A durable JetStream pull consumer's messages, handled one at a time as they arrive.

FastStream's pull subscriber (and nats-py's `fetch`) asks for a batch and waits until it is full
or the request expires, sends a probe and a lingering request per fetch, and hands each message
to a task of its own through its per-message pipeline. Here one task asks for up to `batch`
messages at a time with a pull request that expires after `expires` seconds, handles each one as
soon as it arrives, in the order JetStream delivers them, and asks again when the request is
used up or has expired. Acknowledgement stays the handler's (the inbox's) business.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError
from nats.js.api import Header, StatusCode

log = structlog.get_logger("singlewindow.pull")

__all__ = ["JetStreamDelivery", "PullConsumer"]

_FINISHED = frozenset(
    code.value for code in (StatusCode.NO_MESSAGES, StatusCode.REQUEST_TIMEOUT, StatusCode.CONFLICT)
)
"""Status codes after which a pull request delivers nothing more."""
_REFUSED = StatusCode.CONFLICT.value
"""The consumer refused the request (deleted, its leader changing, too many waiting)."""


class JetStreamDelivery:
    """A delivered JetStream message as the inbox takes it (`messaging.DeliveredMessage`)."""

    __slots__ = ("body", "raw_message")

    def __init__(self, message: Msg) -> None:
        self.raw_message = message
        self.body = message.data

    async def ack(self) -> None:
        await self.raw_message.ack()

    async def nack(self, delay: float | None = None) -> None:
        await self.raw_message.nak(delay=delay)


class PullConsumer:
    """Deliveries of the durable consumer `durable` on `stream`, to `handle`, one at a time."""

    def __init__(
        self,
        stream: str,
        durable: str,
        handle: Callable[[JetStreamDelivery], Awaitable[None]],
        *,
        batch: int = 10,
        expires: float = 5.0,
    ) -> None:
        self.stream, self.durable, self.handle = stream, durable, handle
        self.batch, self.expires = batch, expires
        self._task: asyncio.Task[None] | None = None
        self._handling = False
        self._stopping = False

    async def start(self, connection: NatsClient) -> None:
        """Subscribe to a delivery subject in the connection's own inbox and start asking."""
        deliver = connection.new_inbox()
        subscription = await connection.subscribe(deliver)
        self._task = asyncio.create_task(
            self._run(connection, subscription, deliver), name=f"pull {self.durable}"
        )

    async def _run(self, connection: NatsClient, subscription: Subscription, deliver: str) -> None:
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"
        request = json.dumps(
            {"batch": self.batch, "expires": int(self.expires * 1e9)}, separators=(",", ":")
        ).encode()
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                try:
                    await connection.publish(next_subject, request, reply=deliver)
                except ConnectionClosedError:
                    return
                except Exception as exc:  # disconnected: nats-py reconnects meanwhile
                    log.warning(
                        "pull request not sent; retrying", consumer=self.durable, error=repr(exc)
                    )
                    await asyncio.sleep(1.0)
                    continue
                # The request ends when `batch` messages came, a status says so, or it expired
                # (with a margin: a request lost in a reconnection ends here too).
                deadline = loop.time() + self.expires + 1.0
                received = 0
                while received < self.batch and not self._stopping:
                    try:
                        message = await subscription.next_msg(timeout=deadline - loop.time())
                    except TimeoutError:
                        break
                    status = _status(message)
                    if status is not None:
                        if status == _REFUSED:
                            log.warning("pull request refused", consumer=self.durable)
                            await asyncio.sleep(0.5)
                        if status in _FINISHED:
                            break
                        continue  # a heartbeat, or a status of an earlier request
                    received += 1
                    await self._handle(message)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _handle(self, message: Msg) -> None:
        self._handling = True
        try:
            await self.handle(JetStreamDelivery(message))
        except Exception as exc:
            # Not acknowledged: JetStream delivers it again after the consumer's ack wait.
            log.error("delivery not handled", consumer=self.durable, error=repr(exc))
        finally:
            self._handling = False

    async def stop(self, seconds: float) -> None:
        """Stop asking; let a message being handled finish (up to `seconds`), then end."""
        self._stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        if not self._handling:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, seconds)


def _status(message: Msg) -> str | None:
    """A status message's code (no body, a `Status` header), or None for a message."""
    if message.data or not message.headers:
        return None
    status: Any = message.headers.get(Header.STATUS)
    return None if status is None else str(status)
