"""The NATS permission table: generated from the code, and enforced by a real nats-server.

The server runs `deploy/nats/permissions.conf` as committed; each service's user does what its
code does (the same stream declarations, consumer configuration and subjects) and is refused
what belongs to another service.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow.contracts import accounts, registration, review
from singlewindow.contracts.bus import DEAD_LETTER_STREAM, inbox_prefix, replay_subject
from singlewindow.contracts.notify import NOTIFIER_DURABLE
from singlewindow.runtime.messaging import consumer_config, ensure_streams
from singlewindow.swctl.platform import nats_server_binary

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "deploy" / "nats" / "generate.py"
PERMISSIONS = ROOT / "deploy" / "nats" / "permissions.conf"
USERS = (
    "registration",
    "review",
    "accounts",
    "card-gateway",
    "filing",  # customs filing (issue 11)
    "portal",
    "workstation",
    "subscriber",
    "operator",
    "notifier",
    "business",
)
START_TIMEOUT = 10.0
REFUSAL_TIMEOUT = 2

pytestmark = pytest.mark.timeout(60)


def load_generator() -> ModuleType:
    """deploy/nats/generate.py, which is a script, not a package."""
    spec = importlib.util.spec_from_file_location("deploy_nats_generate", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def password_variable(user: str) -> str:
    return f"SW_{user.upper().replace('-', '_')}_NATS_PASSWORD"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class NatsServer:
    port: int
    passwords: dict[str, str]
    log: Path

    def url(self, user: str | None) -> str:
        if user is None:
            return f"nats://127.0.0.1:{self.port}"
        return f"nats://{user}:{self.passwords[user]}@127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    directory = tmp_path_factory.mktemp("nats")
    passwords = {user: "p" + secrets.token_hex(16) for user in USERS}
    env = os.environ | {password_variable(user): password for user, password in passwords.items()}
    port = free_port()
    log = directory / "nats-server.log"
    command = [nats_server_binary(), "-c", str(PERMISSIONS), "-a", "127.0.0.1", "-p", str(port)]
    command += ["-sd", str(directory / "store")]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"nats-server exited: {log.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nats-server did not listen: {log.read_text(errors='replace')}")
                time.sleep(0.05)
        yield NatsServer(port, passwords, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class Connection:
    nc: NatsClient
    errors: list[str]

    async def refused(self, what: str, kind: str = "publish") -> bool:
        """Whether the server refused to let this connection publish (or subscribe) to `what`.

        The server's -ERR may come after the PONG of a flush, so wait for it a little.
        """
        await self.nc.flush(timeout=REFUSAL_TIMEOUT)
        expected = f'permissions violation for {kind} to "{what.lower()}"'
        deadline = asyncio.get_running_loop().time() + REFUSAL_TIMEOUT
        while not any(expected in error for error in self.errors):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True


@asynccontextmanager
async def connect(server: NatsServer, user: str) -> AsyncIterator[Connection]:
    errors: list[str] = []

    async def collect(error: Exception) -> None:
        errors.append(str(error).lower())

    nc = await nats.connect(
        server.url(user),
        name=f"test-{user}",
        connect_timeout=2,
        allow_reconnect=False,
        error_cb=collect,
        inbox_prefix=inbox_prefix(user),
    )
    try:
        yield Connection(nc, errors)
    finally:
        await nc.close()


async def serve(connection: Connection, subject: str, queue: str, answer: bytes) -> None:
    """Answer requests on `subject` as the owning service does (queue group, one reply)."""

    async def reply(msg: Msg) -> None:
        await msg.respond(answer)

    await connection.nc.subscribe(subject, queue=queue, cb=reply)
    await connection.nc.flush()


async def ask(connection: Connection, subject: str, payload: bytes = b"{}") -> bytes:
    """A request to a subject `serve` has just subscribed, on an allowed connection.

    Once in CI (one run in many), nats-server answered "no responders" to a request from a
    connection that was open before the responder's subscription, although the responder had
    flushed it; so a request that finds nobody yet is asked again, for a second at most.
    """
    deadline = asyncio.get_running_loop().time() + 1
    while True:
        try:
            return (await connection.nc.request(subject, payload, timeout=5)).data
        except NoRespondersError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


def test_permission_files_are_generated_from_the_code() -> None:
    generator = load_generator()
    assert generator.stale() == [], "run `uv run python deploy/nats/generate.py` and commit"


async def test_a_connection_without_credentials_is_refused(server: NatsServer) -> None:
    errors: list[Exception] = []

    async def collect(error: Exception) -> None:
        errors.append(error)

    client = NatsClient()
    try:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await client.connect(
                server.url(None),
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=collect,
            )
    finally:
        await client.close()


async def test_registration_declares_its_streams_and_publishes_its_events(
    server: NatsServer,
) -> None:
    async with connect(server, "registration") as conn:
        js = conn.nc.jetstream(timeout=5)
        await ensure_streams(js, registration.STREAM)
        ack = await js.publish(
            registration.SUBMITTED.subject, b"{}", headers={"Nats-Msg-Id": secrets.token_hex(8)}
        )
        assert ack.stream == registration.STREAM.name
        assert conn.errors == []


async def test_review_consumes_review_requests_through_its_own_durable_only(
    server: NatsServer,
) -> None:
    durable = review.REVIEW_REQUESTS.durable
    async with connect(server, "review") as owner:
        await ensure_streams(owner.nc.jetstream(timeout=5), review.STREAM, review.REQUESTS_STREAM)
    async with connect(server, "registration") as writer:
        js = writer.nc.jetstream(timeout=5)
        await ensure_streams(js, registration.STREAM)
        ack = await js.publish(review.REQUESTED.subject, b'{"n":1}')
        assert ack.stream == review.REQUESTS_STREAM.name
        assert writer.errors == []
    async with connect(server, "review") as conn:
        js = conn.nc.jetstream(timeout=5)
        subscription = await js.pull_subscribe(
            review.REQUESTED.subject,
            durable=durable,
            stream=review.REQUESTS_STREAM.name,
            config=consumer_config(durable, review.REQUESTED.subject),
        )
        [message] = await subscription.fetch(1, timeout=5)
        await message.ack_sync(timeout=5)
        assert conn.errors == []

        await conn.nc.publish(
            "$JS.API.CONSUMER.INFO.SW_REGISTRATION.accounts-registration-approved"
        )
        assert await conn.refused(
            "$JS.API.CONSUMER.INFO.SW_REGISTRATION.accounts-registration-approved"
        )


async def test_registration_may_request_a_review_but_not_decide_one(server: NatsServer) -> None:
    async with connect(server, "registration") as conn:
        js = conn.nc.jetstream(timeout=5)
        await ensure_streams(js, registration.STREAM)
        await conn.nc.publish(review.DECIDED.subject, b"{}")
        assert await conn.refused(review.DECIDED.subject)


async def test_a_reader_looks_up_the_writers_stream_but_cannot_change_it(
    server: NatsServer,
) -> None:
    async with connect(server, "registration") as owner:
        await ensure_streams(owner.nc.jetstream(timeout=5), registration.STREAM)
    async with connect(server, "accounts") as reader:
        js = reader.nc.jetstream(timeout=0.5)
        assert (await js.stream_info(registration.STREAM.name)).config.name == "SW_REGISTRATION"
        with pytest.raises(NatsTimeoutError):
            await ensure_streams(js, registration.STREAM)
        assert await reader.refused("$JS.API.STREAM.UPDATE.SW_REGISTRATION")


async def test_review_publishes_its_own_events_but_not_another_services(
    server: NatsServer,
) -> None:
    async with connect(server, "review") as conn:
        js = conn.nc.jetstream(timeout=5)
        await ensure_streams(js, review.STREAM)
        ack = await js.publish(review.DECIDED.subject, b"{}")
        assert ack.stream == review.STREAM.name

        await conn.nc.publish("sw.events.accounts.enterprise-registered.v1", b"{}")
        assert await conn.refused("sw.events.accounts.enterprise-registered.v1")
        await conn.nc.publish("sw.audit.accounts.authentication-attempted.v1", b"{}")
        assert await conn.refused("sw.audit.accounts.authentication-attempted.v1")


async def test_only_accounts_may_ask_registration_for_onboarding_details(
    server: NatsServer,
) -> None:
    subject = registration.ONBOARDING_DETAILS.subject
    async with connect(server, "registration") as owner:
        await serve(owner, subject, registration.QUEUE, b"details")
        async with connect(server, "accounts") as conn:
            assert await ask(conn, subject) == b"details"
        for user in ("review", "portal"):
            async with connect(server, user) as conn:
                with pytest.raises(NatsTimeoutError):
                    await conn.nc.request(subject, b"{}", timeout=0.5)
                assert await conn.refused(subject), user
        assert owner.errors == []


async def test_registration_may_ask_accounts_whether_a_uscc_is_free(server: NatsServer) -> None:
    async with connect(server, "accounts") as owner:
        subject = accounts.ONBOARDING_CHECK.subject
        await serve(owner, subject, accounts.QUEUE, b"free")
        async with connect(server, "registration") as conn:
            assert await ask(conn, subject) == b"free"
        async with connect(server, "review") as conn:
            await conn.nc.publish(subject, b"{}")
            assert await conn.refused(subject)


async def test_the_portal_sends_public_requests(server: NatsServer) -> None:
    async with connect(server, "registration") as owner:
        subject = registration.SHOW_APPLICATION.subject
        await serve(owner, subject, registration.QUEUE, b"shown")
        async with connect(server, "portal") as conn:
            assert await ask(conn, subject) == b"shown"


async def test_a_service_subscribes_to_requests_only_its_own_in_its_queue_group(
    server: NatsServer,
) -> None:
    # Its own subjects in its own queue group are served in the tests above (`serve`).
    async with connect(server, "registration") as conn:
        # A plain subscriber would see every request, passwords included, beside the group.
        await conn.nc.subscribe("sw.rpc.registration.>")
        assert await conn.refused("sw.rpc.registration.>", "subscription")
        await conn.nc.subscribe("sw.rpc.accounts.>", queue=accounts.QUEUE)
        assert await conn.refused("sw.rpc.accounts.>", "subscription")
        await conn.nc.subscribe("sw.events.>")
        assert await conn.refused("sw.events.>", "subscription")


async def test_the_subscriber_tails_public_events_but_not_the_audit_trail(
    server: NatsServer,
) -> None:
    async with connect(server, "accounts") as owner:
        js = owner.nc.jetstream(timeout=5)
        await ensure_streams(js, accounts.STREAM, accounts.AUDIT_STREAM)
        await js.publish(accounts.AUTHENTICATION_ATTEMPTED.subject, b'{"audit":true}')
    async with connect(server, "registration") as writer:
        js = writer.nc.jetstream(timeout=5)
        await ensure_streams(js, registration.STREAM)
        await js.publish(registration.APPROVED.subject, b'{"ok":1}')

    async with connect(server, "subscriber") as conn:
        js = conn.nc.jetstream(timeout=1)
        subscription = await js.subscribe(
            registration.APPROVED.subject,
            stream=registration.STREAM.name,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        message = await subscription.next_msg(timeout=5)
        assert message.data == b'{"ok":1}'
        await subscription.unsubscribe()

        with pytest.raises(NatsTimeoutError):
            await js.subscribe(
                accounts.AUTHENTICATION_ATTEMPTED.subject,
                stream=accounts.AUDIT_STREAM.name,
                ordered_consumer=True,
            )
        assert await conn.refused(f"$JS.API.CONSUMER.CREATE.{accounts.AUDIT_STREAM.name}")


async def test_only_the_operator_reads_and_replays_dead_letters(server: NatsServer) -> None:
    dead_letter = f"sw.deadletter.review.{review.REVIEW_REQUESTS.durable}"
    async with connect(server, "review") as owner:
        js = owner.nc.jetstream(timeout=5)
        await ensure_streams(js, review.STREAM, review.REQUESTS_STREAM)
        ack = await js.publish(
            dead_letter,
            b'{"n":2}',
            headers={"Sw-Original-Subject": review.REQUESTED.subject},
        )

    async with connect(server, "portal") as conn:
        js = conn.nc.jetstream(timeout=0.5)
        with pytest.raises(NatsTimeoutError):
            await js.get_msg(DEAD_LETTER_STREAM.name, ack.seq)
        assert await conn.refused(f"$JS.API.STREAM.MSG.GET.{DEAD_LETTER_STREAM.name}")
        await conn.nc.publish(review.REQUESTED.subject, b"{}")
        assert await conn.refused(review.REQUESTED.subject)

    async with connect(server, "operator") as conn:
        js = conn.nc.jetstream(timeout=5)
        listing = await js.subscribe(
            DEAD_LETTER_STREAM.subjects[0],
            stream=DEAD_LETTER_STREAM.name,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        assert (await listing.next_msg(timeout=5)).data == b'{"n":2}'
        await listing.unsubscribe()
        # What `swctl deadletter replay` does: fetch, ask its service to apply it, drop.
        letter = await js.get_msg(DEAD_LETTER_STREAM.name, ack.seq)
        assert letter.subject == dead_letter
        async with connect(server, "review") as owner:
            replay = replay_subject("review", review.REVIEW_REQUESTS.durable)
            await serve(owner, replay, review.QUEUE, b'{"applied": true}')
            assert await ask(conn, replay, b'{"sequence": 1}') == b'{"applied": true}'
        assert await js.delete_msg(DEAD_LETTER_STREAM.name, ack.seq)
        # Never an event itself: it would forge a review request, or a decision.
        for forged in (review.REQUESTED.subject, review.DECIDED.subject):
            await conn.nc.publish(forged, b"{}")
            assert await conn.refused(forged)
        next_message = (
            f"$JS.API.CONSUMER.MSG.NEXT.SW_REVIEW_REQUESTS.{review.REVIEW_REQUESTS.durable}"
        )
        await conn.nc.publish(next_message)
        assert await conn.refused(next_message)


async def test_only_the_notifier_reads_the_notification_stream(server: NatsServer) -> None:
    async with connect(server, "accounts") as owner:
        js = owner.nc.jetstream(timeout=5)
        await ensure_streams(js, accounts.NOTIFY_STREAM)
        await js.publish(accounts.MESSAGE_REQUESTED.subject, b'{"text":"123456"}')

    for user in ("subscriber", "operator", "portal"):
        async with connect(server, user) as conn:
            js = conn.nc.jetstream(timeout=1)
            with pytest.raises(NatsTimeoutError):
                await js.subscribe(
                    accounts.MESSAGE_REQUESTED.subject,
                    stream=accounts.NOTIFY_STREAM.name,
                    ordered_consumer=True,
                )
            assert await conn.refused(f"$JS.API.CONSUMER.CREATE.{accounts.NOTIFY_STREAM.name}")
            await conn.nc.subscribe("sw.notify.>")
            assert await conn.refused("sw.notify.>", "subscription")

    async with connect(server, "notifier") as conn:
        js = conn.nc.jetstream(timeout=5)
        pull = await js.pull_subscribe(
            "sw.notify.>", durable=NOTIFIER_DURABLE, stream=accounts.NOTIFY_STREAM.name
        )
        [message] = await pull.fetch(1, timeout=5)
        assert message.data == b'{"text":"123456"}'
        await message.ack()
        # It reads messages, never writes one or another stream.
        await conn.nc.publish(accounts.MESSAGE_REQUESTED.subject, b"{}")
        assert await conn.refused(accounts.MESSAGE_REQUESTED.subject)
        audit = f"$JS.API.CONSUMER.CREATE.{accounts.AUDIT_STREAM.name}"
        await conn.nc.publish(audit, b"{}")
        assert await conn.refused(audit)


async def test_nobody_reads_another_users_replies(server: NatsServer) -> None:
    async with connect(server, "review") as review:
        for foreign in ("_INBOX_accounts.>", "_INBOX.>"):
            await review.nc.subscribe(foreign)
            assert await review.refused(foreign, "subscription")


# --- qualifications and permissions (issue 10) ---
async def test_only_the_business_systems_ask_the_decision_subjects(server: NatsServer) -> None:
    async with connect(server, "accounts") as owner:
        for endpoint in accounts.DECISIONS:
            await serve(owner, endpoint.subject, accounts.QUEUE, b"decided")
        async with connect(server, "business") as conn:
            for endpoint in accounts.DECISIONS:
                assert await ask(conn, endpoint.subject) == b"decided"
            await conn.nc.publish(accounts.QUALIFICATIONS_SAVE.subject, b"{}")
            assert await conn.refused(accounts.QUALIFICATIONS_SAVE.subject)
        async with connect(server, "portal") as conn:
            await conn.nc.publish(accounts.PERMISSIONS_CHECK.subject, b"{}")
            assert await conn.refused(accounts.PERMISSIONS_CHECK.subject)
        assert owner.errors == []
