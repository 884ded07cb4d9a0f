"""The real platform for integration tests: nats-server and every service as its own process."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import secrets
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import nats
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel
from singlewindow.contracts import accounts
from singlewindow.contracts.bus import inbox_prefix
from singlewindow.contracts.endpoints import Audience, Endpoint
from singlewindow.contracts.wire import decode_result
from singlewindow.swctl.platform import (
    CARD_GATEWAY,
    CLIENT_USERS,
    SERVICES,
    Platform,
    PlatformConfig,
)

T = TypeVar("T")
ReplyT = TypeVar("ReplyT", bound=BaseModel | None)

ROOT = Path(__file__).resolve().parents[2]

# Redelivery in fractions of a second, not minutes. Throttle delays are timed in the fast tier
# (tests/accounts) with a clock the test moves; here the first delay outlasts any test, so the
# throttle's refusal is seen without racing it.
FAST_TEST_SETTINGS = {
    "SW_ACCOUNTS_THROTTLE_BASE_SECONDS": "600",
    "SW_ACCOUNTS_THROTTLE_FREE_FAILURES": "3",
} | {f"SW_{service.upper()}_REDELIVERY_DELAYS": "[0.1, 0.2, 0.2, 0.2, 0.2]" for service in SERVICES}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def postgres_admin_url() -> str:
    """The PostgreSQL server the suite uses: $SW_TEST_POSTGRES_URL, or the local one set up now."""
    url = os.environ.get("SW_TEST_POSTGRES_URL")
    if url:
        return url
    script = ROOT / "scripts" / "postgres.sh"
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=300, check=True)
    return result.stdout.strip().splitlines()[-1]


@contextmanager
def postgres_databases(
    services: Iterable[str], admin_url: str, *, prefix: str = "sw_test"
) -> Iterator[dict[str, str]]:
    """A fresh database per service on the server of `admin_url` (a SQLAlchemy asyncpg URL),
    dropped afterwards; yields the services' URLs. The benchmark makes its databases here too."""
    plain = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    run_id = secrets.token_hex(4)
    names = {service: f"{prefix}_{run_id}_{service.replace('-', '_')}" for service in services}

    async def execute(statements: list[str]) -> None:
        connection = await asyncpg.connect(plain, timeout=10)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute([f'CREATE DATABASE "{name}"' for name in names.values()]))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield {service: f"{base}/{name}" for service, name in names.items()}
    finally:
        asyncio.run(
            execute([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names.values()])
        )


@contextmanager
def running_platform(
    backend: str, data_dir: Path, *, with_cards: bool = False, **environment: str
) -> Iterator[Platform]:
    """The whole platform on `backend` (sqlite or postgresql), on free ports, stopped afterwards.

    `with_cards` adds card-gateway and a pcscd with the vpcd reader: a private one on free ports
    where the machine allows it (see `singlewindow.virtual_card.pcscd`), else the machine's. The
    accounts service then trusts the platform's development CA (`platform.config.dev_ca_dir`)
    unless `environment` says otherwise; `platform.pcscd.port_of(reader)` is where a virtual card
    goes into a reader.
    """
    services = list(SERVICES) + ([CARD_GATEWAY] if with_cards else [])

    @contextmanager
    def databases() -> Iterator[dict[str, str]]:
        if backend == "postgresql":
            with postgres_databases(services, postgres_admin_url()) as urls:
                yield urls
        else:
            yield {}

    with databases() as urls:
        config = PlatformConfig(
            data_dir=data_dir,
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            service_ports={service: free_port() for service in services},
            database_urls=urls,
            environment=FAST_TEST_SETTINGS | environment,
            cards=with_cards,
            pcscd_mode="auto",
        )
        platform = Platform(config)
        try:
            platform.start()
            yield platform
        finally:
            platform.stop()


class Bus:
    """A test's NATS connection: requests with typed replies, raw requests; JetStream reads
    (`js`) go over a connection of their own, as the operator unless told otherwise."""

    def __init__(self, nc: NatsClient, reader: NatsClient | None = None) -> None:
        self.nc = nc
        self.js = (reader or nc).jetstream()

    async def call(
        self, endpoint: Endpoint[Any, ReplyT], request: dict[str, Any] | BaseModel
    ) -> ReplyT:
        """Send a request; return its typed result or raise its DomainError."""
        message = await self.nc.request(endpoint.subject, _json(request), timeout=10)
        return decode_result(endpoint, message.data)

    async def raw(self, endpoint: Endpoint[Any, Any] | str, body: bytes) -> dict[str, Any]:
        """Send raw bytes to an endpoint (or any subject); return the decoded JSON reply."""
        subject = endpoint if isinstance(endpoint, str) else endpoint.subject
        message = await self.nc.request(subject, body, timeout=10)
        reply: dict[str, Any] = json.loads(message.data)
        return reply


CLIENTS = frozenset(CLIENT_USERS)


def caller_of(endpoint: Endpoint[Any, Any]) -> str:
    """The NATS user that may send requests to `endpoint`: the portal for people's requests,
    the workstation for card readers, the service that declares asking for a SERVICE one."""
    if endpoint.audience is Audience.LOCAL:
        return "workstation"
    if endpoint.audience is not Audience.SERVICE:
        return "portal"
    if endpoint in accounts.DECISIONS:  # issue 10: the business systems ask these
        return "business"
    for service in SERVICES:
        handlers = importlib.import_module(f"singlewindow.{service}.handlers")
        if endpoint in handlers.routes.asks:
            return service
    raise LookupError(f"no service asks {endpoint.subject}")


def credential(platform: Platform, user: str) -> dict[str, str]:
    """The credential `swctl up` wrote for `user`: url, user, password."""
    path = platform.config.credentials_file(user)
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


async def connect(platform: Platform, user: str = "portal", **options: Any) -> NatsClient:
    """A nats-py connection to the platform as `user` (a service, portal, subscriber,
    operator or workstation), receiving on that user's own inbox prefix."""
    found = credential(platform, user)
    return await nats.connect(
        platform.config.nats_url,
        user=found["user"],
        password=found["password"],
        inbox_prefix=inbox_prefix(user),
        connect_timeout=5,
        **options,
    )


@asynccontextmanager
async def bus(platform: Platform, user: str = "portal") -> AsyncIterator[Bus]:
    """A connection to the platform's NATS as `user`: `portal`, as people's requests come, by
    default; a service's user to call its SERVICE endpoints or read its streams."""
    nc = await connect(platform, user)
    reader = await connect(platform, "operator") if user in CLIENTS else None
    try:
        yield Bus(nc, reader)
    finally:
        await nc.close()
        if reader is not None:
            await reader.close()


async def eventually(check: Callable[[], Awaitable[T | None]], within: float = 15.0) -> T:
    """Poll `check` until it returns something, or fail after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result is not None:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def _json(value: dict[str, Any] | BaseModel) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return json.dumps(value, ensure_ascii=False).encode()
