"""Nothing lost, on a real nats-server and SQLite file: stream limits, the audit stream's
protection, outbox rows no stream accepts, and dead letters that cannot be stored at first.

The runtime's pieces (`ensure_streams`, `Outbox`, `Inbox`) run here against a JetStream server of
the test's own, so a test can take a stream away or fill it without disturbing a platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig, DiscardPolicy, RawStreamMsg
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from singlewindow.contracts import accounts, card_gateway, registration, review
from singlewindow.contracts.bus import DEAD_LETTER_STREAM
from singlewindow.contracts.endpoints import Subscription
from singlewindow.contracts.events import (
    DAY,
    MIB,
    CloudEvent,
    Discard,
    EventData,
    EventSpec,
    StreamSpec,
)
from singlewindow.runtime.clock import ManualClock
from singlewindow.runtime.db import Database
from singlewindow.runtime.messaging import (
    FOREIGN_ROW_SECONDS,
    MAX_DELIVER,
    PARK_AFTER_REFUSALS,
    PARK_AFTER_SECONDS,
    Inbox,
    Outbox,
    consumer_config,
    dead_letter_publisher,
    ensure_consumers,
    ensure_streams,
    inbox_table,
    outbox_table,
)
from singlewindow.runtime.pull import JetStreamDelivery, PullConsumer
from singlewindow.swctl.platform import nats_server_binary
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.platform import eventually, free_port
from tests.support.swctl import Swctl

SERVICE = "durability"
STREAM = StreamSpec(
    name="SW_DURABILITY",
    subjects=("sw.events.durability.>",),
    description="A test service's events",
    max_age_seconds=2 * DAY,
    max_bytes=8 * MIB,
    discard=Discard.NEW,
)
TINY = StreamSpec(
    name="SW_DURABILITY_TINY",
    subjects=("sw.events.tiny.>",),
    description="A stream with room for one event, that refuses the next",
    max_age_seconds=2 * DAY,
    max_bytes=600,
    discard=Discard.NEW,
)


class Happened(EventData):
    what: str


HAPPENED = EventSpec(SERVICE, "happened", 1, Happened)
UNROUTABLE = "sw.events.nowhere.happened.v1"
"""A subject no stream takes: as an event whose stream was never declared or was removed."""


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JetStream nats-server of this module's own."""
    directory = tmp_path_factory.mktemp("nats")
    port, monitor = free_port(), free_port()
    with (directory / "nats-server.log").open("wb") as output:
        server = subprocess.Popen(
            [
                *(nats_server_binary(), "-js", "-sd", str(directory / "store")),
                *("-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true")
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=20)


def wait_ready(health: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(health, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url, connect_timeout=5)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def js(nc: NatsClient) -> JetStreamContext:
    context = nc.jetstream()
    for stream in (STREAM, TINY, DEAD_LETTER_STREAM):
        with contextlib.suppress(NotFoundError):
            await context.delete_stream(stream.name)
    await ensure_streams(context, STREAM, TINY)
    return context


@dataclass
class Messaging:
    db: Database
    outbox: Outbox
    inbox: Inbox
    clock: ManualClock

    async def stage(self, subject: str, what: str) -> CloudEvent:
        event = HAPPENED.make(Happened(what=what), subject=None, source="urn:test")
        async with self.db.transaction() as connection:
            await self.outbox.stage(connection, subject, event)
        return event

    async def outbox_rows(self) -> list[Any]:
        table = self.outbox.table
        async with self.db.reading() as connection:
            return list((await connection.execute(select(table).order_by(table.c.seq))).all())


@pytest.fixture
async def messaging(tmp_path: Path) -> AsyncIterator[Messaging]:
    metadata = MetaData()
    outbox, inbox = outbox_table(metadata), inbox_table(metadata)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    async with db.transaction() as connection:
        await connection.run_sync(metadata.create_all)
    clock = ManualClock()
    relay = Outbox(outbox, clock, service=SERVICE)
    try:
        yield Messaging(db, relay, Inbox(inbox, db, relay, clock, (0.05,)), clock)
    finally:
        await db.close()


async def stored(js: JetStreamContext, stream: StreamSpec) -> list[CloudEvent]:
    """Every event `stream` holds, oldest first."""
    last = (await js.stream_info(stream.name)).state.last_seq
    found = []
    for sequence in range(1, last + 1):
        try:
            message = await js.get_msg(stream.name, sequence)
        except Exception:
            continue
        found.append(CloudEvent.model_validate_json(message.data or b""))
    return found


async def test_streams_are_made_with_the_limits_their_declarations_choose(
    js: JetStreamContext,
) -> None:
    declared = (
        accounts.STREAM,
        accounts.AUDIT_STREAM,
        registration.STREAM,
        review.STREAM,
        review.REQUESTS_STREAM,
        card_gateway.STREAM,
    )
    # As an older release left one: no limits, deletable.
    await js.add_stream(name=accounts.AUDIT_STREAM.name, subjects=["sw.audit.>"])
    await ensure_streams(js, *declared)
    for spec in (*declared, DEAD_LETTER_STREAM):
        config = (await js.stream_info(spec.name)).config
        assert config.max_bytes == spec.max_bytes > 0
        assert config.max_age == spec.max_age_seconds
        assert config.discard == DiscardPolicy(spec.discard.value)
        assert (config.deny_delete, config.deny_purge) == (spec.deny_delete, spec.deny_purge)
    # Work not yet applied is never dropped to make room; the card events are news, dropped old.
    assert registration.STREAM.discard is Discard.NEW
    assert review.REQUESTS_STREAM.discard is Discard.NEW
    assert card_gateway.STREAM.discard is Discard.OLD
    assert DEAD_LETTER_STREAM.max_age_seconds == 0  # kept until replayed


async def test_the_audit_trail_refuses_deleting_a_record_and_purging(
    js: JetStreamContext,
) -> None:
    await ensure_streams(js, accounts.AUDIT_STREAM)
    ack = await js.publish("sw.audit.accounts.authentication-attempted.v1", b"{}")
    with pytest.raises(APIError):
        await js.delete_msg(accounts.AUDIT_STREAM.name, ack.seq)
    with pytest.raises(APIError):
        await js.purge_stream(accounts.AUDIT_STREAM.name)
    assert (await js.stream_info(accounts.AUDIT_STREAM.name)).state.messages >= 1
    # And a later start cannot take the protection away by redeclaring the stream.
    await ensure_streams(js, accounts.AUDIT_STREAM)
    assert (await js.stream_info(accounts.AUDIT_STREAM.name)).config.deny_purge


async def test_published_rows_are_deleted_together_and_never_published_twice(
    messaging: Messaging, js: JetStreamContext
) -> None:
    first = await messaging.stage(HAPPENED.subject, "first")
    assert await messaging.outbox.relay_once(messaging.db, js, forget_after=60) == 1
    second = await messaging.stage(HAPPENED.subject, "second")
    # The first row waits to be deleted with later ones, and is not published again meanwhile.
    assert await messaging.outbox.relay_once(messaging.db, js, forget_after=60) == 1
    assert [row.event_id for row in await messaging.outbox_rows()] == [first.id, second.id]
    assert [e.id for e in await stored(js, STREAM)] == [first.id, second.id]

    await messaging.outbox.forget_published(messaging.db)
    assert await messaging.outbox_rows() == []


async def test_a_stopping_relay_deletes_what_it_published(
    messaging: Messaging, js: JetStreamContext
) -> None:
    event = await messaging.stage(HAPPENED.subject, "just before the end")
    relay = asyncio.create_task(messaging.outbox.relay(messaging.db, js))

    async def published() -> list[CloudEvent] | None:
        return await stored(js, STREAM) or None

    await eventually(published)
    relay.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await relay
    assert await messaging.outbox_rows() == []
    assert [e.id for e in await stored(js, STREAM)] == [event.id]


async def test_another_replicas_rows_are_left_to_it_for_a_while_then_published(
    messaging: Messaging, js: JetStreamContext
) -> None:
    """Two replicas share one outbox table: each publishes its own rows at once, and the
    other's only once that one had time to (it may have stopped before it could)."""
    other = Outbox(messaging.outbox.table, messaging.clock, service=SERVICE)
    theirs = HAPPENED.make(Happened(what="theirs"), subject=None, source="urn:test")
    async with messaging.db.transaction() as connection:
        await other.stage(connection, HAPPENED.subject, theirs)
    mine = await messaging.stage(HAPPENED.subject, "mine")

    assert await messaging.outbox.relay_once(messaging.db, js) == 1
    assert [e.id for e in await stored(js, STREAM)] == [mine.id]
    messaging.clock.advance(timedelta(seconds=FOREIGN_ROW_SECONDS))
    assert await messaging.outbox.relay_once(messaging.db, js) == 1
    assert [e.id for e in await stored(js, STREAM)] == [mine.id, theirs.id]
    assert await messaging.outbox_rows() == []


async def test_rows_an_earlier_run_left_go_out_at_once_and_first(
    messaging: Messaging, js: JetStreamContext
) -> None:
    """A service that stopped between commit and publish: its next run's relay publishes what it
    left at once, before the rows of the same subject that the new run stages."""
    left = await messaging.stage(HAPPENED.subject, "left by the earlier run")
    messaging.clock.advance(timedelta(seconds=0.5))
    restarted = Outbox(messaging.outbox.table, messaging.clock, service=SERVICE)
    later = HAPPENED.make(Happened(what="staged after the restart"), subject=None, source="urn:t")
    async with messaging.db.transaction() as connection:
        await restarted.stage(connection, HAPPENED.subject, later)

    assert await restarted.relay_once(messaging.db, js) == 2
    assert [e.id for e in await stored(js, STREAM)] == [left.id, later.id]


async def refused_until_parked(messaging: Messaging, js: JetStreamContext) -> None:
    """Relay as often and as long as parking takes, the time moved by the test's clock."""
    step = timedelta(seconds=PARK_AFTER_SECONDS / (PARK_AFTER_REFUSALS - 1))
    for _ in range(PARK_AFTER_REFUSALS):
        await messaging.outbox.relay_once(messaging.db, js)
        messaging.clock.advance(step)


async def test_a_row_no_stream_accepts_is_parked_and_later_rows_still_arrive(
    messaging: Messaging, js: JetStreamContext, tmp_path: Path, nats_url: str
) -> None:
    lost = await messaging.stage(UNROUTABLE, "nobody takes this")
    first = await messaging.stage(HAPPENED.subject, "first")

    # The row nobody takes holds back nothing of another stream, from the first attempt on.
    assert await messaging.outbox.relay_once(messaging.db, js) == 1
    assert [e.id for e in await stored(js, STREAM)] == [first.id]
    [waiting] = await messaging.outbox_rows()
    assert (waiting.event_id, waiting.parked_at) == (lost.id, None)  # not parked at once

    await refused_until_parked(messaging, js)
    [parked] = await messaging.outbox_rows()
    assert parked.event_id == lost.id
    assert parked.parked_at is not None  # kept, marked
    assert "no stream takes this subject" in parked.parked_reason

    # Parked rows are not tried again; the rows after them go out.
    later = await messaging.stage(HAPPENED.subject, "later")
    assert await messaging.outbox.relay_once(messaging.db, js) == 1
    assert [e.id for e in await stored(js, STREAM)] == [first.id, later.id]
    assert [row.event_id for row in await messaging.outbox_rows()] == [lost.id]

    # An operator sees it, as `swctl deadletter list` shows it.
    listed = await asyncio.to_thread(
        Swctl(nats_url, tmp_path / "swctl"), "deadletter", "list", "--json"
    )
    assert listed.code == 0, listed.stderr
    [letter] = listed.json()["dead_letters"]
    assert letter["service"] == SERVICE
    assert letter["consumer"] == "outbox"
    assert letter["original_subject"] == UNROUTABLE
    assert letter["parked_outbox_seq"] == parked.seq
    assert "no stream takes this subject" in letter["reason"]
    assert CloudEvent.model_validate_json(letter["body"]).id == lost.id


async def test_a_stream_that_refuses_an_event_holds_back_only_its_own_subject(
    messaging: Messaging, js: JetStreamContext
) -> None:
    tiny = "sw.events.tiny.happened.v1"
    await messaging.stage(tiny, "fills the stream")
    refused = await messaging.stage(tiny, "x" * 200)
    elsewhere = await messaging.stage(HAPPENED.subject, "elsewhere")

    assert await messaging.outbox.relay_once(messaging.db, js) == 2
    assert [e.id for e in await stored(js, STREAM)] == [elsewhere.id]
    await refused_until_parked(messaging, js)
    [parked] = await messaging.outbox_rows()
    assert parked.event_id == refused.id
    assert parked.parked_at is not None
    assert "the stream refused it" in parked.parked_reason
    [letter] = await stored_dead_letters(js)
    assert letter.headers is not None
    assert letter.headers["Sw-Outbox-Seq"] == str(parked.seq)


async def test_a_row_is_not_parked_while_its_dead_letter_cannot_be_stored(
    messaging: Messaging, js: JetStreamContext
) -> None:
    lost = await messaging.stage(UNROUTABLE, "nobody takes this")
    await js.delete_stream(DEAD_LETTER_STREAM.name)
    await refused_until_parked(messaging, js)
    [row] = await messaging.outbox_rows()
    assert row.parked_at is None  # still tried: a parked row must be one an operator can see

    await ensure_streams(js)  # the dead-letter stream is back
    await messaging.outbox.relay_once(messaging.db, js)
    [row] = await messaging.outbox_rows()
    assert row.parked_at is not None
    [letter] = await stored_dead_letters(js)
    assert CloudEvent.model_validate_json(letter.data or b"").id == lost.id


async def stored_dead_letters(js: JetStreamContext) -> list[RawStreamMsg]:
    last = (await js.stream_info(DEAD_LETTER_STREAM.name)).state.last_seq
    return [await js.get_msg(DEAD_LETTER_STREAM.name, seq) for seq in range(1, last + 1)]


async def test_an_event_whose_dead_letter_cannot_be_stored_is_redelivered_until_it_is(
    messaging: Messaging, js: JetStreamContext
) -> None:
    durable = "durability-failing"
    await js.add_consumer(STREAM.name, consumer_config(durable, HAPPENED.subject))
    subscription = await js.pull_subscribe_bind(durable, STREAM.name)
    event = HAPPENED.make(Happened(what="cannot be applied"), subject=None, source="urn:test")
    await js.publish(HAPPENED.subject, event.model_dump_json().encode())
    await js.delete_stream(DEAD_LETTER_STREAM.name)  # down when the last delivery comes

    async def fails(connection: AsyncConnection, current: CloudEvent) -> None:
        raise RuntimeError("the effect keeps failing")

    dead_letter = dead_letter_publisher(js, SERVICE)
    deliveries = 0

    async def deliver_once() -> None:
        nonlocal deliveries
        [message] = await subscription.fetch(1, timeout=10)
        deliveries += 1
        await messaging.inbox.consume(durable, JetStreamDelivery(message), fails, dead_letter)

    for _ in range(MAX_DELIVER + 2):  # past the last delivery, with nowhere to dead-letter
        await deliver_once()
    await ensure_streams(js)  # the dead-letter stream is back
    await deliver_once()
    [letter] = await stored_dead_letters(js)
    assert CloudEvent.model_validate_json(letter.data or b"").id == event.id
    assert letter.headers is not None
    assert "the effect keeps failing" in letter.headers["Sw-Dead-Letter-Reason"]

    async def settled() -> bool | None:
        info = await js.consumer_info(STREAM.name, durable)
        return True if info.num_ack_pending == info.num_pending == 0 else None

    await eventually(settled)
    assert deliveries == MAX_DELIVER + 3
    await subscription.unsubscribe()


async def test_a_malformed_event_is_acknowledged_only_once_dead_lettered(
    messaging: Messaging, js: JetStreamContext
) -> None:
    durable = "durability-malformed"
    await js.add_consumer(STREAM.name, consumer_config(durable, HAPPENED.subject))
    subscription = await js.pull_subscribe_bind(durable, STREAM.name)
    await js.publish(
        HAPPENED.subject, b"{not a cloudevent", headers={"Nats-Msg-Id": str(uuid.uuid4())}
    )
    await js.delete_stream(DEAD_LETTER_STREAM.name)

    async def never(connection: AsyncConnection, current: CloudEvent) -> None:
        raise AssertionError("a malformed event has no effect")

    dead_letter = dead_letter_publisher(js, SERVICE)
    [message] = await subscription.fetch(1, timeout=10)
    await messaging.inbox.consume(durable, JetStreamDelivery(message), never, dead_letter)
    await ensure_streams(js)
    [message] = await subscription.fetch(1, timeout=10)  # delivered again, not lost
    await messaging.inbox.consume(durable, JetStreamDelivery(message), never, dead_letter)
    [letter] = await stored_dead_letters(js)
    assert letter.data == b"{not a cloudevent"
    await subscription.unsubscribe()


async def test_a_durable_made_by_an_older_release_loses_its_server_side_delivery_limit(
    js: JetStreamContext,
) -> None:
    subscription = Subscription(SERVICE, STREAM, HAPPENED, "durability-old", "An older durable")
    await js.add_consumer(
        STREAM.name,
        ConsumerConfig(
            durable_name=subscription.durable, filter_subject=HAPPENED.subject, max_deliver=6
        ),
    )
    await ensure_consumers(js, [subscription])
    info = await js.consumer_info(STREAM.name, subscription.durable)
    assert info.config.max_deliver == -1  # the inbox, not the server, gives up


async def test_a_pull_consumer_hands_over_each_event_at_once_in_order_and_finishes_on_stop(
    nc: NatsClient, js: JetStreamContext
) -> None:
    await js.add_consumer(STREAM.name, consumer_config("pulled", HAPPENED.subject))
    handled: list[str] = []
    slow_began, release = asyncio.Event(), asyncio.Event()

    async def handle(delivery: JetStreamDelivery) -> None:
        what = Happened.model_validate(CloudEvent.model_validate_json(delivery.body).data).what
        if what == "slow":
            slow_began.set()
            await release.wait()
        handled.append(what)
        await delivery.ack()

    pull = PullConsumer(STREAM.name, "pulled", handle, batch=3, expires=30.0)
    await pull.start(nc)
    for what in ("one", "two", "three", "four", "slow"):
        event = HAPPENED.make(Happened(what=what), subject=None, source="urn:test")
        await js.publish(HAPPENED.subject, event.model_dump_json().encode())

    async def four() -> list[str] | None:
        return handled if len(handled) == 4 else None

    # Each at once, across pull requests (batch 3), not after a batch fills or expires (30 s).
    assert await eventually(four, within=5.0) == ["one", "two", "three", "four"]
    await asyncio.wait_for(slow_began.wait(), 5.0)
    stopping = asyncio.create_task(pull.stop(10.0))
    await asyncio.sleep(0.1)
    assert not stopping.done()  # the slow one is let finish, and acknowledged
    release.set()
    await stopping
    assert handled[-1] == "slow"

    async def all_acknowledged() -> bool | None:
        info = await js.consumer_info(STREAM.name, "pulled")
        return (info.num_ack_pending, info.num_pending) == (0, 0) or None

    await eventually(all_acknowledged, within=5.0)
