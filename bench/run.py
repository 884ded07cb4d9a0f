"""Benchmarks of the Single Window platform, reported as ratios against this machine's own bounds.

    uv run python bench/run.py [--quick] [--runs N] [--large-rows N | --million] [--json PATH]

It starts its own embedded platform (nats-server with JetStream and each service as its own
process, as `swctl up` does) under a temporary directory, on non-default loopback ports, and stops
it at the end. What each figure means is in bench/README.md.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import datetime as dt
import itertools
import json
import math
import os
import platform as host
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from singlewindow.contracts import accounts as accounts_contract
from singlewindow.contracts import registration as registration_contract
from singlewindow.contracts import review as review_contract
from singlewindow.contracts.identifiers import organisation_code_check_digit
from singlewindow.runtime.passwords import Argon2Parameters
from singlewindow.swctl.platform import Platform, PlatformConfig
from sqlalchemy import Table
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from stdnum.cn import uscc as stdnum_uscc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "application.json"
PASSWORD = "Chongqing-Trade-2026"
ECHO_SUBJECT = "bench.echo"
LOGIN_ACCOUNT = "benchlogin"
SERVICE_NAMES = ("registration", "review", "accounts")
CARDLESS_KIND = "registration.cardless"
SHOW_APPLICATION = registration_contract.SHOW_APPLICATION.subject
LIST_TASKS = review_contract.LIST_TASKS.subject
# Durable consumers whose backlog must drain before a measurement starts.
CONSUMERS = tuple(
    (subscription.stream.name, subscription.durable)
    for subscription in (
        review_contract.REVIEW_REQUESTS,
        accounts_contract.REGISTRATION_APPROVALS,
        registration_contract.REVIEW_DECISIONS,
    )
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MACHINE = ("machine busy", "machine total")


# Options and results


@dataclass(frozen=True)
class Options:
    """How long and how hard to push; the defaults keep the suite near 4 minutes on 2 idle cores."""

    runs: int
    seconds: float
    bound_seconds: float
    clients: int
    latency_requests: int
    latency_clients: int
    data_requests: int
    data_logins: int
    data_submits: int
    small_rows: int
    large_rows: int
    nats_port: int
    nats_monitor_port: int
    service_ports: dict[str, int]
    keep: bool
    json_path: Path | None


@dataclass
class Results:
    """Every raw figure of the run (written with --json) and the table printed at the end."""

    raw: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.lines += ["", title]

    def row(self, *cells: str) -> None:
        widths = (46, 16, 16, 16, 16)
        text = "".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False))
        self.lines.append("  " + text.rstrip())

    def note(self, text: str) -> None:
        self.lines.append("  " + text)


class Refused(Exception):
    """The platform answered with an error reply."""

    def __init__(self, subject: str, error: dict[str, Any]) -> None:
        super().__init__(f"{subject}: {error.get('code')}: {error.get('message')}")
        self.code = str(error.get("code"))


def median(values: Iterable[float]) -> float:
    found = list(values)
    return statistics.median(found) if found else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in (0, 1]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# Identifiers made to order

_serials = itertools.count(1)


def make_uscc(serial: int, division: str) -> str:
    """A valid USCC whose organisation code is `serial` (at most 8 digits) under `division`."""
    body = f"{serial:08d}"
    first17 = "91" + division + body + organisation_code_check_digit(body)
    return first17 + stdnum_uscc.calc_check_digit(first17)


def application(serial: int, account: str | None = None) -> dict[str, Any]:
    """examples/application.json with its own USCC and account name."""
    document: dict[str, Any] = json.loads(EXAMPLE.read_text("utf-8"))
    document["enterprise"]["uscc"] = make_uscc(serial, "500000")
    document["admin"]["account"] = account or f"bench{serial}"
    document["admin"]["password"] = PASSWORD
    return document


# The machine's own argon2id bound


@dataclass(frozen=True)
class Rate:
    """Operations per second, and CPU seconds per operation, of one timed window."""

    per_second: float
    cpu_per_op: float


def argon2_rate(operation: Callable[[], object], threads: int, seconds: float) -> Rate:
    """`operation` back to back in `threads` threads for `seconds`."""
    cpu_start, start = time.process_time(), time.perf_counter()
    deadline = start + seconds
    counts = [0] * threads

    def work(index: int) -> None:
        done = 0
        while time.perf_counter() < deadline:
            operation()
            done += 1
        counts[index] = done

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done = sum(counts)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Rate(done / elapsed, cpu / max(1, done))


def argon2_bound(kind: str, threads: int, seconds: float) -> Rate:
    """argon2-cffi hashing (`kind` "hash") or verifying with the platform's parameters."""
    hasher = Argon2Parameters().hasher()
    stored = hasher.hash(PASSWORD)
    if kind == "hash":
        return argon2_rate(lambda: hasher.hash(PASSWORD), threads, seconds)
    return argon2_rate(lambda: hasher.verify(stored, PASSWORD), threads, seconds)


# Processes: CPU time, memory, who else is on the machine


def cpu_seconds(pid: int) -> float:
    """CPU seconds the live threads of a process have used, to the nanosecond.

    /proc/PID/stat counts in clock ticks (10 ms), too coarse for a few requests; schedstat is
    exact but forgets threads that have ended (the services' worker threads live on).
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return total / 1e9


def machine_seconds() -> tuple[float, float]:
    """(busy CPU seconds, all CPU seconds) of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    total = sum(values)
    return (total - values[3] - values[4]) / CLOCK_TICKS, total / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and Pss of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                found["Pss"] = int(line.split()[1])
    except OSError:
        pass
    return found


def foreign_processes(own: set[int]) -> list[str]:
    """Other platforms, test runs and benchmarks on this machine: they share its cores."""
    markers = ("singlewindow.", "nats-server", "pytest", "swctl", "bench/run.py")
    seen = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if any(marker in command for marker in markers):
            seen.append(f"{entry.name}: {command[:100]}")
    return seen


class CpuMeter:
    """CPU seconds used, over a window, by each platform process, this client and the machine."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self._start = self._sample()

    def _sample(self) -> dict[str, float]:
        sample = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        sample["bench client"] = time.process_time()
        sample[MACHINE[0]], sample[MACHINE[1]] = machine_seconds()
        return sample

    def stop(self) -> dict[str, float]:
        """Seconds used per process, plus "platform" (the pids) and "other processes"."""
        end = self._sample()
        used = {name: end[name] - self._start[name] for name in end}
        used["platform"] = sum(used[name] for name in self.pids)
        used["other processes"] = max(
            0.0, used[MACHINE[0]] - used["platform"] - used["bench client"]
        )
        return used


# The platform


def ports_in_use(ports: Sequence[int]) -> list[int]:
    busy = []
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def database_path(platform: Platform, service: str) -> Path:
    database = make_url(platform.config.database_url(service)).database
    assert database is not None
    return Path(database)


def outbox_pending(platform: Platform) -> int:
    """Events committed but not yet relayed, over every service."""
    pending = 0
    for service in SERVICE_NAMES:
        path = database_path(platform, service)
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            pending += int(connection.execute("SELECT count(*) FROM outbox").fetchone()[0])
        finally:
            connection.close()
    return pending


class Bus:
    """The benchmark's NATS connection: commands with decoded replies, sent as swctl sends them."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.js = nc.jetstream()

    async def raw(self, subject: str, body: bytes, limit: float = 30.0) -> bytes:
        headers = {"correlation_id": str(uuid.uuid4())}
        message = await self.nc.request(subject, body, timeout=limit, headers=headers)
        data: bytes = message.data
        return data

    async def call(self, subject: str, payload: dict[str, Any]) -> Any:
        reply = json.loads(
            await self.raw(subject, json.dumps(payload, ensure_ascii=False).encode())
        )
        if "error" in reply:
            raise Refused(subject, reply["error"])
        return reply["result"]

    async def settle(self, platform: Platform, within: float = 60.0) -> None:
        """Wait until every outbox is relayed and every consumer has caught up."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            backlog = await asyncio.to_thread(outbox_pending, platform)
            for stream, durable in CONSUMERS:
                info = await self.js.consumer_info(stream, durable)
                backlog += (info.num_pending or 0) + (info.num_ack_pending or 0)
            if backlog == 0:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"the platform did not settle within {within:.0f}s")

    async def login(self) -> None:
        await self.call(
            accounts_contract.LOGIN_PASSWORD.subject,
            {"account": LOGIN_ACCOUNT, "password": PASSWORD},
        )

    async def submit(self) -> None:
        serial = next(_serials) + 10_000_000
        await self.call(registration_contract.SUBMIT_CARDLESS.subject, application(serial))

    async def onboarding_check(self, serial: int) -> None:
        await self.call(
            accounts_contract.ONBOARDING_CHECK.subject,
            {"uscc": make_uscc(serial, "510000"), "account": f"free{serial}"},
        )


async def register_login_account(bus: Bus, platform: Platform) -> str:
    """Submit an application, approve its review task, wait for accounts to create the admin."""
    document = application(next(_serials), LOGIN_ACCOUNT)
    result = await bus.call(registration_contract.SUBMIT_CARDLESS.subject, document)
    application_id: str = result["application_id"]
    await bus.settle(platform)
    tasks = await bus.call(LIST_TASKS, {"state": "open"})
    (task_id,) = [t["task_id"] for t in tasks["tasks"] if t["application_id"] == application_id]
    await bus.call(
        review_contract.DECIDE_TASK.subject,
        {"task_id": task_id, "decision": "approve", "reviewer": "bench"},
    )
    # Polled through onboarding.check, not login: failed logins would start the throttle.
    deadline = time.monotonic() + 30
    check = {"uscc": document["enterprise"]["uscc"], "account": LOGIN_ACCOUNT}
    while not (await bus.call(accounts_contract.ONBOARDING_CHECK.subject, check))["account_taken"]:
        if time.monotonic() > deadline:
            raise TimeoutError("accounts did not create the approved administrator")
        await asyncio.sleep(0.1)
    await bus.login()
    return application_id


# Measurements through the platform


async def throughput(
    operation: Callable[[], Awaitable[object]], clients: int, seconds: float
) -> tuple[int, int, float]:
    """(completed, refused, elapsed seconds) of `clients` closed-loop clients for `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    done = refused = 0

    async def client() -> None:
        nonlocal done, refused
        while loop.time() < deadline:
            try:
                await operation()
            except Refused:
                refused += 1
            else:
                done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done, refused, time.perf_counter() - start


async def request_latencies(
    bus: Bus, subject: str, body: bytes, total: int, clients: int, expect: str
) -> list[float]:
    """Seconds per request of `total` requests from `clients` closed-loop clients."""
    samples: list[float] = []
    remaining = total

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            data = await bus.raw(subject, body, limit=10)
            samples.append(time.perf_counter() - started)
            if expect and expect.encode() not in data[:40]:
                raise RuntimeError(f"{subject}: unexpected reply {data[:200]!r}")

    await asyncio.gather(*(client() for _ in range(clients)))
    return samples


async def sequential(operation: Callable[[], Awaitable[object]], count: int) -> list[float]:
    """Seconds per call of `count` calls one after another."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - started)
    return samples


async def echo_responder(url: str) -> None:
    """A trivial raw nats-py responder: the floor any request/reply on this machine pays."""
    nc = await nats.connect(url, name="bench-echo")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(ECHO_SUBJECT, cb=echo)
    await stop.wait()
    await nc.close()


def start_echo(url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--echo-responder", url],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


async def wait_echo(bus: Bus, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await bus.raw(ECHO_SUBJECT, b"{}", limit=1)
            return
        except (NoRespondersError, NatsTimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# Seeding the service databases directly


def seed_rows(platform: Platform, start: int, stop: int, password_hash: str) -> float:
    """Add enterprises with their administrators, and approved applications, `start`..`stop`-1.

    The services must be stopped. Rows are shaped by the services' own SQLAlchemy tables (so they
    match what the migrations created) and written with sqlite3's executemany for speed. Returns
    the seconds it took.
    """
    from singlewindow.accounts.tables import accounts, enterprises
    from singlewindow.registration.repository import applications

    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    template = json.loads(EXAMPLE.read_text("utf-8"))
    template["enterprise"]["division"] = "110000"  # the seeded USCCs' province
    del template["admin"]["password"]

    def enterprise(n: int, uscc: str) -> dict[str, Any]:
        return {
            "uscc": uscc,
            "name": f"北京种子数据{n}有限公司",
            "name_en": None,
            "division": "110000",
            "address": "北京市东城区正义路2号",
            "legal_rep_name": "张三",
            "legal_rep_id_type": "resident_id",
            "legal_rep_id_number": "11010519491231002X",
            "legal_rep_mobile": "13800138000",
            "registered_via": "cardless",
            "created_at": now,
        }

    def account(n: int, uscc: str) -> dict[str, Any]:
        return {
            "account_id": f"acc_seed{n:010d}",
            "account": f"seed{n:08d}",
            "account_key": f"seed{n:08d}",
            "role": "admin",
            "uscc": uscc,
            "name": "李四",
            "id_type": "resident_id",
            "id_number": "11010519491231002X",
            "mobile": "13800138000",
            "email": None,
            "password_hash": password_hash,
            "password_must_change": False,
            "status": "active",
            "created_at": now,
        }

    def application_row(n: int, uscc: str) -> dict[str, Any]:
        template["enterprise"]["uscc"] = uscc
        template["admin"]["account"] = f"seed{n:08d}"
        return {
            "application_id": f"app_seed{n:010d}",
            "kind": CARDLESS_KIND,
            "uscc": uscc,
            "enterprise_name": f"北京种子数据{n}有限公司",
            "admin_account": f"seed{n:08d}",
            "admin_account_key": f"seed{n:08d}",
            "state": "approved",
            "reason": None,
            "attempt": 1,
            "details": json.dumps(template, ensure_ascii=False),
            "password_hash": password_hash,
            "submitted_at": now,
            "decided_at": now,
        }

    targets = {
        "accounts": ((enterprises, enterprise), (accounts, account)),
        "registration": ((applications, application_row),),
    }
    chunk = 20_000
    for service, tables in targets.items():
        connection = sqlite3.connect(database_path(platform, service), isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=OFF")
            for first in range(start, stop, chunk):
                numbers = range(first, min(first + chunk, stop))
                usccs = [make_uscc(n, "110000") for n in numbers]
                connection.execute("BEGIN")
                for table, build in tables:
                    insert_rows(
                        connection,
                        table,
                        (build(n, u) for n, u in zip(numbers, usccs, strict=True)),
                    )
                connection.execute("COMMIT")
        finally:
            connection.close()
    return time.perf_counter() - started


def insert_rows(
    connection: sqlite3.Connection, table: Table, rows: Iterable[dict[str, Any]]
) -> None:
    """executemany an INSERT of `rows`, each value converted as SQLAlchemy would store it."""
    dialect = sqlite_dialect.dialect()
    columns = [column for column in table.columns if column.name in known_columns(table)]
    converters = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]
    names = [column.name for column in columns]
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"

    def values(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            row[name] if convert is None else convert(row[name])
            for name, convert in zip(names, converters, strict=True)
        )

    connection.executemany(sql, (values(row) for row in rows))


SEEDED_COLUMNS = {
    "enterprises": {
        "uscc", "name", "name_en", "division", "address", "legal_rep_name", "legal_rep_id_type",
        "legal_rep_id_number", "legal_rep_mobile", "registered_via", "created_at",
    },
    "accounts": {
        "account_id", "account", "account_key", "role", "uscc", "name", "id_type", "id_number",
        "mobile", "email", "password_hash", "password_must_change", "status", "created_at",
    },
    "applications": {
        "application_id", "kind", "uscc", "enterprise_name", "admin_account", "admin_account_key",
        "state", "reason", "attempt", "details", "password_hash", "submitted_at", "decided_at",
    },
}  # fmt: skip


def known_columns(table: Table) -> set[str]:
    """The seeded columns `table` has; fail loudly if it grew a required one seeding lacks."""
    seeded = SEEDED_COLUMNS[table.name]
    missing = [
        column.name
        for column in table.columns
        if column.name not in seeded
        and not column.nullable
        and column.default is None
        and column.server_default is None
    ]
    if missing:
        raise RuntimeError(f"bench seeding lacks {table.name}.{missing}; update seed_rows")
    return seeded & {column.name for column in table.columns}


def table_counts(platform: Platform) -> dict[str, int]:
    """Rows in the tables the data-size figures are about."""
    counts = {}
    for service, tables in (
        ("accounts", ("enterprises", "accounts", "sessions")),
        ("registration", ("applications",)),
    ):
        connection = sqlite3.connect(database_path(platform, service), timeout=10)
        try:
            for name in tables:
                counts[name] = int(connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
        finally:
            connection.close()
    return counts


# Query plans of the statements the services really run


SQL_VERBS = ("SELECT", "UPDATE", "DELETE", "WITH")
# aiosqlite logs, at DEBUG, every call it hands to its thread: the DBAPI's own SQL and parameters.
AIOSQLITE_CALL = re.compile(
    r"^executing functools\.partial\(<built-in method execute of sqlite3\.Cursor object at"
    r" 0x[0-9a-f]+>, (?P<call>.*)\)$",
    re.DOTALL,
)


def logged_statements(log: Path, offset: int) -> list[tuple[str, tuple[Any, ...]]]:
    """Distinct SQL statements, with parameters, that aiosqlite logged after `offset`."""
    found: dict[str, tuple[Any, ...]] = {}
    with log.open("rb") as handle:
        handle.seek(offset)
        for line in handle.read().decode("utf-8", "replace").splitlines():
            try:
                event = json.loads(line).get("event", "")
            except ValueError:
                continue
            match = AIOSQLITE_CALL.match(event) if isinstance(event, str) else None
            if match is None:
                continue
            try:
                call = ast.literal_eval(f"({match['call']},)")
            except (ValueError, SyntaxError):
                continue  # a parameter that is not a literal (bytes are; datetimes are strings)
            statement = " ".join(str(call[0]).split())
            parameters = tuple(call[1]) if len(call) > 1 else ()
            if statement.upper().startswith(SQL_VERBS):
                found.setdefault(statement, parameters)
    return list(found.items())


def query_plans(platform: Platform, offsets: dict[str, int]) -> list[dict[str, Any]]:
    """EXPLAIN QUERY PLAN of every statement each service logged since `offsets`."""
    plans = []
    for service, offset in offsets.items():
        connection = sqlite3.connect(f"file:{database_path(platform, service)}?mode=ro", uri=True)
        try:
            for statement, parameters in logged_statements(platform.log_path(service), offset):
                values = parameters
                if len(values) != statement.count("?"):
                    values = (None,) * statement.count("?")
                try:
                    rows = connection.execute("EXPLAIN QUERY PLAN " + statement, values).fetchall()
                    plan = "; ".join(str(row[-1]) for row in rows)
                except sqlite3.Error as exc:
                    plan = f"could not explain: {exc}"
                plans.append({"service": service, "statement": statement, "plan": plan})
        finally:
            connection.close()
    return plans


def full_scans(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plans that read a whole table or index: their cost grows with the data."""
    return [
        plan
        for plan in plans
        if any(
            step.strip().startswith("SCAN") and "CONSTANT ROW" not in step
            for step in plan["plan"].split(";")
        )
    ]


# The suite


def platform_pids(platform: Platform) -> dict[str, int]:
    return {name: process.pid for name, process in platform.processes.items()}


async def measure_throughput(
    bus: Bus, platform: Platform, options: Options, threads: int
) -> list[dict[str, Any]]:
    """Logins and submissions per second, each window bracketed by argon2id bound windows."""
    for _ in range(2):  # warm-up: connections, statement caches, allocator arenas
        await throughput(bus.login, options.clients, 1.0)
        await throughput(bus.submit, options.clients, 1.0)
        await bus.settle(platform)
    pids = platform_pids(platform)
    runs: list[dict[str, Any]] = []
    for _ in range(options.runs):
        run: dict[str, Any] = {}
        for name, operation, kind in (
            ("login", bus.login, "verify"),
            ("submit", bus.submit, "hash"),
        ):
            before = await asyncio.to_thread(argon2_bound, kind, threads, options.bound_seconds)
            meter = CpuMeter(pids)
            done, refused, elapsed = await throughput(operation, options.clients, options.seconds)
            cpu = meter.stop()
            await bus.settle(platform)
            settled = meter.stop()
            after = await asyncio.to_thread(argon2_bound, kind, threads, options.bound_seconds)
            run[name] = {
                "rate": done / elapsed,
                "done": done,
                "refused": refused,
                "seconds": elapsed,
                "bound": (before.per_second + after.per_second) / 2,
                "argon2_cpu_per_op": (before.cpu_per_op + after.cpu_per_op) / 2,
                "cpu_seconds": cpu,
                # Work the window started and the platform finished after it (review tasks).
                "cpu_seconds_settled": settled,
            }
        runs.append(run)
    return runs


async def measure_latency(
    bus: Bus, platform: Platform, options: Options, application_id: str
) -> dict[str, dict[str, list[float]]]:
    """p50 and p99 of cheap requests, and of raw nats-py request/reply, at 1 and N clients."""
    echo = start_echo(platform.config.nats_url, platform.log_path("bench-echo"))
    try:
        await wait_echo(bus)
        pids = platform_pids(platform) | {"bench-echo": echo.pid}
        show = json.dumps({"application_id": application_id}).encode()
        unknown = json.dumps({"application_id": "app_doesnotexist0000"}).encode()
        open_tasks = len((await bus.call(LIST_TASKS, {}))["tasks"])
        requests = options.latency_requests
        cases = (
            ("raw nats-py echo", ECHO_SUBJECT, show, "", requests),
            ("application.show (found)", SHOW_APPLICATION, show, "result", requests),
            ("application.show (unknown id)", SHOW_APPLICATION, unknown, "", requests),
            # Unpaginated: it answers every open task, so fewer requests keep the run bounded.
            (f"review.tasks.list ({open_tasks} open)", LIST_TASKS, b"{}", "result", 50),
        )
        latency: dict[str, dict[str, list[float]]] = {}
        for clients in sorted({1, options.latency_clients}):
            for label, subject, body, expect, total in cases:
                await request_latencies(bus, subject, body, 20, clients, expect)
                key = f"{label} @{clients}"
                latency[key] = {"p50": [], "p99": [], "server_cpu": []}
                for _ in range(options.runs):
                    meter = CpuMeter(pids)
                    samples = await request_latencies(bus, subject, body, total, clients, expect)
                    cpu = meter.stop()
                    latency[key]["p50"].append(percentile(samples, 0.50))
                    latency[key]["p99"].append(percentile(samples, 0.99))
                    latency[key]["server_cpu"].append(cpu["platform"] / total)
        return latency
    finally:
        echo.terminate()
        echo.wait(10)


async def measure_data_size(
    bus: Bus, platform: Platform, options: Options, application_id: str
) -> dict[str, Any]:
    """Per-request latency and platform CPU with `small_rows`, then `large_rows`, seeded rows."""
    password_hash = Argon2Parameters().hasher().hash(PASSWORD)
    checks = itertools.count(1)

    async def show_found() -> None:
        await bus.call(SHOW_APPLICATION, {"application_id": application_id})

    async def check_free() -> None:
        await bus.onboarding_check(next(checks))

    operations: tuple[tuple[str, Callable[[], Awaitable[object]], int], ...] = (
        ("login", bus.login, options.data_logins),
        ("application.show", show_found, options.data_requests),
        ("onboarding.check", check_free, options.data_requests),
        ("cardless.submit", bus.submit, options.data_submits),
    )
    seeded = 0
    phases: dict[str, Any] = {}
    for rows in (options.small_rows, options.large_rows):
        for service in ("registration", "accounts"):
            await asyncio.to_thread(platform.stop_process, service)
        seconds = await asyncio.to_thread(seed_rows, platform, seeded, rows, password_hash)
        seeded = rows
        counts = await asyncio.to_thread(table_counts, platform)
        restart: dict[str, float] = {}
        for service in ("registration", "accounts"):
            began = time.perf_counter()
            await asyncio.to_thread(platform.start_service, service)
            restart[service] = time.perf_counter() - began
        platform.write_state()
        phase: dict[str, Any] = {"seed_seconds": seconds, "counts": counts, "start": restart}
        for _label, call, count in operations:  # warm-up after the restart
            await sequential(call, max(2, count // 10))
        await bus.settle(platform)
        pids = platform_pids(platform)
        for label, call, count in operations:
            phase[label] = {"seconds": [], "cpu_seconds": []}
            for _ in range(options.runs):
                meter = CpuMeter(pids)
                samples = await sequential(call, count)
                await bus.settle(platform)
                phase[label]["seconds"].append(median(samples))
                phase[label]["cpu_seconds"].append(meter.stop()["platform"] / count)
        phases[str(rows)] = phase
    # The services' real statements, logged at DEBUG for one more round, explained on the data.
    offsets: dict[str, int] = {}
    for service in ("registration", "accounts"):
        await asyncio.to_thread(platform.stop_process, service)
        offsets[service] = platform.log_path(service).stat().st_size
        platform.config.environment[f"SW_{service.upper()}_LOG_LEVEL"] = "DEBUG"
        await asyncio.to_thread(platform.start_service, service)
    for _label, call, _count in operations:
        await call()
    await bus.settle(platform)
    phases["plans"] = await asyncio.to_thread(query_plans, platform, offsets)
    return phases


async def suite(platform: Platform, options: Options, results: Results) -> None:
    threads = len(os.sched_getaffinity(0))
    nc = await nats.connect(platform.config.nats_url, name="bench", connect_timeout=5)
    bus = Bus(nc)
    try:
        application_id = await register_login_account(bus, platform)
        await bus.settle(platform)
        await asyncio.sleep(3)
        pids = platform_pids(platform)
        results.raw["memory_idle_kib"] = {name: memory_kib(pid) for name, pid in pids.items()}
        results.raw["throughput"] = await measure_throughput(bus, platform, options, threads)
        results.raw["latency"] = await measure_latency(bus, platform, options, application_id)
        await bus.settle(platform)
        await asyncio.sleep(3)
        results.raw["memory_after_load_kib"] = {name: memory_kib(pid) for name, pid in pids.items()}
        results.raw["data_size"] = await measure_data_size(bus, platform, options, application_id)
    finally:
        await nc.close()


# The report


def report(results: Results, options: Options, threads: int) -> None:
    raw = results.raw
    runs = raw["throughput"]
    results.section(
        f"1. Throughput: {options.clients} closed-loop clients, {options.seconds:g}s windows, each"
        f" between two {options.bound_seconds:g}s argon2id windows ({threads} threads)"
    )
    results.row("figure", "median", "ratio", "target")
    for name, kind, label in (
        ("login", "verify", "password logins"),
        ("submit", "hash", "cardless submissions"),
    ):
        these = [run[name] for run in runs]
        refused = sum(r["refused"] for r in these)
        results.row(f"argon2id {kind} bound", f"{median(r['bound'] for r in these):.1f}/s")
        results.row(
            f"{label} through the platform",
            f"{median(r['rate'] for r in these):.1f}/s",
            f"{median(r['rate'] / r['bound'] for r in these):.2f}",
            ">= 0.90 of bound",
            f"{refused} refused" if refused else "",
        )
        platform_cpu = [r["cpu_seconds_settled"]["platform"] / r["done"] for r in these]
        results.row(
            "  platform CPU per op; argon2id share of it",
            ms(median(platform_cpu)),
            f"{median(r['argon2_cpu_per_op'] / c for r, c in zip(these, platform_cpu, strict=True)):.2f}",
            ">= 0.90",
            f"argon2id {ms(median(r['argon2_cpu_per_op'] for r in these))}",
        )
        results.row(
            "  cores busy: platform / other processes",
            f"{median(r['cpu_seconds']['platform'] / r['seconds'] for r in these):.2f}",
            f"{median(r['cpu_seconds']['other processes'] / r['seconds'] for r in these):.2f}",
            f"of {threads}",
        )
    results.note("CPU per op by process (ms, window plus the work it left, median):")
    names = [n for n in runs[0]["login"]["cpu_seconds_settled"] if n not in (*MACHINE, "platform")]
    for op in ("login", "submit"):
        cells = []
        for name in names:
            used = median(r[op]["cpu_seconds_settled"][name] / r[op]["done"] for r in runs)
            cells.append(f"{name} {used * 1000:.1f}")
        results.note(f"  {op}: " + ", ".join(cells))

    results.section(
        f"2. Latency: {options.latency_requests} requests per run, closed loop; median over runs"
        " of each run's p50 and p99"
    )
    results.row("request @ concurrent clients", "p50", "p99", "ratio p50/p99", "server CPU/req")
    for key, values in raw["latency"].items():
        clients = key.rsplit("@", 1)[1]
        base = raw["latency"][f"raw nats-py echo @{clients}"]
        p50, p99 = median(values["p50"]), median(values["p99"])
        results.row(
            key,
            ms(p50),
            ms(p99),
            f"{p50 / median(base['p50']):.0f}x / {p99 / median(base['p99']):.0f}x",
            ms(median(values["server_cpu"])),
        )
    results.note(
        "ratio: against raw nats-py echo at the same concurrency; server CPU: services,"
        " nats-server and the echo responder"
    )

    results.section("3. Memory (MiB)")
    results.row("process", "RSS idle", "RSS after load", "peak RSS", "PSS after load")
    total = {"before": 0.0, "after": 0.0, "pss": 0.0}
    for name, before in raw["memory_idle_kib"].items():
        after = raw["memory_after_load_kib"][name]
        results.row(
            name,
            f"{before['VmRSS'] / 1024:.1f}",
            f"{after['VmRSS'] / 1024:.1f}",
            f"{after['VmHWM'] / 1024:.1f}",
            f"{after.get('Pss', 0) / 1024:.1f}",
        )
        total["before"] += before["VmRSS"] / 1024
        total["after"] += after["VmRSS"] / 1024
        total["pss"] += after.get("Pss", 0) / 1024
    results.row(
        "whole platform",
        f"{total['before']:.1f}",
        f"{total['after']:.1f}",
        "",
        f"{total['pss']:.1f}",
    )
    results.note("targets: each idle service well under 100 MiB; the whole platform under 600 MiB")

    small, large = str(options.small_rows), str(options.large_rows)
    phases = raw["data_size"]
    results.section(
        f"4. Cost with data: one client, median per request, {small} vs {large} seeded rows"
    )
    results.row("request", f"{small} rows", f"{large} rows", "ratio (~1.0)", "run-to-run spread")
    for name in ("login", "application.show", "onboarding.check", "cardless.submit"):
        for key, label in (("seconds", "latency"), ("cpu_seconds", "platform CPU")):
            a, b = (phases[rows][name][key] for rows in (small, large))
            spread = max((max(v) - min(v)) / median(v) for v in (a, b))
            results.row(
                f"{name} {label}",
                ms(median(a)),
                ms(median(b)),
                f"{median(b) / median(a):.2f}",
                f"up to {spread:.0%}",
            )
    for service in ("registration", "accounts"):
        a, b = (phases[rows]["start"][service] for rows in (small, large))
        results.row(f"{service} start to ready", f"{a:.2f} s", f"{b:.2f} s", f"{b / a:.2f}")
    for rows in (small, large):
        counts = ", ".join(f"{k} {v}" for k, v in phases[rows]["counts"].items())
        results.note(f"{rows}: seeded in {phases[rows]['seed_seconds']:.1f}s; rows: {counts}")
    scans = full_scans(phases["plans"])
    results.note(
        f"query plans at {large} rows: {len(phases['plans'])} distinct statements of these"
        f" requests explained, {len(scans)} read a whole table or index:"
    )
    for plan in scans:
        statement = plan["statement"]
        shown = statement[statement.find(" FROM ") :] if " FROM " in statement else statement
        results.note(f"  {plan['service']}: {plan['plan']}  <=  ...{shown[:120]}")


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs, shorter windows")
    parser.add_argument("--runs", type=int, help="runs per figure (default 5; 3 with --quick)")
    parser.add_argument("--clients", type=int, help="concurrent clients (default 2 x cores)")
    parser.add_argument("--small-rows", type=int, default=1_000)
    parser.add_argument("--large-rows", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="the same as --large-rows 1000000")
    parser.add_argument("--nats-port", type=int, default=24222)
    parser.add_argument("--nats-monitor-port", type=int, default=28222)
    parser.add_argument("--service-ports", default="28101,28102,28103", metavar="REG,REV,ACC")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    quick = bool(args.quick)
    ports = [int(p) for p in args.service_ports.split(",")]
    return Options(
        runs=args.runs or (3 if quick else 5),
        seconds=1.5 if quick else 3.0,
        bound_seconds=1.0 if quick else 1.5,
        clients=args.clients or 2 * cores,
        latency_requests=300 if quick else 600,
        latency_clients=4,
        data_requests=60 if quick else 120,
        data_logins=5 if quick else 8,
        data_submits=3 if quick else 5,
        small_rows=args.small_rows,
        large_rows=1_000_000 if args.million else args.large_rows,
        nats_port=args.nats_port,
        nats_monitor_port=args.nats_monitor_port,
        service_ports=dict(zip(SERVICE_NAMES, ports, strict=True)),
        keep=bool(args.keep),
        json_path=args.json,
    )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return host.machine()


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--echo-responder"]:
        asyncio.run(echo_responder(sys.argv[2]))
        return 0
    options = parse(argv)
    busy = ports_in_use(
        [options.nats_port, options.nats_monitor_port, *options.service_ports.values()]
    )
    if busy:
        print(f"bench: ports {busy} are in use; choose others (see --help)", file=sys.stderr)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    threads = len(os.sched_getaffinity(0))
    data_dir = Path(tempfile.mkdtemp(prefix="sw-bench-"))
    platform = Platform(
        PlatformConfig(
            data_dir=data_dir,
            nats_port=options.nats_port,
            nats_monitor_port=options.nats_monitor_port,
            service_ports=options.service_ports,
        )
    )
    results = Results()
    started = time.monotonic()
    load_before = os.getloadavg()
    busy_before = machine_seconds()
    try:
        platform.start()
        others = foreign_processes({os.getpid(), *platform_pids(platform).values()})
        asyncio.run(suite(platform, options, results))
    finally:
        platform.stop()
        if options.keep:
            print(f"bench: data kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    busy_after = machine_seconds()
    results.raw["machine"] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": threads,
        "cpu": cpu_model(),
        "python": host.python_version(),
        "argon2": vars(Argon2Parameters()),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "machine_busy": (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1]),
        "other_processes": others,
        "wall_seconds": time.monotonic() - started,
        "options": {k: str(v) for k, v in vars(options).items()},
    }
    report(results, options, threads)
    machine = results.raw["machine"]
    print(
        f"Single Window benchmark  {machine['date']}  {threads} cores ({machine['cpu']})"
        f"  Python {machine['python']}  argon2id {machine['argon2']}"
    )
    print(
        f"medians over {options.runs} runs; wall {machine['wall_seconds']:.0f}s;"
        f" load average {load_before[0]:.2f} before, {machine['loadavg_after'][0]:.2f} after;"
        f" {len(others)} other platform/test processes at start"
    )
    for line in others:
        print(f"  other: {line}")
    print("\n".join(results.lines))
    if options.json_path:
        options.json_path.write_text(json.dumps(results.raw, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
