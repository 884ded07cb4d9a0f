"""Who may do what on the bus: every declared subject against every NATS user, on a real
nats-server running the embedded platform's generated configuration.

The expected answer of each cell is written here from the declarations (endpoints and their
audiences, each service's `Routes`, the contracts' events and streams), not from the generator,
so a generator that drifts from the declarations fails here. nats-py reports a refused publish
or subscribe to the error callback (the server's `-ERR 'Permissions Violation ...'`), before the
PONG of the next flush: each user publishes and subscribes everything, flushes, and the refused
set is compared with the expected one.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow import contracts
from singlewindow.contracts import accounts, registration, review
from singlewindow.contracts.bus import (
    DEAD_LETTER_STREAM,
    SUBSCRIBER_DURABLE,
    inbox_prefix,
    replay_subject,
)
from singlewindow.contracts.endpoints import Audience, Endpoint, endpoints_of
from singlewindow.contracts.events import EventSpec, StreamSpec
from singlewindow.contracts.notify import NOTIFIER_DURABLE
from singlewindow.runtime.messaging import PARKED_CONSUMER, ensure_streams
from singlewindow.runtime.routes import Routes
from singlewindow.runtime.service import Service, ServiceSettings
from singlewindow.swctl.events import PUBLIC_STREAMS
from singlewindow.swctl.platform import (
    CARD_GATEWAY,
    CLIENT_USERS,
    NOTIFIER,
    SERVICES,
    Platform,
    PlatformConfig,
    http_json,
)
from sqlalchemy import MetaData

from tests.support.platform import free_port
from tests.support.swctl import Swctl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVICE_USERS = (*SERVICES, CARD_GATEWAY)
USERS = (*SERVICE_USERS, *CLIENT_USERS, NOTIFIER)
NOTIFY = accounts.NOTIFY_STREAM.name
"""The notification stream (codes): the notifier's to read, nobody else's."""
CLIENT_AUDIENCES = {Audience.PUBLIC, Audience.SESSION, Audience.BACK_OFFICE}
VIOLATION = re.compile(
    r'Permissions Violation for (Publish|Subscription) to "([^"]+)"(?: using queue "([^"]+)")?',
    re.IGNORECASE,
)


def routes_of(service: str) -> Routes[Any]:
    """A service's declared routes (what it serves, consumes, asks and publishes)."""
    handlers = importlib.import_module(f"singlewindow.{service.replace('-', '_')}.handlers")
    routes: Routes[Any] = handlers.routes
    return routes


ROUTES = {service: routes_of(service) for service in SERVICE_USERS}
ENDPOINTS: tuple[Endpoint[Any, Any], ...] = tuple(
    endpoint for module in contracts.service_contracts() for endpoint in endpoints_of(module)
)
EVENTS: tuple[EventSpec[Any], ...] = tuple(
    value
    for module in contracts.service_contracts()
    for value in vars(module).values()
    if isinstance(value, EventSpec)
)
STREAM_OWNERS: dict[str, str] = {
    value.name: module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    for module in contracts.service_contracts()
    for value in vars(module).values()
    if isinstance(value, StreamSpec)
}
STREAMS = (*STREAM_OWNERS, DEAD_LETTER_STREAM.name)
PUBLIC = {stream.name for stream in PUBLIC_STREAMS}
DURABLES = [
    (service, consumed.subscription.stream.name, consumed.subscription.durable)
    for service, routes in ROUTES.items()
    for consumed in routes.consumed
]


def js(*tokens: str) -> str:
    return ".".join(("$JS.API", *tokens))


def may_publish(user: str, subject: str) -> bool:
    """The declared answer: may `user` publish to `subject`?"""
    for endpoint in ENDPOINTS:
        if endpoint.subject == subject:
            if user == "portal":
                return endpoint.audience in CLIENT_AUDIENCES
            if user == "workstation":
                return endpoint.audience is Audience.LOCAL
            return user in ROUTES and endpoint in ROUTES[user].asks
    for spec in EVENTS:
        if spec.subject == subject:
            return spec.service == user or (user in ROUTES and spec in ROUTES[user].publishes)
    if subject == js("INFO"):
        return user == "operator"
    if subject in {replay_subject(service, PARKED_CONSUMER) for service in SERVICE_USERS}:
        return user == "operator"
    if subject in (
        js("CONSUMER", "CREATE", NOTIFY, NOTIFIER_DURABLE),
        js("CONSUMER", "MSG", "NEXT", NOTIFY, NOTIFIER_DURABLE),
        js("CONSUMER", "DELETE", NOTIFY, NOTIFIER_DURABLE),
    ):
        return user == NOTIFIER
    for service, stream, durable in DURABLES:
        if subject in (
            js("CONSUMER", "CREATE", stream, durable),
            js("CONSUMER", "MSG", "NEXT", stream, durable),
        ):
            return user == service
        if subject == js("CONSUMER", "DELETE", stream, durable):
            return False
        if subject == replay_subject(service, durable):
            return user == "operator"
    for stream in STREAMS:
        if subject == js("STREAM", "UPDATE", stream):
            if stream == DEAD_LETTER_STREAM.name:
                return user in SERVICE_USERS
            return STREAM_OWNERS[stream] == user
        if subject in (js("STREAM", "DELETE", stream), js("STREAM", "PURGE", stream)):
            return False
        if subject == js("STREAM", "MSG", "DELETE", stream):
            return user == "operator" and stream == DEAD_LETTER_STREAM.name
        if subject == js("CONSUMER", "CREATE", stream):
            return (user == "operator" and stream != NOTIFY) or (
                user == "subscriber" and stream in PUBLIC
            )
        if subject == js("CONSUMER", "CREATE", stream, SUBSCRIBER_DURABLE):
            return user == "subscriber" and stream in PUBLIC
    raise AssertionError(f"no declared answer for publishing {subject}")


def publish_subjects() -> list[str]:
    """Every subject the matrix publishes to."""
    subjects = [endpoint.subject for endpoint in ENDPOINTS] + [spec.subject for spec in EVENTS]
    subjects.append(js("INFO"))
    subjects += [replay_subject(service, PARKED_CONSUMER) for service in SERVICE_USERS]
    subjects += [
        js("CONSUMER", verb, NOTIFY, NOTIFIER_DURABLE) for verb in ("CREATE", "MSG.NEXT", "DELETE")
    ]
    for service, stream, durable in DURABLES:
        subjects += [
            js("CONSUMER", "CREATE", stream, durable),
            js("CONSUMER", "MSG", "NEXT", stream, durable),
            js("CONSUMER", "DELETE", stream, durable),
            replay_subject(service, durable),
        ]
    for stream in STREAMS:
        subjects += [
            js("STREAM", "UPDATE", stream),
            js("STREAM", "DELETE", stream),
            js("STREAM", "PURGE", stream),
            js("STREAM", "MSG", "DELETE", stream),
            js("CONSUMER", "CREATE", stream),
            js("CONSUMER", "CREATE", stream, SUBSCRIBER_DURABLE),
        ]
    return list(dict.fromkeys(subjects))


def subscriptions() -> list[tuple[str, str | None]]:
    """Every (subject, queue group) the matrix subscribes to."""
    wide = ["_INBOX.>", "sw.rpc.>", "sw.events.>", "sw.audit.>", "sw.notify.>", "$JS.API.>", ">"]
    found: list[tuple[str, str | None]] = [(subject, None) for subject in wide]
    found += [(inbox_prefix(user) + ".>", None) for user in USERS]
    for endpoint in ENDPOINTS:
        found += [(endpoint.subject, endpoint.queue), (endpoint.subject, None)]
    found += [(spec.subject, None) for spec in EVENTS]
    return found


def may_subscribe(user: str, subject: str, queue: str | None) -> bool:
    """The declared answer: may `user` subscribe to `subject` (in `queue`)?"""
    if subject == inbox_prefix(user) + ".>":
        return True
    for endpoint in ENDPOINTS:
        if endpoint.subject == subject:
            # In its queue group only: a plain subscriber would see every request.
            return user == endpoint.service and queue == endpoint.queue
    return False


@dataclass(frozen=True)
class Bus:
    platform: Platform

    def credential(self, user: str) -> dict[str, str]:
        path = self.platform.config.credentials_file(user)
        found: dict[str, str] = json.loads(path.read_text())
        return found

    @asynccontextmanager
    async def connected(self, user: str) -> AsyncIterator[tuple[NatsClient, list[str]]]:
        """`user`'s connection and the permission violations the server reported to it."""
        violations: list[str] = []

        async def on_error(error: Exception) -> None:
            violations.append(str(error))

        credential = self.credential(user)
        nc = await nats.connect(
            self.platform.config.nats_url,
            user=credential["user"],
            password=credential["password"],
            inbox_prefix=inbox_prefix(user),
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=5,
        )
        try:
            yield nc, violations
        finally:
            await nc.close()


def refused(violations: list[str], kind: str) -> set[str]:
    """The subjects the server refused (publish) to the connection."""
    return {subject for subject, _ in refused_with_queue(violations, kind)}


def refused_with_queue(violations: list[str], kind: str) -> set[tuple[str, str | None]]:
    """The (subject, queue group) pairs the server refused to the connection."""
    found = set()
    for violation in violations:
        match = VIOLATION.search(violation)
        if match and match.group(1).lower() == kind.lower():
            found.add((match.group(2), match.group(3)))
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    """The embedded platform's nats-server alone: its generated configuration, no services."""
    data_dir: Path = tmp_path_factory.mktemp("bus")
    platform = Platform(
        PlatformConfig(data_dir=data_dir, nats_port=free_port(), nats_monitor_port=free_port())
    )
    platform.write_credentials()
    platform.start_nats()
    try:
        yield Bus(platform)
    finally:
        platform.stop()


@pytest.mark.parametrize("user", USERS)
async def test_each_user_publishes_exactly_what_is_declared(server: Bus, user: str) -> None:
    subjects = publish_subjects()
    async with server.connected(user) as (nc, violations):
        for subject in subjects:
            await nc.publish(subject, b"")
        await nc.flush()
        await nc.flush()
    # nats-py hands the server's message over in lower case.
    expected = {subject.lower() for subject in subjects if not may_publish(user, subject)}
    assert refused(violations, "Publish") == expected


@pytest.mark.parametrize("user", USERS)
async def test_each_user_subscribes_exactly_to_what_is_declared(server: Bus, user: str) -> None:
    wanted = subscriptions()
    async with server.connected(user) as (nc, violations):
        for subject, queue in wanted:
            await nc.subscribe(subject, queue=queue or "")
        await nc.flush()
        await nc.flush()
    expected = {
        (subject.lower(), queue)
        for subject, queue in wanted
        if not may_subscribe(user, subject, queue)
    }
    assert refused_with_queue(violations, "Subscription") == expected


async def test_each_request_a_user_may_send_is_answered_by_its_service(server: Bus) -> None:
    async with contextlib_stack(server, SERVICE_USERS) as services:
        for service, (nc, _) in services.items():

            async def answer(msg: Msg) -> None:
                await msg.respond(b'{"result": null}')

            await nc.subscribe(f"sw.rpc.{service}.>", queue=service, cb=answer)
            await nc.flush()
        for user in USERS:
            async with server.connected(user) as (nc, violations):
                allowed = [e for e in ENDPOINTS if may_publish(user, e.subject)]
                replies = await asyncio.gather(
                    *(nc.request(e.subject, b"{}", timeout=10) for e in allowed)
                )
                assert [reply.data for reply in replies] == [b'{"result": null}'] * len(allowed)
                assert violations == []


@asynccontextmanager
async def contextlib_stack(
    server: Bus, users: tuple[str, ...]
) -> AsyncIterator[dict[str, tuple[NatsClient, list[str]]]]:
    """Several users connected at once."""
    opened: dict[str, tuple[NatsClient, list[str]]] = {}
    managers = []
    try:
        for user in users:
            manager = server.connected(user)
            opened[user] = await manager.__aenter__()
            managers.append(manager)
        yield opened
    finally:
        for manager in reversed(managers):
            await manager.__aexit__(None, None, None)


async def test_the_portal_cannot_listen_to_anything_but_its_own_replies(server: Bus) -> None:
    wide = ["_INBOX.>", "sw.rpc.>", "sw.events.>", "$JS.API.>"]
    async with server.connected("portal") as (nc, violations):
        for subject in wide:
            await nc.subscribe(subject)
        await nc.flush()
        await nc.flush()
    assert refused(violations, "Subscription") == {subject.lower() for subject in wide}


async def refused_connection(
    url: str, user: str | None = None, password: str | None = None
) -> None:
    """Connecting to `url` (as `user`) fails with the server's authorization error."""
    client = NatsClient()
    try:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await client.connect(
                url,
                connect_timeout=5,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                user=user,
                password=password,
            )
    finally:
        await client.close()


async def test_an_anonymous_connection_is_refused(server: Bus) -> None:
    await refused_connection(server.platform.config.nats_url)


async def test_a_wrong_password_is_refused(server: Bus) -> None:
    await refused_connection(
        server.platform.config.nats_url,
        user="portal",
        password=server.credential("operator")["password"],
    )


def test_jetstream_syncs_every_write_to_disk(server: Bus) -> None:
    varz = http_json(f"http://127.0.0.1:{server.platform.config.nats_monitor_port}/varz")
    assert varz is not None
    assert varz["jetstream"]["config"]["sync_always"] is True


def test_credentials_are_the_owners_alone_and_kept_across_starts(server: Bus) -> None:
    config = server.platform.config
    assert config.credentials_dir.stat().st_mode & 0o777 == 0o700
    before = {}
    for user in USERS:
        path = config.credentials_file(user)
        assert path.stat().st_mode & 0o777 == 0o600
        before[user] = server.credential(user)
        assert before[user]["user"] == user
        assert before[user]["url"] == config.nats_url
    assert len({credential["password"] for credential in before.values()}) == len(USERS)
    Platform(config).write_credentials()
    assert {user: server.credential(user) for user in USERS} == before


async def test_the_subscriber_reads_a_public_stream_with_its_durable_and_resumes(
    server: Bus,
) -> None:
    async with server.connected("registration") as (owner, _):
        writer = owner.jetstream(timeout=5)
        await ensure_streams(writer, registration.STREAM)
        for n in (1, 2):
            await writer.publish(registration.SUBMITTED.subject, json.dumps({"n": n}).encode())
    for expected in (b'{"n": 1}', b'{"n": 2}'):
        # A new connection each time: the durable remembers what was acknowledged.
        async with server.connected("subscriber") as (nc, violations):
            reader = nc.jetstream(timeout=5)
            pull = await reader.pull_subscribe(
                "sw.events.registration.>", durable=SUBSCRIBER_DURABLE, stream="SW_REGISTRATION"
            )
            [message] = await pull.fetch(1, timeout=5)
            assert message.data == expected
            await message.ack_sync(timeout=5)
            assert violations == []


async def test_the_subscriber_may_not_name_its_durable_after_a_service(server: Bus) -> None:
    async with server.connected("registration") as (owner, _):
        await ensure_streams(owner.jetstream(timeout=5), registration.STREAM)
    [durable] = [d for s, stream, d in DURABLES if stream == "SW_REGISTRATION" and s == "accounts"]
    async with server.connected("subscriber") as (nc, violations):
        await nc.publish(js("CONSUMER", "CREATE", "SW_REGISTRATION", durable), b"{}")
        await nc.flush()
        await nc.flush()
    assert refused(violations, "Publish") == {
        js("CONSUMER", "CREATE", "SW_REGISTRATION", durable).lower()
    }


async def test_an_operator_replays_a_parked_event_through_its_own_service(
    server: Bus, tmp_path: Path
) -> None:
    """The operator may not publish the service's event; the service does it when asked."""
    config = server.platform.config
    settings = ServiceSettings(
        nats_url=config.nats_url,
        nats_credentials_file=config.credentials_file("registration"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'registration.db'}",
    )
    service = Service("registration", settings, MetaData())
    service.include(Routes("registration"), None)
    await service.broker.start()
    try:
        await service.declare_streams((registration.STREAM,))
        event = b'{"parked": true}'
        letter = await service.js.publish(
            f"sw.deadletter.registration.{PARKED_CONSUMER}",
            event,
            headers={"Sw-Original-Subject": registration.APPROVED.subject},
        )
        swctl = Swctl(config.nats_url, tmp_path / "swctl", config.data_dir)
        replayed = await asyncio.to_thread(swctl, "deadletter", "replay", str(letter.seq), "--json")
        assert replayed.code == 0, replayed.stderr
        assert replayed.json() == {
            "sequence": letter.seq,
            "service": "registration",
            "consumer": PARKED_CONSUMER,
            "applied": True,
        }
        async with server.connected("operator") as (operator, _):
            reading = await operator.jetstream(timeout=5).subscribe(
                registration.APPROVED.subject,
                stream="SW_REGISTRATION",
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
            )
            stored = await reading.next_msg(timeout=5)
            await reading.unsubscribe()
        assert stored.data == event
        gone = await asyncio.to_thread(swctl, "deadletter", "replay", str(letter.seq))
        assert gone.code == 1
    finally:
        await service.broker.stop()
        await service.db.close()


async def test_the_benchmarks_raw_account_sees_nothing_of_the_platform(tmp_path: Path) -> None:
    platform = Platform(
        PlatformConfig(
            data_dir=tmp_path,
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            raw_account=True,
        )
    )
    platform.start_nats()
    try:
        raw = Bus(platform)
        async with raw.connected("accounts") as (service, _), raw.connected("raw") as (nc, errors):

            async def answer(msg: Msg) -> None:
                await msg.respond(b"answered")

            await service.subscribe("sw.rpc.accounts.>", queue="accounts", cb=answer)
            await nc.subscribe("bench.echo", cb=answer)
            await service.flush()
            assert (await nc.request("bench.echo", b"", timeout=5)).data == b"answered"
            with pytest.raises(nats.errors.NoRespondersError):
                await nc.request(accounts.LOGIN_PASSWORD.subject, b"{}", timeout=5)
            assert errors == []
    finally:
        platform.stop()


@pytest.mark.parametrize("user", ["subscriber", "operator"])
@pytest.mark.parametrize("victim", ["accounts", "portal"])
async def test_a_consumer_delivers_wherever_its_creator_names_still_open(
    server: Bus, user: str, victim: str
) -> None:
    """Pins what deploy/nats/README.md says is still open (nats-io/nats-server#8274): NATS does
    not check a push consumer's `deliver_subject` against its creator's permissions, and no
    subject permission can tell a push consumer from a pull one (the body carries it). A user
    who may create consumers has stream messages delivered on a service's request subject or
    into another user's inbox. If this fails, NATS now refuses it: say so in the README."""
    async with server.connected("review") as (owner, _):
        await ensure_streams(owner.jetstream(timeout=5), review.STREAM)
    target, queue = (
        (accounts.LOGIN_PASSWORD.subject, accounts.LOGIN_PASSWORD.queue)
        if victim == "accounts"
        else (inbox_prefix("portal") + ".elsewhere", None)
    )
    async with server.connected(victim) as (listener, victim_errors):
        delivered = await listener.subscribe(target, queue=queue or "")
        await listener.flush()
        async with server.connected(user) as (nc, violations):
            await nc.jetstream(timeout=5).add_consumer(
                review.STREAM.name,
                ConsumerConfig(
                    deliver_subject=target,
                    deliver_group=queue,
                    deliver_policy=DeliverPolicy.NEW,
                    filter_subject=review.DECIDED.subject,
                ),
            )
            async with server.connected("review") as (owner, _):
                await owner.jetstream(timeout=5).publish(review.DECIDED.subject, b'{"leak": 1}')
            message = await delivered.next_msg(timeout=5)
            assert (message.subject, message.data) == (review.DECIDED.subject, b'{"leak": 1}')
            assert violations == victim_errors == []
