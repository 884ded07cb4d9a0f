"""No lost or doubled effects: a transactional outbox, an inbox of processed events, dead letters.

A state change and the event announcing it commit in one transaction (`stage`); the relay then
publishes the event to JetStream with `Nats-Msg-Id` = event id, so a publish repeated after a
crash is dropped by the server's de-duplication. A consumer records each event id in its inbox in
the transaction of its effect, so a redelivered event has no second effect. A consumer whose effect
keeps failing is redelivered with growing delays, then dead-lettered where an operator can see and
replay it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

import structlog
from nats.js.api import ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from singlewindow.contracts.bus import DEAD_LETTER_STREAM
from singlewindow.contracts.events import CONTENT_TYPE, CloudEvent, StreamSpec
from singlewindow.runtime.clock import Clock
from singlewindow.runtime.db import Database, IntegrityError
from singlewindow.runtime.observability import (
    EVENTS_CONSUMED,
    OUTBOX_PENDING,
    OUTBOX_PUBLISHED,
    bind_correlation_id,
)
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.messaging")

MAX_DELIVER = 6
"""Deliveries of one event before it is dead-lettered."""
REDELIVERY_DELAYS = (0.5, 2.0, 5.0, 15.0, 30.0)
"""Seconds to wait before redelivery, by attempt; the last repeats."""
PUBLISH_ACK_SECONDS = 5.0
"""How long the relay waits for JetStream to acknowledge a batch of events."""
DUPLICATE_WINDOW_SECONDS = 24 * 3600
"""How long JetStream remembers an event id: longer than any plausible relay outage."""


def outbox_table(metadata: MetaData) -> Table:
    """The outbox: events committed with their state change, waiting to be relayed."""
    if "outbox" in metadata.tables:
        return metadata.tables["outbox"]
    return Table(
        "outbox",
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("nats_subject", String(200), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def inbox_table(metadata: MetaData) -> Table:
    """The inbox: ids of events whose effect has been applied, per consumer."""
    if "inbox" in metadata.tables:
        return metadata.tables["inbox"]
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )


def create_messaging_tables(connection: Connection) -> None:
    """Create the outbox and inbox tables, as they are now, in a service's first migration."""
    metadata = MetaData()
    outbox_table(metadata)
    inbox_table(metadata)
    metadata.create_all(connection)


_staged: ContextVar[bool] = ContextVar("outbox_staged", default=False)
"""Whether the current task has staged events the relay has not been told of."""


class Outbox:
    """Stages events in the caller's transaction; relays them to JetStream once committed."""

    def __init__(self, table: Table, clock: Clock) -> None:
        self.table = table
        self.clock = clock
        self._wake = asyncio.Event()
        # Built once: a statement is cheaper to run than to build (PERFORMANCE.md).
        self._insert = insert(table)
        columns = table.c
        self._pending = (
            select(columns.seq, columns.event_id, columns.nats_subject, columns.payload)
            .order_by(columns.seq)
            .limit(bindparam("batch"))
        )
        self._delete = delete(table).where(columns.seq.in_(bindparam("seqs", expanding=True)))

    async def stage(self, connection: AsyncConnection, subject: str, event: CloudEvent) -> None:
        """Add `event` to the outbox inside the current transaction."""
        _staged.set(True)
        await connection.execute(
            self._insert,
            {
                "event_id": event.id,
                "nats_subject": subject,
                "payload": event.model_dump_json(exclude_none=True).encode(),
                "created_at": self.clock.now(),
            },
        )

    def wake(self) -> None:
        """Tell the relay that the current task has committed events, if it staged any."""
        if _staged.get():
            _staged.set(False)
            self._wake.set()

    async def relay(
        self,
        db: Database,
        js: JetStreamContext,
        *,
        idle_seconds: float = 1.0,
        batch: int = 100,
    ) -> None:
        """Publish committed events in order, forever; each row is deleted once JetStream has it."""
        while True:
            # Cleared before looking, so a commit made while the relay publishes is not missed.
            self._wake.clear()
            try:
                sent = await self.relay_once(db, js, batch=batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay failed; retrying", error=str(exc))
                sent = 0
                await asyncio.sleep(idle_seconds)
            if sent < batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=idle_seconds)

    async def relay_once(self, db: Database, js: JetStreamContext, *, batch: int = 100) -> int:
        """Publish up to `batch` pending events; return how many went out."""
        async with db.reading() as connection:
            rows = (await connection.execute(self._pending, {"batch": batch})).all()
        published = await self._publish(js, rows)
        if published:
            async with db.transaction() as connection:
                await connection.execute(self._delete, {"seqs": published})
            OUTBOX_PUBLISHED.inc(len(published))
        if len(rows) == batch:  # a backlog: worth counting
            async with db.reading() as connection:
                pending = await connection.scalar(select(func.count()).select_from(self.table))
            OUTBOX_PENDING.set(pending or 0)
        else:
            OUTBOX_PENDING.set(0)
        return len(published)

    async def _publish(self, js: JetStreamContext, rows: Sequence[Any]) -> list[int]:
        """Publish the rows together, acknowledgements awaited at once; return the sequence
        numbers of those stored, up to the first that was not (the rest go again, in order)."""
        acks = [
            await js.publish_async(
                row.nats_subject,
                row.payload,
                headers={"Nats-Msg-Id": row.event_id, "content-type": CONTENT_TYPE},
            )
            for row in rows
        ]
        try:
            async with asyncio.timeout(PUBLISH_ACK_SECONDS):
                outcomes = await asyncio.gather(*acks, return_exceptions=True)
        except TimeoutError:
            for ack in acks:
                ack.cancel()
            outcomes = [ack.result() if ack.done() else TimeoutError() for ack in acks]
        published: list[int] = []
        for row, outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("event not stored; will publish again", error=repr(outcome))
                break
            published.append(row.seq)
        return published


async def ensure_streams(js: JetStreamContext, *streams: StreamSpec, replicas: int = 1) -> None:
    """Create each stream, or bring its configuration up to date; safe to repeat."""
    for spec in (*streams, DEAD_LETTER_STREAM):
        config = StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            description=spec.description,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            num_replicas=replicas,
        )
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


def consumer_config(durable: str, filter_subject: str) -> ConsumerConfig:
    """A durable, explicitly acknowledged consumer with bounded redelivery."""
    return ConsumerConfig(
        durable_name=durable,
        filter_subject=filter_subject,
        max_deliver=MAX_DELIVER,
        ack_wait=30,
    )


class DeliveredMessage(Protocol):
    """What the consumer needs of a JetStream message (FastStream's NatsMessage has it)."""

    @property
    def body(self) -> bytes: ...
    @property
    def raw_message(self) -> Any: ...
    async def ack(self) -> None: ...
    async def nack(self, delay: float | None = None) -> None: ...


Effect = Callable[[AsyncConnection, CloudEvent], Awaitable[None]]
Prepare = Callable[[CloudEvent], Awaitable[None]]
"""Work an effect needs done before its transaction opens, such as asking another service."""


class Inbox:
    """Applies each event at most once per consumer, redelivering and dead-lettering failures."""

    def __init__(
        self,
        table: Table,
        db: Database,
        outbox: Outbox,
        clock: Clock,
        redelivery_delays: tuple[float, ...] = REDELIVERY_DELAYS,
    ) -> None:
        self.table = table
        self.db = db
        self.outbox = outbox
        self.clock = clock
        self._insert = insert(table)
        self.redelivery_delays = redelivery_delays

    async def consume(
        self,
        consumer: str,
        message: DeliveredMessage,
        effect: Effect,
        dead_letter: Callable[[str, DeliveredMessage, str], Awaitable[None]],
        prepare: Prepare | None = None,
    ) -> None:
        """Apply `effect` to the event in `message` once, then acknowledge it.

        `prepare` runs first, outside any transaction: a request to another service must not
        hold a write transaction open (on SQLite, every other write would wait behind it).
        """
        try:
            event = CloudEvent.model_validate_json(message.body)
        except ValidationError as exc:
            EVENTS_CONSUMED.labels(consumer=consumer, outcome="malformed").inc()
            await dead_letter(consumer, message, f"not a CloudEvent: {exc.error_count()} errors")
            await message.ack()
            return
        bind_correlation_id(event.correlationid)
        try:
            if prepare is not None:
                await prepare(event)
            applied = await self._apply_once(consumer, event, effect)
        except Exception as exc:
            attempt = message.raw_message.metadata.num_delivered
            if attempt >= MAX_DELIVER:
                EVENTS_CONSUMED.labels(consumer=consumer, outcome="dead_lettered").inc()
                log.error(
                    "event dead-lettered",
                    consumer=consumer,
                    event_id=event.id,
                    event_type=event.type,
                    error=repr(exc),
                )
                await dead_letter(consumer, message, repr(exc))
                await message.ack()
            else:
                delay = self.redelivery_delays[min(attempt, len(self.redelivery_delays)) - 1]
                EVENTS_CONSUMED.labels(consumer=consumer, outcome="retried").inc()
                log.warning(
                    "event effect failed; will redeliver",
                    consumer=consumer,
                    event_id=event.id,
                    attempt=attempt,
                    delay=delay,
                    error=repr(exc),
                )
                await message.nack(delay=delay)
            return
        EVENTS_CONSUMED.labels(
            consumer=consumer, outcome="applied" if applied else "duplicate"
        ).inc()
        log.info(
            "event consumed",
            consumer=consumer,
            event_id=event.id,
            event_type=event.type,
            duplicate=not applied,
        )
        await message.ack()

    async def apply_once(self, consumer: str, event: CloudEvent, effect: Effect) -> bool:
        """Apply `effect` to `event` unless `consumer` had; whether it did now (a dead letter
        replayed by an operator comes this way)."""
        return await self._apply_once(consumer, event, effect)

    async def _apply_once(self, consumer: str, event: CloudEvent, effect: Effect) -> bool:
        try:
            async with self.db.transaction() as connection:
                # Recorded first, so an event already applied fails here on the primary key,
                # before its effect runs again, without a look-up for every event.
                await connection.execute(
                    self._insert,
                    {"consumer": consumer, "event_id": event.id, "processed_at": self.clock.now()},
                )
                await effect(connection, event)
        except IntegrityError:
            # The event was applied before (a redelivery, or another replica that committed
            # first), or the effect broke a constraint of its own: the inbox tells which.
            async with self.db.reading() as connection:
                seen = await connection.scalar(
                    select(func.count())
                    .select_from(self.table)
                    .where(self.table.c.consumer == consumer, self.table.c.event_id == event.id)
                )
            if seen:
                return False
            raise
        self.outbox.wake()
        return True


def dead_letter_publisher(
    js: JetStreamContext, service: str
) -> Callable[[str, DeliveredMessage, str], Awaitable[None]]:
    """Publish a failed message, with why it failed, to the dead-letter stream."""

    async def publish(consumer: str, message: DeliveredMessage, reason: str) -> None:
        raw = message.raw_message
        metadata = raw.metadata
        headers = {
            "Sw-Dead-Letter-Reason": reason[:500],
            "Sw-Original-Subject": raw.subject,
            "Sw-Original-Stream": metadata.stream,
            "Sw-Original-Sequence": str(metadata.sequence.stream),
            "Sw-Consumer": consumer,
        }
        await js.publish(f"sw.deadletter.{service}.{consumer}", message.body, headers=headers)

    return publish
