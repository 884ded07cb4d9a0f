"""No lost or doubled effects: a transactional outbox, an inbox of processed events, dead letters.

A state change and the event announcing it commit in one transaction (`stage`); the relay then
publishes the event to JetStream with `Nats-Msg-Id` = event id, so a publish repeated after a
crash is dropped by the server's de-duplication. A consumer records each event id in its inbox in
the transaction of its effect, so a redelivered event has no second effect. A consumer whose effect
keeps failing is redelivered with growing delays, then dead-lettered where an operator can see and
replay it, and acknowledged only once the dead letter is stored. An outbox row JetStream keeps
refusing (no stream takes its subject, or its stream is full) is parked: kept in the table, marked,
and dead-lettered, while the rows of other subjects go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from nats.js.api import ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import (
    APIError,
    NoStreamResponseError,
    NotFoundError,
)
from pydantic import ValidationError
from singlewindow.contracts.bus import DEAD_LETTER_STREAM
from singlewindow.contracts.endpoints import Subscription
from singlewindow.contracts.events import CONTENT_TYPE, CloudEvent, Discard, StreamSpec
from singlewindow.runtime.clock import Clock
from singlewindow.runtime.db import Database, IntegrityError, as_utc
from singlewindow.runtime.observability import (
    EVENTS_CONSUMED,
    OUTBOX_PARKED,
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
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.messaging")

MAX_DELIVER = 6
"""Deliveries of one event before it is dead-lettered (the inbox's limit, not the server's)."""
REDELIVERY_DELAYS = (0.5, 2.0, 5.0, 15.0, 30.0)
"""Seconds to wait before redelivery, by attempt; the last repeats."""
PUBLISH_ACK_SECONDS = 5.0
"""How long the relay waits for JetStream to acknowledge an event."""
DUPLICATE_WINDOW_SECONDS = 24 * 3600
"""How long JetStream remembers an event id: longer than any plausible relay outage."""


FORGET_AFTER_SECONDS = 0.25
"""How long the relay keeps the rows JetStream has stored before deleting them, so that one
delete (a write transaction, an fsync on SQLite) carries the rows of several rounds. A row
published but not yet deleted when the service stops is published again at its next start, and
JetStream drops the copy (`Nats-Msg-Id`): the same as a crash between publishing and deleting."""
FOREIGN_ROW_SECONDS = 2.0
"""How long a relay leaves the rows another running replica staged to that replica's relay
before it publishes them too: each replica relays its own rows at once, and another's only once
it has had time to, so two replicas do not publish every row twice. Rows staged before the relay's
service started (by an earlier run, or by a replica) go out at once, in order with the rest."""
MINE_FORGOTTEN_AFTER_SECONDS = 60.0
"""How long a relay remembers that it staged a row: a row it staged that is still pending after
this (its stream refusing it, JetStream away) is older than `FOREIGN_ROW_SECONDS` and goes out
anyway, and a row whose transaction rolled back is never seen."""


PARK_AFTER_REFUSALS = 5
"""Times JetStream must refuse an outbox row (no stream takes its subject, or its stream
refuses it) before the relay parks the row, so that the events after it go on."""
PARK_AFTER_SECONDS = 60.0
"""And for how long at least since its first refusal: a stream briefly missing (being created,
its cluster electing a leader) is no reason to park."""


def outbox_table(metadata: MetaData) -> Table:
    """The outbox: events committed with their state change, waiting to be relayed."""
    if "outbox" in metadata.tables:
        return metadata.tables["outbox"]
    return Table("outbox", metadata, *_outbox_columns(), *outbox_parking_columns())


def _outbox_columns() -> tuple[Column[Any], ...]:
    return (
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("nats_subject", String(200), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def outbox_parking_columns() -> tuple[Column[Any], ...]:
    """What marks a row no stream accepts as parked: added to the outbox by a later migration."""
    return (
        Column("parked_at", DateTime(timezone=True), nullable=True),
        Column("parked_reason", String(500), nullable=True),
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
    """Create the outbox and inbox tables as a service's first migration made them (the
    parking columns come with `outbox_parking_columns`, in a migration of their own)."""
    metadata = MetaData()
    Table("outbox", metadata, *_outbox_columns())
    inbox_table(metadata)
    metadata.create_all(connection)


_staged: ContextVar[bool] = ContextVar("outbox_staged", default=False)
"""Whether the current task has staged events the relay has not been told of."""


def is_refusal(outcome: BaseException) -> bool:
    """Whether a publish failed because JetStream refused the message itself (no stream on its
    subject, or its stream said no: full, message too large), not because the bus or JetStream
    is unavailable."""
    if isinstance(outcome, NoStreamResponseError):
        return True
    return (
        isinstance(outcome, APIError)
        and outcome.err_code is not None
        and outcome.err_code not in _JETSTREAM_UNAVAILABLE
    )


_JETSTREAM_UNAVAILABLE = frozenset({10008, 10039, 10076})
"""JetStream's error codes for itself being unavailable (temporarily, not enabled for the
account, not enabled), which say nothing of the message."""


@dataclass
class _Refusals:
    """How often, since when, and why JetStream refused one outbox row."""

    first_at: datetime
    count: int = 0
    last: str = ""


class Outbox:
    """Stages events in the caller's transaction; relays them to JetStream once committed.

    Rows go out in order per subject, each subject on its own: a row JetStream keeps refusing
    holds back only the rows of its own subject, and only until it is parked (kept in the
    table, marked, and announced in the dead-letter stream for an operator).

    The table is the only source of what to publish (only committed rows are in it); what the
    relay remembers in memory decides only when: a row it staged goes out at once, another's
    after `FOREIGN_ROW_SECONDS`, and a row JetStream stored is deleted within
    `FORGET_AFTER_SECONDS`, several at a time, and not published again meanwhile.
    """

    def __init__(self, table: Table, clock: Clock, *, service: str) -> None:
        self.table = table
        self.clock = clock
        self.service = service
        self._wake = asyncio.Event()
        self._refusals: dict[int, _Refusals] = {}
        self._mine: dict[int, float] = {}
        """Rows this relay's service staged (by seq), with when: written by the database's
        thread too (a dict's item assignment is atomic under the GIL)."""
        self._published: dict[int, float] = {}
        """Rows JetStream has stored and the table still holds (by seq), with when."""
        self._started = clock.now()
        # Built once: a statement is cheaper to run than to build (PERFORMANCE.md).
        self._insert = insert(table)
        columns = table.c
        self._pending = (
            select(
                columns.seq,
                columns.event_id,
                columns.nats_subject,
                columns.payload,
                columns.created_at,
            )
            .where(columns.parked_at.is_(None))
            .order_by(columns.seq)
            .limit(bindparam("batch"))
        )
        self._count = select(func.count()).select_from(table).where(columns.parked_at.is_(None))
        self._delete = delete(table).where(columns.seq.in_(bindparam("seqs", expanding=True)))
        self._park = (
            update(table)
            .where(columns.seq == bindparam("row_seq"), columns.parked_at.is_(None))
            .values(parked_at=bindparam("at"), parked_reason=bindparam("reason"))
        )

    async def stage(self, connection: AsyncConnection, subject: str, event: CloudEvent) -> None:
        """Add `event` to the outbox inside the current transaction."""
        _staged.set(True)
        result = await connection.execute(self._insert, self._row(subject, event))
        self._remember(result.inserted_primary_key)

    def stage_sync(self, connection: Connection, subject: str, event: CloudEvent) -> None:
        """`stage` in a synchronous transaction (`Database.run`)."""
        _staged.set(True)
        result = connection.execute(self._insert, self._row(subject, event))
        self._remember(result.inserted_primary_key)

    def _row(self, subject: str, event: CloudEvent) -> dict[str, Any]:
        return {
            "event_id": event.id,
            "nats_subject": subject,
            "payload": event.model_dump_json(exclude_none=True).encode(),
            "created_at": self.clock.now(),
        }

    def _remember(self, key: Sequence[Any] | None) -> None:
        """Remember a row this service staged (its relay publishes it without waiting)."""
        if key and key[0] is not None:
            self._mine[int(key[0])] = time.monotonic()

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
        gather_seconds: float = 0.01,
        batch: int = 100,
    ) -> None:
        """Publish committed events in order, forever; each row is deleted once JetStream has it.

        Events go out within `gather_seconds` of their commit (and `idle_seconds` at the latest,
        should a wake-up be missed); published rows are deleted within `FORGET_AFTER_SECONDS`,
        and on the way out."""
        try:
            while True:
                # Cleared before looking, so a commit made while the relay publishes is not missed.
                self._wake.clear()
                try:
                    sent = await self.relay_once(
                        db, js, batch=batch, forget_after=FORGET_AFTER_SECONDS
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("outbox relay failed; retrying", error=str(exc))
                    sent = 0
                    await asyncio.sleep(idle_seconds)
                if sent < batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self._idle(idle_seconds))
                        # Woken by a commit: let the commits of the next moments join it, so
                        # that under load one read, one round of publishing and one delete carry
                        # several requests' events instead of one each.
                        await asyncio.sleep(gather_seconds)
        finally:
            with contextlib.suppress(Exception):
                await self.forget_published(db)

    def _idle(self, idle_seconds: float) -> float:
        """How long the relay may wait for a commit: until published rows are due for deletion."""
        if not self._published:
            return idle_seconds
        due = min(self._published.values()) + FORGET_AFTER_SECONDS - time.monotonic()
        return max(0.0, min(idle_seconds, due))

    async def relay_once(
        self, db: Database, js: JetStreamContext, *, batch: int = 100, forget_after: float = 0.0
    ) -> int:
        """Publish up to `batch` pending events, parking those refused for too long; return how
        many went out. Rows JetStream stored are deleted once the oldest of them has waited
        `forget_after` seconds (at once by default), or there are `batch` of them."""
        now = self.clock.now()
        fetched = await db.read(self._fetch, 2 * batch + len(self._published))
        pending = [row for row in fetched if row.seq not in self._published]
        rows = [row for row in pending if self._due(row, now)][:batch]
        published, refused = await self._publish(js, rows)
        if published:
            stored_at = time.monotonic()
            self._published.update(dict.fromkeys(published, stored_at))
            OUTBOX_PUBLISHED.inc(len(published))
        await self._forget_due(db, forget_after, batch)
        for seq in published:
            self._refusals.pop(seq, None)
        for row in refused:
            await self._park_if_due(db, js, row)
        if len(rows) == batch:  # a backlog: worth counting
            async with db.reading() as connection:
                count = await connection.scalar(self._count)
            OUTBOX_PENDING.set(max(0, (count or 0) - len(self._published)))
        else:
            OUTBOX_PENDING.set(len(pending) - len(published))
            # Every pending row was seen: forget refusals of rows gone meanwhile (published or
            # parked by another replica), and rows staged long ago (or rolled back).
            waiting = {row.seq for row in pending}
            self._refusals = {s: r for s, r in self._refusals.items() if s in waiting}
            old = time.monotonic() - MINE_FORGOTTEN_AFTER_SECONDS
            for seq in [s for s, t in list(self._mine.items()) if t <= old and s not in waiting]:
                self._mine.pop(seq, None)
        return len(published)

    def _due(self, row: Any, now: datetime) -> bool:
        """Whether to publish a pending row now: this service's own at once, and so those staged
        before it started (an earlier run's, left when it stopped); another running replica's
        once that one's relay has had time to."""
        if row.seq in self._mine:
            return True
        staged = as_utc(row.created_at)
        return staged < self._started or (now - staged).total_seconds() >= FOREIGN_ROW_SECONDS

    async def forget_published(self, db: Database) -> None:
        """Delete every row JetStream has stored from the table now."""
        await self._forget_due(db, 0.0, 0)

    async def _forget_due(self, db: Database, after: float, batch: int) -> None:
        if not self._published:
            return
        oldest = min(self._published.values())
        if after > 0 and len(self._published) < batch and time.monotonic() - oldest < after:
            return
        seqs = sorted(self._published)
        # Unsynced: a delete undone by a power cut only sends again what JetStream holds, which
        # its duplicate window and every consumer's inbox drop.
        await db.run_unsynced(self._forget, seqs)
        for seq in seqs:
            self._published.pop(seq, None)
            self._mine.pop(seq, None)

    def _fetch(self, connection: Connection, batch: int) -> Sequence[Any]:
        return connection.execute(self._pending, {"batch": batch}).all()

    def _forget(self, connection: Connection, seqs: list[int]) -> None:
        connection.execute(self._delete, {"seqs": seqs})

    async def _publish(
        self, js: JetStreamContext, rows: Sequence[Any]
    ) -> tuple[list[int], list[Any]]:
        """Publish the rows, each subject's in order and the subjects side by side. Return the
        sequence numbers of those stored, per subject up to the first that was not (the rest of
        that subject go again, in order), and the rows JetStream refused outright."""
        by_subject: dict[str, list[Any]] = {}
        for row in rows:
            by_subject.setdefault(row.nats_subject, []).append(row)
        outcomes = await asyncio.gather(
            *(self._publish_in_order(js, group) for group in by_subject.values())
        )
        published = sorted(seq for stored, _ in outcomes for seq in stored)
        return published, [row for _, row in outcomes if row is not None]

    async def _publish_in_order(
        self, js: JetStreamContext, rows: Sequence[Any]
    ) -> tuple[list[int], Any | None]:
        """Publish one subject's rows one after the other, up to the first not stored; return
        the stored ones' sequence numbers and that row, if JetStream refused it."""
        stored: list[int] = []
        for row in rows:
            # `publish`, not `publish_async`: nats-py 2.16 raises a stream's refusal inside the
            # async acknowledgement's callback instead of handing it to the future, which then
            # only times out, and a refusal would look like an outage.
            try:
                await js.publish(
                    row.nats_subject,
                    row.payload,
                    timeout=PUBLISH_ACK_SECONDS,
                    headers={"Nats-Msg-Id": row.event_id, "content-type": CONTENT_TYPE},
                )
            except Exception as exc:
                log.warning(
                    "event not stored; will publish again",
                    subject=row.nats_subject,
                    event_id=row.event_id,
                    error=repr(exc),
                )
                if is_refusal(exc):
                    self._refused(row.seq, exc)
                    return stored, row
                return stored, None
            stored.append(row.seq)
        return stored, None

    def _refused(self, seq: int, outcome: BaseException) -> None:
        refusals = self._refusals.setdefault(seq, _Refusals(first_at=self.clock.now()))
        refusals.count += 1
        refusals.last = _describe(outcome)

    async def _park_if_due(self, db: Database, js: JetStreamContext, row: Any) -> None:
        """Park a row JetStream has refused often enough for long enough: announce it in the
        dead-letter stream, then mark it in the outbox (never the other way round, so that
        every parked row is one an operator can see)."""
        refusals = self._refusals[row.seq]
        waited = (self.clock.now() - refusals.first_at).total_seconds()
        if refusals.count < PARK_AFTER_REFUSALS or waited < PARK_AFTER_SECONDS:
            return
        reason = f"no stream accepts it after {refusals.count} attempts: {refusals.last}"[:500]
        try:
            await js.publish(
                f"sw.deadletter.{self.service}.{PARKED_CONSUMER}",
                row.payload,
                timeout=PUBLISH_ACK_SECONDS,
                headers={
                    "Nats-Msg-Id": f"parked-{row.event_id}",
                    "Sw-Dead-Letter-Reason": reason,
                    "Sw-Original-Subject": row.nats_subject,
                    "Sw-Original-Stream": "none",
                    "Sw-Original-Sequence": "0",
                    "Sw-Consumer": PARKED_CONSUMER,
                    "Sw-Outbox-Seq": str(row.seq),
                },
            )
        except Exception as exc:
            log.error(
                "refused event not parked: its dead letter was not stored; will try again",
                subject=row.nats_subject,
                event_id=row.event_id,
                error=repr(exc),
            )
            return
        async with db.transaction() as connection:
            await connection.execute(
                self._park, {"row_seq": row.seq, "at": self.clock.now(), "reason": reason}
            )
        self._refusals.pop(row.seq, None)
        self._mine.pop(row.seq, None)
        OUTBOX_PARKED.inc()
        log.error(
            "event parked: no stream accepts it",
            subject=row.nats_subject,
            event_id=row.event_id,
            outbox_seq=row.seq,
            reason=reason,
        )


PARKED_CONSUMER = "outbox"
"""Who a parked outbox row's dead letter names as having given up on it: the relay."""


def _describe(outcome: BaseException) -> str:
    if isinstance(outcome, NoStreamResponseError):
        return "no stream takes this subject"
    if isinstance(outcome, APIError):
        return f"the stream refused it ({outcome.code} {outcome.description})"
    return repr(outcome)


async def ensure_streams(js: JetStreamContext, *streams: StreamSpec, replicas: int = 1) -> None:
    """Create each stream, or bring its configuration (limits included) up to date; safe to
    repeat."""
    for spec in (*streams, DEAD_LETTER_STREAM):
        config = stream_config(spec, replicas=replicas)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


def stream_config(spec: StreamSpec, *, replicas: int = 1) -> StreamConfig:
    """The JetStream configuration of a declared stream."""
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        description=spec.description,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=spec.max_age_seconds,
        max_bytes=spec.max_bytes,
        discard=DiscardPolicy.NEW if spec.discard is Discard.NEW else DiscardPolicy.OLD,
        deny_delete=spec.deny_delete,
        deny_purge=spec.deny_purge,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
    )


def consumer_config(durable: str, filter_subject: str) -> ConsumerConfig:
    """A durable, explicitly acknowledged consumer that redelivers until the inbox settles.

    The inbox, not the server, gives up after `MAX_DELIVER` deliveries: it dead-letters the
    event and acknowledges it only once the dead letter is stored. A server-side limit would
    stop redelivering an event whose dead letter could not be stored, losing it.
    """
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        filter_subject=filter_subject,
        max_deliver=-1,
        ack_wait=30,
    )


async def ensure_consumers(
    js: JetStreamContext, subscriptions: Iterable[Subscription[Any]]
) -> None:
    """Create each subscription's durable consumer, or bring its configuration up to date (a
    durable made by an older release keeps its old settings otherwise); safe to repeat."""
    for subscription in subscriptions:
        await js.add_consumer(
            subscription.stream.name,
            consumer_config(subscription.durable, subscription.event.subject),
        )


class DeliveredMessage(Protocol):
    """What the consumer needs of a JetStream message (`pull.JetStreamDelivery`)."""

    @property
    def body(self) -> bytes: ...
    @property
    def raw_message(self) -> Any: ...
    async def ack(self) -> None: ...
    async def nack(self, delay: float | None = None) -> None: ...


Effect = Callable[[AsyncConnection, CloudEvent], Awaitable[None]]


@dataclass(frozen=True)
class InTransaction:
    """An effect written as a synchronous function: the inbox's record and the effect then run
    as one transaction in one trip to the database (`Database.run`)."""

    apply: Callable[[Connection, CloudEvent], None]


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
        effect: Effect | InTransaction,
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
            reason = f"not a CloudEvent: {exc.error_count()} errors"
            if await self._dead_letter(consumer, message, reason, dead_letter):
                EVENTS_CONSUMED.labels(consumer=consumer, outcome="malformed").inc()
            return
        bind_correlation_id(event.correlationid)
        try:
            if prepare is not None:
                await prepare(event)
            applied = await self._apply_once(consumer, event, effect)
        except Exception as exc:
            attempt = message.raw_message.metadata.num_delivered
            if attempt >= MAX_DELIVER:
                if await self._dead_letter(consumer, message, repr(exc), dead_letter):
                    EVENTS_CONSUMED.labels(consumer=consumer, outcome="dead_lettered").inc()
                    log.error(
                        "event dead-lettered",
                        consumer=consumer,
                        event_id=event.id,
                        event_type=event.type,
                        error=repr(exc),
                    )
            else:
                delay = self._delay(attempt)
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

    async def apply_once(
        self, consumer: str, event: CloudEvent, effect: Effect | InTransaction
    ) -> bool:
        """Apply `effect` to `event` unless `consumer` had; whether it did now (a dead letter
        replayed by an operator comes this way)."""
        return await self._apply_once(consumer, event, effect)

    async def _dead_letter(
        self,
        consumer: str,
        message: DeliveredMessage,
        reason: str,
        dead_letter: Callable[[str, DeliveredMessage, str], Awaitable[None]],
    ) -> bool:
        """Dead-letter the message, and acknowledge it only once the dead letter is stored;
        else have it delivered again, so that an event is always either applied or kept."""
        try:
            await dead_letter(consumer, message, reason)
        except Exception as exc:
            attempt = message.raw_message.metadata.num_delivered
            delay = self._delay(attempt)
            EVENTS_CONSUMED.labels(consumer=consumer, outcome="dead_letter_failed").inc()
            log.error(
                "event not dead-lettered: its dead letter was not stored; will redeliver",
                consumer=consumer,
                attempt=attempt,
                delay=delay,
                error=repr(exc),
            )
            await message.nack(delay=delay)
            return False
        await message.ack()
        return True

    def _delay(self, attempt: int) -> float:
        return self.redelivery_delays[min(attempt, len(self.redelivery_delays)) - 1]

    def _record_and_apply(
        self, connection: Connection, consumer: str, event: CloudEvent, effect: InTransaction
    ) -> None:
        connection.execute(
            self._insert,
            {"consumer": consumer, "event_id": event.id, "processed_at": self.clock.now()},
        )
        effect.apply(connection, event)

    async def _apply_once(
        self, consumer: str, event: CloudEvent, effect: Effect | InTransaction
    ) -> bool:
        try:
            # Recorded first, so an event already applied fails here on the primary key,
            # before its effect runs again, without a look-up for every event.
            if isinstance(effect, InTransaction):
                await self.db.run(self._record_and_apply, consumer, event, effect)
            else:
                async with self.db.transaction() as connection:
                    await connection.execute(
                        self._insert,
                        {
                            "consumer": consumer,
                            "event_id": event.id,
                            "processed_at": self.clock.now(),
                        },
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
