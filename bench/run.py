"""Benchmarks of the Single Window platform, reported as ratios against this machine's own bounds.

    uv run python bench/run.py [--quick] [--runs N] [--large-rows N | --million] [--json PATH]
                               [--postgres postgresql+asyncpg://USER:PASSWORD@HOST:PORT/postgres]

It starts its own embedded platform (nats-server with JetStream and each service as its own
process, as `swctl up` does) under a temporary directory, on non-default loopback ports, and stops
it at the end. With --postgres it then does the same again with each service on a fresh
PostgreSQL database of that server (created for the run, dropped at the end), and prints both.
What each figure means is in bench/README.md.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
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

import asyncpg
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from singlewindow.contracts import accounts as accounts_contract
from singlewindow.contracts import registration as registration_contract
from singlewindow.contracts import review as review_contract
from singlewindow.contracts.bus import inbox_prefix
from singlewindow.contracts.identifiers import organisation_code_check_digit
from singlewindow.runtime.passwords import Argon2Parameters
from singlewindow.swctl.platform import RAW_USER, Platform, PlatformConfig
from singlewindow.swctl.staff import bootstrap_admin_file
from sqlalchemy import Table
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from stdnum.cn import uscc as stdnum_uscc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "application.json"
PASSWORD = "Chongqing-Trade-2026"
ECHO_SUBJECT = "bench.echo"
LOGIN_ACCOUNT = "benchlogin"
BENCH_STAFF_PASSWORD = "Yangtze-Harbour-Ledger-2026"
SERVICE_NAMES = ("registration", "review", "accounts")
PLATFORM_SERVICES = (*SERVICE_NAMES, "filing")
"""Every service the benchmark starts: accounts waits for filing's stream (customs codes)."""
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
    postgres: str | None
    aiosqlite: bool
    sql_counts: dict[str, int]


@dataclass
class Results:
    """Every raw figure of the run (written with --json) and the table printed at the end."""

    raw: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    widths: tuple[int, ...] = (46, 16, 16, 16, 16)

    def section(self, title: str) -> None:
        self.lines += ["", title]

    def row(self, *cells: str) -> None:
        text = "".join(cell.ljust(width) for cell, width in zip(cells, self.widths, strict=False))
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
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0  # the process ended (a PostgreSQL backend whose connection closed)
    for task in tasks:
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


Pids = dict[str, int | Sequence[int]]


class CpuMeter:
    """CPU seconds used, over a window, by each platform process, this client and the machine.

    A name may stand for several processes (the PostgreSQL backends serving one service).
    """

    def __init__(self, pids: Pids) -> None:
        self.pids = {
            name: [pid] if isinstance(pid, int) else list(pid) for name, pid in pids.items()
        }
        self._start = self._sample()

    def _sample(self) -> dict[str, float]:
        sample = {
            f"{name}\0{pid}": cpu_seconds(pid) for name, pids in self.pids.items() for pid in pids
        }
        sample["bench client"] = time.process_time()
        sample[MACHINE[0]], sample[MACHINE[1]] = machine_seconds()
        return sample

    def stop(self) -> dict[str, float]:
        """Seconds used per process, plus "platform" (the pids) and "other processes"."""
        end = self._sample()
        used: dict[str, float] = dict.fromkeys(self.pids, 0.0)
        for key, value in end.items():
            name = key.split("\0", 1)[0]
            # A process that ended meanwhile reads 0: its last window's CPU is lost, not negative.
            used[name] = used.get(name, 0.0) + max(0.0, value - self._start[key])
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


# Where the services keep their data: SQLite files, or PostgreSQL databases made for the run

SEEDED_TABLES = {"accounts": ("enterprises", "accounts"), "registration": ("applications",)}
COUNTED_TABLES = {
    "accounts": ("enterprises", "accounts", "sessions"),
    "registration": ("applications",),
}
# aiosqlite logs, at DEBUG, every call it hands to its thread ("hop"), e.g. a cursor's execute,
# or the one-hop dialect's (singlewindow/runtime/sqlite.py) whole statement, "<OneHop>".
SQLITE_HOP = re.compile(
    r"^executing functools\.partial\(<(?:built-in|bound) method (?:_OnThread\.)?(?P<method>\w+)"
    r" of (?:sqlite3\.\w+ object at 0x[0-9a-f]+|<OneHop>)>(?:, (?P<rest>.*))?\)$",
    re.DOTALL,
)
# `Database.run` / `read` (singlewindow/runtime/onetrip.py) log, at DEBUG, each transaction's one
# trip to the database's thread ("call") and each statement it runs there ("execute").
ONE_TRIP = re.compile(r"^one trip (?P<kind>call|execute) (?P<rest>.*)$", re.DOTALL)


@dataclass(frozen=True)
class Mark:
    """Where the database-side counters stood at one moment (see Store.mark)."""

    at: float
    values: dict[str, dict[str, float]]


class Store:
    """The services' databases as the benchmark reads, seeds and counts them, without the services.

    `mark()` and `delta()` count SQL work per service from outside the services: aiosqlite's
    DEBUG log lines on SQLite, PostgreSQL's own statistics views on PostgreSQL.
    """

    key = ""
    label = ""
    # Seconds until the database side's counters include work that has finished.
    flush_seconds = 0.0
    # Length of the idle window that measures background work (the relays' idle polls).
    idle_seconds = 3.0

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def outbox_pending(self) -> int:
        raise NotImplementedError

    async def seed(self, start: int, stop: int, password_hash: str) -> float:
        raise NotImplementedError

    async def counts(self) -> dict[str, int]:
        raise NotImplementedError

    async def server_pids(self) -> dict[str, list[int]]:
        """Database server processes working for the services (none for SQLite: in-process)."""
        return {}

    async def prepare_counting(self) -> None:
        return None

    async def mark(self) -> Mark:
        raise NotImplementedError

    async def delta(self, start: Mark, end: Mark) -> dict[str, dict[str, float]]:
        """Per service, each counted figure between two marks."""
        return {
            service: {
                name: end.values[service][name] - start.values[service].get(name, 0.0)
                for name in end.values[service]
            }
            for service in end.values
        }


class SqliteStore(Store):
    """Each service on its own SQLite file under the data directory (the platform's default)."""

    key = "sqlite"
    label = "SQLite"
    flush_seconds = 0.3
    idle_seconds = 3.0

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        self.debug_offsets: dict[str, int] = {}

    async def outbox_pending(self) -> int:
        return await asyncio.to_thread(outbox_pending, self.platform)

    async def seed(self, start: int, stop: int, password_hash: str) -> float:
        return await asyncio.to_thread(seed_rows, self.platform, start, stop, password_hash)

    async def counts(self) -> dict[str, int]:
        return await asyncio.to_thread(table_counts, self.platform)

    async def prepare_counting(self) -> None:
        """Restart every service with LOG_LEVEL=DEBUG, so that aiosqlite logs each hop."""
        for service in SERVICE_NAMES:
            await asyncio.to_thread(self.platform.stop_process, service)
            self.debug_offsets[service] = self.platform.log_path(service).stat().st_size
            self.platform.config.environment[f"SW_{service.upper()}_LOG_LEVEL"] = "DEBUG"
            await asyncio.to_thread(self.platform.start_service, service)
        self.platform.write_state()

    async def mark(self) -> Mark:
        values = {
            service: {"offset": float(self.platform.log_path(service).stat().st_size)}
            for service in SERVICE_NAMES
        }
        return Mark(time.monotonic(), values)

    async def delta(self, start: Mark, end: Mark) -> dict[str, dict[str, float]]:
        return await asyncio.to_thread(self._delta, start, end)

    def _delta(self, start: Mark, end: Mark) -> dict[str, dict[str, float]]:
        found = {}
        for service in SERVICE_NAMES:
            first, last = (int(m.values[service]["offset"]) for m in (start, end))
            with self.platform.log_path(service).open("rb") as handle:
                handle.seek(first)
                text = handle.read(last - first).decode("utf-8", "replace")
            figures = dict.fromkeys(("transactions", "statements", "writes", "hops"), 0.0)
            for line in text.splitlines():
                try:
                    event = json.loads(line).get("event", "")
                except (ValueError, AttributeError):
                    continue
                if not isinstance(event, str):
                    continue
                match = SQLITE_HOP.match(event)
                if match is None:
                    trip = ONE_TRIP.match(event)
                    if trip is None:
                        continue
                    if trip["kind"] == "call":  # the whole transaction: one hop
                        figures["hops"] += 1
                        continue
                    match = trip
                else:
                    figures["hops"] += 1
                    if match["method"] not in ("execute", "executemany"):
                        continue  # commit, rollback, fetchall, cursor, close, ...
                words = (match["rest"] or "").lstrip("'\"").split(None, 1)
                verb = words[0].upper() if words else ""
                if verb == "BEGIN":
                    figures["transactions"] += 1
                    continue
                figures["statements"] += 1
                if verb in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
                    figures["writes"] += 1
            found[service] = figures
        return found


def plain_postgres_url(url: str) -> str:
    """An asyncpg (libpq-style) URL from a SQLAlchemy one."""
    return re.sub(r"^postgresql(\+\w+)?://", "postgresql://", url)


class PostgresStore(Store):
    """Each service on its own database of one PostgreSQL server.

    SQL is counted from PostgreSQL's statistics: `pg_stat_database` (transactions committed and
    rolled back, rows inserted, updated and deleted) and `pg_stat_user_tables` (sequential and
    index scans), and `pg_stat_statements` (statements) where the server has it loaded. Backends
    report their statistics when idle, at most once a second and at the latest 10 s after their
    last transaction, hence `flush_seconds`. The benchmark's own queries on a service's database
    (each one transaction, the outbox polls one scan) are counted and taken off.
    """

    key = "postgresql"
    label = "PostgreSQL"
    flush_seconds = 11.0
    idle_seconds = 12.0

    def __init__(self, platform: Platform, admin_url: str) -> None:
        super().__init__(platform)
        self.admin_url = plain_postgres_url(admin_url)
        self.urls = {s: plain_postgres_url(platform.config.database_url(s)) for s in SERVICE_NAMES}
        self.names = {s: url.rsplit("/", 1)[1] for s, url in self.urls.items()}
        self.connections: dict[str, asyncpg.Connection] = {}
        self.admin: asyncpg.Connection | None = None
        self.own_pids: set[int] = set()
        self.own_queries = dict.fromkeys(SERVICE_NAMES, 0)
        self.own_polls = dict.fromkeys(SERVICE_NAMES, 0)
        self.statements_view = False

    async def open(self) -> None:
        self.admin = await asyncpg.connect(self.admin_url, timeout=10)
        for service, url in self.urls.items():
            self.connections[service] = await asyncpg.connect(url, timeout=10)
        for connection in (self.admin, *self.connections.values()):
            self.own_pids.add(int(await connection.fetchval("SELECT pg_backend_pid()")))
        try:
            await self.admin.fetchval("SELECT count(*) FROM pg_stat_statements")
            self.statements_view = True
        except asyncpg.PostgresError:
            self.statements_view = False  # not created, or not in shared_preload_libraries

    async def close(self) -> None:
        for connection in (*self.connections.values(), *([self.admin] if self.admin else [])):
            await connection.close()
        self.connections.clear()
        self.admin = None

    async def fetch(self, service: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        """A query on a service's database, counted (each one transaction) to be taken off."""
        self.own_queries[service] += 1
        rows: list[asyncpg.Record] = await self.connections[service].fetch(sql, *args)
        return rows

    async def outbox_pending(self) -> int:
        pending = 0
        for service in SERVICE_NAMES:
            self.own_polls[service] += 1
            pending += int((await self.fetch(service, "SELECT count(*) FROM outbox"))[0][0])
        return pending

    async def seed(self, start: int, stop: int, password_hash: str) -> float:
        """As `seed_rows`, with COPY (binary) into the services' tables, then ANALYZE them."""
        started = time.perf_counter()
        builders = seed_builders(password_hash)
        chunk = 20_000
        for service, tables in SEEDED_TABLES.items():
            connection = self.connections[service]
            for first in range(start, stop, chunk):
                numbers = range(first, min(first + chunk, stop))
                usccs = [make_uscc(n, "110000") for n in numbers]
                async with connection.transaction():
                    for name in tables:
                        table, build = builders[name]
                        columns = [c.name for c in table.columns if c.name in known_columns(table)]
                        records = [
                            tuple(row[c] for c in columns)
                            for row in (build(n, u) for n, u in zip(numbers, usccs, strict=True))
                        ]
                        await connection.copy_records_to_table(
                            name, records=records, columns=columns
                        )
            # Autovacuum would analyze them soon after such a load; do it now, as an operator would.
            for name in tables:
                await connection.execute(f"ANALYZE {name}")
        return time.perf_counter() - started

    async def counts(self) -> dict[str, int]:
        found = {}
        for service, tables in COUNTED_TABLES.items():
            for name in tables:
                found[name] = int((await self.fetch(service, f"SELECT count(*) FROM {name}"))[0][0])
        return found

    async def server_pids(self) -> dict[str, list[int]]:
        """The backends serving each service's database, on this machine (loopback servers)."""
        assert self.admin is not None
        rows = await self.admin.fetch(
            "SELECT pid, datname FROM pg_stat_activity WHERE datname = ANY($1::text[])",
            list(self.names.values()),
        )
        by_name = {name: service for service, name in self.names.items()}
        found: dict[str, list[int]] = {}
        for row in rows:
            if row["pid"] not in self.own_pids:
                found.setdefault(f"postgres ({by_name[row['datname']]})", []).append(row["pid"])
        return found

    async def prepare_counting(self) -> None:
        """Keep autovacuum out of the counting windows, and asyncpg's first prepares too.

        Autovacuum visits each database about once a minute and its ANALYZE of the churning small
        tables (outbox, inbox) writes pg_statistic rows in transactions of its own, which
        pg_stat_database would count as the services'. The tables have just been analyzed.
        """
        for service in SERVICE_NAMES:
            for row in await self.fetch(
                service, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ):
                await self.fetch(
                    service,
                    f'ALTER TABLE "{row[0]}" SET'
                    " (autovacuum_enabled = false, toast.autovacuum_enabled = false)",
                )
        await self.mark()  # asyncpg prepares each query once: keep that out of the windows

    async def mark(self) -> Mark:
        assert self.admin is not None
        at = time.monotonic()
        names = list(self.names.values())
        databases = {
            row["datname"]: row
            for row in await self.admin.fetch(
                "SELECT datname, xact_commit, xact_rollback FROM pg_stat_database"
                " WHERE datname = ANY($1::text[])",
                names,
            )
        }
        statements: dict[str, float] = {}
        if self.statements_view:
            for row in await self.admin.fetch(
                "SELECT d.datname, sum(s.calls) AS calls FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = ANY($1::text[])"
                " GROUP BY d.datname",
                names,
            ):
                statements[row["datname"]] = float(row["calls"] or 0)
        values: dict[str, dict[str, float]] = {}
        for service, name in self.names.items():
            # Before this mark's own query, which the next mark will see.
            own, polls = self.own_queries[service], self.own_polls[service]
            tables = await self.fetch(
                service,
                "SELECT relname, seq_scan, coalesce(idx_scan, 0) AS idx_scan,"
                " n_tup_ins + n_tup_upd + n_tup_del AS written FROM pg_stat_user_tables",
            )
            row = databases[name]
            figures = {
                "transactions": float(row["xact_commit"] + row["xact_rollback"] - own),
                "rows written": float(sum(t["written"] for t in tables)),
                "table scans": float(sum(t["seq_scan"] + t["idx_scan"] for t in tables) - polls),
            }
            if self.statements_view:
                figures["statements"] = statements.get(name, 0.0) - own
            for table in SEEDED_TABLES.get(service, ()):
                figures[f"seq scans of {table}"] = float(
                    sum(t["seq_scan"] for t in tables if t["relname"] == table)
                )
            values[service] = figures
        return Mark(at, values)


class Bus:
    """The benchmark's NATS connection: commands with decoded replies, sent as swctl sends them."""

    def __init__(
        self,
        nc: NatsClient,
        reader: NatsClient | None = None,
        asker: NatsClient | None = None,
    ) -> None:
        self.nc = nc
        # Consumers' state is the operator's to read: the portal has no JetStream.
        self.js = (reader or nc).jetstream()
        self.asker = asker or nc
        self.reviewer = ""
        """A reviewer's staff token, once `become_reviewer` has made one."""
        """Registration's connection: onboarding.check is a SERVICE endpoint it asks."""

    async def raw(self, subject: str, body: bytes, limit: float = 30.0) -> bytes:
        headers = {"correlation_id": str(uuid.uuid4())}
        nc = self.asker if subject == accounts_contract.ONBOARDING_CHECK.subject else self.nc
        message = await nc.request(subject, body, timeout=limit, headers=headers)
        data: bytes = message.data
        return data

    async def call(self, subject: str, payload: dict[str, Any]) -> Any:
        reply = json.loads(
            await self.raw(subject, json.dumps(payload, ensure_ascii=False).encode())
        )
        if "error" in reply:
            raise Refused(subject, reply["error"])
        return reply["result"]

    async def settle(self, store: Store, within: float = 60.0) -> None:
        """Wait until every outbox is relayed and every consumer has caught up."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            backlog = await store.outbox_pending()
            for stream, durable in CONSUMERS:
                info = await self.js.consumer_info(stream, durable)
                backlog += (info.num_pending or 0) + (info.num_ack_pending or 0)
            if backlog == 0:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"the platform did not settle within {within:.0f}s")

    async def become_reviewer(self, data_dir: Path) -> None:
        """Take the bootstrap administrator's one-time password, add a reviewer, and keep its
        token for review's requests (which need a staff session)."""
        one_time = json.loads(bootstrap_admin_file(data_dir).read_text())["password"]
        self.reviewer = await self._staff_session("admin", one_time, BENCH_STAFF_PASSWORD)
        added = await self.call(
            accounts_contract.STAFF_ADD.subject,
            {"token": self.reviewer, "account": "bench-reviewer", "role": "reviewer"},
        )
        self.reviewer = await self._staff_session(
            "bench-reviewer", added["one_time_password"], BENCH_STAFF_PASSWORD
        )

    async def _staff_session(self, account: str, one_time: str, password: str) -> str:
        """The token of `account`'s session once its one-time password is changed."""
        first = await self.call(
            accounts_contract.STAFF_LOGIN.subject, {"account": account, "password": one_time}
        )
        changed = await self.call(
            accounts_contract.STAFF_PASSWORD.subject,
            {"token": first["token"], "current_password": one_time, "new_password": password},
        )
        token: str = changed["token"]
        return token

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


async def register_login_account(bus: Bus, store: Store) -> dict[str, str]:
    """Submit an application, approve its review task, wait for accounts to create the admin;
    return what shows the application (its id and claim secret)."""
    document = application(next(_serials), LOGIN_ACCOUNT)
    result = await bus.call(registration_contract.SUBMIT_CARDLESS.subject, document)
    application_id: str = result["application_id"]
    await bus.settle(store)
    tasks = await bus.call(LIST_TASKS, {"state": "open", "token": bus.reviewer})
    (task_id,) = [t["task_id"] for t in tasks["tasks"] if t["application_id"] == application_id]
    await bus.call(
        review_contract.DECIDE_TASK.subject,
        {"task_id": task_id, "decision": "approve", "token": bus.reviewer},
    )
    # Polled through onboarding.check, not login: failed logins would start the throttle.
    deadline = time.monotonic() + 30
    check = {"uscc": document["enterprise"]["uscc"], "account": LOGIN_ACCOUNT}
    while not (await bus.call(accounts_contract.ONBOARDING_CHECK.subject, check))["account_taken"]:
        if time.monotonic() > deadline:
            raise TimeoutError("accounts did not create the approved administrator")
        await asyncio.sleep(0.1)
    await bus.login()
    return {"application_id": application_id, "claim_secret": result["claim_secret"]}


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


async def connect_as(platform: Platform, user: str, **options: Any) -> NatsClient:
    """A connection as one of the platform's NATS users: its credential, its own inbox."""
    credential = json.loads(platform.config.credentials_file(user).read_text())
    nc: NatsClient = await nats.connect(
        platform.config.nats_url,
        user=credential["user"],
        password=credential["password"],
        inbox_prefix=inbox_prefix(user),
        **options,
    )
    return nc


def raw_url(platform: Platform) -> str:
    """The URL of the platform's `RAW` account, its user and password in it (for the echo)."""
    credential = json.loads(platform.config.credentials_file(RAW_USER).read_text())
    port = platform.config.nats_port
    return f"nats://{credential['user']}:{credential['password']}@127.0.0.1:{port}"


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


RowBuilder = Callable[[int, str], dict[str, Any]]


def seed_builders(password_hash: str) -> dict[str, tuple[Table, RowBuilder]]:
    """Per seeded table: the service's own SQLAlchemy table, and row number + USCC -> row."""
    from singlewindow.accounts.tables import accounts, enterprises
    from singlewindow.registration.repository import applications

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

    return {
        "enterprises": (enterprises, enterprise),
        "accounts": (accounts, account),
        "applications": (applications, application_row),
    }


def seed_rows(platform: Platform, start: int, stop: int, password_hash: str) -> float:
    """Add enterprises with their administrators, and approved applications, `start`..`stop`-1.

    The services must be stopped. Rows are shaped by the services' own SQLAlchemy tables (so they
    match what the migrations created) and written with sqlite3's executemany for speed. Returns
    the seconds it took.
    """
    started = time.perf_counter()
    builders = seed_builders(password_hash)
    chunk = 20_000
    for service, names in SEEDED_TABLES.items():
        connection = sqlite3.connect(database_path(platform, service), isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=OFF")
            for first in range(start, stop, chunk):
                numbers = range(first, min(first + chunk, stop))
                usccs = [make_uscc(n, "110000") for n in numbers]
                connection.execute("BEGIN")
                for table, build in (builders[name] for name in names):
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
    for service, tables in COUNTED_TABLES.items():
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
    r"^executing functools\.partial\(<(?:built-in method execute of sqlite3\.Cursor object at"
    r" 0x[0-9a-f]+|bound method _OnThread\.execute of <OneHop>)>, (?P<call>.*)\)$"
    r"|^one trip execute (?P<trip>.*)$",
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
                call = ast.literal_eval(f"({match['call'] or match['trip']},)")
            except (ValueError, SyntaxError):
                continue  # a parameter that is not a literal (bytes are; datetimes are strings)
            statement = " ".join(str(call[0]).split())
            parameters = tuple(call[1]) if len(call) > 1 else ()
            if match["trip"]:  # logged without its parameters: plans here do not depend on them
                parameters = (None,) * statement.count("?")
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


# What an idle service's memory is made of

# Imported one after another in a fresh interpreter, the service's app module last: each step's
# RSS growth is what that library adds on top of those before it.
IMPORT_STEPS = (
    "pydantic",
    "pydantic_settings",
    "singlewindow.runtime.observability",  # structlog as the services import it: without rich
    "prometheus_client",
    "nats",
    "sqlalchemy",
    "sqlalchemy.ext.asyncio",
    "faststream.nats",
    "uvicorn",
    "argon2",
)
IMPORT_PROBE = """
import importlib, json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
steps = [("python", rss())]
for name in sys.argv[1:]:
    importlib.import_module(name)
    steps.append((name, rss()))
print(json.dumps(steps))
"""


def import_memory(platform: Platform) -> dict[str, list[tuple[str, int]]]:
    """Per service, VmRSS (KiB) of a fresh interpreter after each of IMPORT_STEPS and its app.

    Run with the service's own environment (its database URL), so the app module builds its
    engine as the running service does; the app is imported, not started.
    """
    found = {}
    for service in SERVICE_NAMES:
        prefix = f"SW_{service.upper()}_"
        env = os.environ.copy() | platform.config.environment
        env |= {
            prefix + "NATS_URL": platform.config.nats_url,
            prefix + "DATABASE_URL": platform.config.database_url(service),
        }
        steps = [*IMPORT_STEPS, f"singlewindow.{service}.app"]
        output = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE, *steps],
            capture_output=True,
            text=True,
            env=env,
            cwd=platform.config.data_dir,
            timeout=120,
            check=True,
        ).stdout
        found[service] = [(name, int(kib)) for name, kib in json.loads(output.splitlines()[-1])]
    return found


# The suite


def platform_pids(platform: Platform) -> dict[str, int]:
    return {name: process.pid for name, process in platform.processes.items()}


async def counted_pids(platform: Platform, store: Store) -> Pids:
    """The processes whose CPU is the platform's: services, nats-server, their database backends."""
    found: Pids = dict(platform_pids(platform))
    found.update(await store.server_pids())
    return found


async def measure_throughput(
    bus: Bus, platform: Platform, store: Store, options: Options, threads: int
) -> list[dict[str, Any]]:
    """Logins and submissions per second, each window bracketed by argon2id bound windows."""
    for _ in range(2):  # warm-up: connections, statement caches, allocator arenas
        await throughput(bus.login, options.clients, 1.0)
        await throughput(bus.submit, options.clients, 1.0)
        await bus.settle(store)
    runs: list[dict[str, Any]] = []
    for _ in range(options.runs):
        run: dict[str, Any] = {}
        pids = await counted_pids(platform, store)
        for name, operation, kind in (
            ("login", bus.login, "verify"),
            ("submit", bus.submit, "hash"),
        ):
            before = await asyncio.to_thread(argon2_bound, kind, threads, options.bound_seconds)
            meter = CpuMeter(pids)
            done, refused, elapsed = await throughput(operation, options.clients, options.seconds)
            cpu = meter.stop()
            await bus.settle(store)
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
    bus: Bus, platform: Platform, store: Store, options: Options, claim: dict[str, str]
) -> dict[str, dict[str, list[float]]]:
    """p50 and p99 of cheap requests, and of raw nats-py request/reply, at 1 and N clients."""
    echo = start_echo(raw_url(platform), platform.log_path("bench-echo"))
    # The baseline on the same server, authenticated too, in an account of its own.
    raw = Bus(await connect_as(platform, RAW_USER, name="bench-raw", connect_timeout=5))
    try:
        await wait_echo(raw)
        pids = await counted_pids(platform, store)
        pids["bench-echo"] = echo.pid
        show = json.dumps(claim).encode()
        unknown = json.dumps(claim | {"application_id": "app_doesnotexist0000"}).encode()
        listing = json.dumps({"token": bus.reviewer}).encode()
        open_tasks = len((await bus.call(LIST_TASKS, {"token": bus.reviewer}))["tasks"])
        requests = options.latency_requests
        cases = (
            ("raw nats-py echo", raw, ECHO_SUBJECT, show, "", requests),
            ("application.show (found)", bus, SHOW_APPLICATION, show, "result", requests),
            ("application.show (unknown id)", bus, SHOW_APPLICATION, unknown, "", requests),
            # Unpaginated: it answers every open task, so fewer requests keep the run bounded.
            (f"review.tasks.list ({open_tasks} open)", bus, LIST_TASKS, listing, "result", 50),
        )
        latency: dict[str, dict[str, list[float]]] = {}
        for clients in sorted({1, options.latency_clients}):
            for label, via, subject, body, expect, total in cases:
                await request_latencies(via, subject, body, 20, clients, expect)
                key = f"{label} @{clients}"
                latency[key] = {"p50": [], "p99": [], "server_cpu": []}
                for _ in range(options.runs):
                    meter = CpuMeter(pids)
                    samples = await request_latencies(via, subject, body, total, clients, expect)
                    cpu = meter.stop()
                    latency[key]["p50"].append(percentile(samples, 0.50))
                    latency[key]["p99"].append(percentile(samples, 0.99))
                    latency[key]["server_cpu"].append(cpu["platform"] / total)
        return latency
    finally:
        await raw.nc.close()
        echo.terminate()
        echo.wait(10)


def data_operations(
    bus: Bus, options: Options, claim: dict[str, str]
) -> tuple[tuple[str, Callable[[], Awaitable[object]], int], ...]:
    """The requests sections 4 and 5 send: label, call, and how many per run in section 4."""
    checks = itertools.count(1)

    async def show_found() -> None:
        await bus.call(SHOW_APPLICATION, claim)

    async def check_free() -> None:
        await bus.onboarding_check(next(checks))

    return (
        ("login", bus.login, options.data_logins),
        ("application.show", show_found, options.data_requests),
        ("onboarding.check", check_free, options.data_requests),
        ("cardless.submit", bus.submit, options.data_submits),
    )


async def measure_data_size(
    bus: Bus, platform: Platform, store: Store, options: Options, claim: dict[str, str]
) -> dict[str, Any]:
    """Per-request latency and platform CPU with `small_rows`, then `large_rows`, seeded rows."""
    password_hash = Argon2Parameters().hasher().hash(PASSWORD)
    operations = data_operations(bus, options, claim)
    seeded = 0
    phases: dict[str, Any] = {}
    for rows in (options.small_rows, options.large_rows):
        for service in ("registration", "accounts"):
            await asyncio.to_thread(platform.stop_process, service)
        seconds = await store.seed(seeded, rows, password_hash)
        seeded = rows
        counts = await store.counts()
        restart: dict[str, float] = {}
        for service in ("registration", "accounts"):
            began = time.perf_counter()
            await asyncio.to_thread(platform.start_service, service)
            restart[service] = time.perf_counter() - began
        platform.write_state()
        phase: dict[str, Any] = {"seed_seconds": seconds, "counts": counts, "start": restart}
        for _label, call, count in operations:  # warm-up after the restart
            await sequential(call, max(2, count // 10))
        await bus.settle(store)
        pids = await counted_pids(platform, store)
        for label, call, count in operations:
            phase[label] = {"seconds": [], "cpu_seconds": []}
            for _ in range(options.runs):
                meter = CpuMeter(pids)
                samples = await sequential(call, count)
                await bus.settle(store)
                phase[label]["seconds"].append(median(samples))
                phase[label]["cpu_seconds"].append(meter.stop()["platform"] / count)
        phases[str(rows)] = phase
    return phases


async def measure_sql(
    bus: Bus, platform: Platform, store: Store, options: Options, claim: dict[str, str]
) -> dict[str, Any]:
    """SQL work per request, per service, counted from the database side (see Store.mark).

    Each request kind is sent `options.sql_counts[label]` times, one after another, the work it
    leaves (relays, consumers) is waited for, and the background (the relays' idle polls),
    measured in an idle window first, is taken off in proportion to the window's length.
    """
    operations = data_operations(bus, options, claim)
    await store.prepare_counting()
    for _label, call, _count in operations:  # warm-up after a restart
        await call()
    await bus.settle(store)
    await asyncio.sleep(store.flush_seconds)
    idle_start = await store.mark()
    await asyncio.sleep(store.idle_seconds)
    previous = await store.mark()
    idle = await store.delta(idle_start, previous)
    idle_seconds = previous.at - idle_start.at
    background = {
        service: {name: value / idle_seconds for name, value in figures.items()}
        for service, figures in idle.items()
    }
    found: dict[str, Any] = {"background_per_second": background, "idle_seconds": idle_seconds}
    for label, call, _count in operations:
        count = options.sql_counts[label]
        await sequential(call, count)
        await bus.settle(store)
        await asyncio.sleep(store.flush_seconds)
        mark = await store.mark()
        window = mark.at - previous.at
        used = await store.delta(previous, mark)
        found[label] = {
            "count": count,
            "services": {
                service: {
                    name: (value - background[service].get(name, 0.0) * window) / count
                    for name, value in figures.items()
                }
                for service, figures in used.items()
            },
        }
        previous = mark
    if isinstance(store, SqliteStore):
        # The services' real statements, explained on the seeded data.
        offsets = {s: store.debug_offsets[s] for s in ("registration", "accounts")}
        found["plans"] = await asyncio.to_thread(query_plans, platform, offsets)
    return found


async def suite(
    platform: Platform, make_store: Callable[[Platform], Store], options: Options, results: Results
) -> None:
    threads = len(os.sched_getaffinity(0))
    store = make_store(platform)
    await store.open()
    nc = await connect_as(platform, "portal", name="bench", connect_timeout=5)
    reader = await connect_as(platform, "operator", name="bench-reader", connect_timeout=5)
    asker = await connect_as(platform, "registration", name="bench-asker", connect_timeout=5)
    bus = Bus(nc, reader, asker)
    try:
        await bus.become_reviewer(platform.config.data_dir)
        claim = await register_login_account(bus, store)
        await bus.settle(store)
        await asyncio.sleep(3)
        pids = platform_pids(platform)
        results.raw["memory_idle_kib"] = {name: memory_kib(pid) for name, pid in pids.items()}
        results.raw["memory_imports_kib"] = await asyncio.to_thread(import_memory, platform)
        results.raw["throughput"] = await measure_throughput(bus, platform, store, options, threads)
        results.raw["latency"] = await measure_latency(bus, platform, store, options, claim)
        await bus.settle(store)
        await asyncio.sleep(3)
        results.raw["memory_after_load_kib"] = {name: memory_kib(pid) for name, pid in pids.items()}
        results.raw["data_size"] = await measure_data_size(bus, platform, store, options, claim)
        results.raw["sql"] = await measure_sql(bus, platform, store, options, claim)
        if isinstance(store, PostgresStore):
            results.raw["sql"]["pg_stat_statements"] = store.statements_view
    finally:
        await nc.close()
        await reader.close()
        await asker.close()
        await store.close()


# The report


def report(results: Results, options: Options, threads: int, store: str) -> None:
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
            f">= {SHARE_TARGETS[name]} of bound",
            # Logins: the throttle reserves each attempt before verifying it, so concurrent logins
            # to the one account count as attempts until verified, and some are refused.
            f"  {refused} refused (throttled)" if refused else "",
        )
        platform_cpu = [r["cpu_seconds_settled"]["platform"] / r["done"] for r in these]
        results.row(
            "  platform CPU per op; argon2id share of it",
            ms(median(platform_cpu)),
            f"{median(r['argon2_cpu_per_op'] / c for r, c in zip(these, platform_cpu, strict=True)):.2f}",
            f">= {SHARE_TARGETS[name]}",
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
            used = median(r[op]["cpu_seconds_settled"].get(name, 0.0) / r[op]["done"] for r in runs)
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
    if store == "postgresql":
        results.note(
            "(the PostgreSQL server's processes are not counted here; their CPU is, above)"
        )
    imports = raw.get("memory_imports_kib")
    if imports:
        results.note(
            "what an idle service's RSS is made of: a fresh interpreter importing, in this order,"
            " each library and then the service's app module (MiB added by each step):"
        )
        for service, steps in imports.items():
            idle = raw["memory_idle_kib"][service]["VmRSS"]
            added = [
                f"{name.removeprefix('singlewindow.')} +{(kib - before) / 1024:.1f}"
                for (_, before), (name, kib) in itertools.pairwise(steps)
            ]
            total = steps[-1][1]
            results.note(
                f"  {service}: python {steps[0][1] / 1024:.1f}, "
                + ", ".join(added)
                + f"; imported {total / 1024:.1f} of {idle / 1024:.1f} idle,"
                f" the rest (running) {(idle - total) / 1024:.1f}"
            )

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
    sql = raw["sql"]
    if store.startswith("sqlite"):
        scans = full_scans(sql["plans"])
        results.note(
            f"query plans at {large} rows: {len(sql['plans'])} distinct statements of these"
            f" requests explained, {len(scans)} read a whole table or index:"
        )
        for plan in scans:
            statement = plan["statement"]
            shown = statement[statement.find(" FROM ") :] if " FROM " in statement else statement
            results.note(f"  {plan['service']}: {plan['plan']}  <=  ...{shown[:120]}")
    else:
        found = [
            f"{label}: {service}.{name[len('seq scans of ') :]} {value:.2f} per request"
            for label in SQL_LABELS
            for service, figures in sql[label]["services"].items()
            for name, value in figures.items()
            if name.startswith("seq scans of ") and value > 0.05
        ]
        results.note(
            f"sequential scans of the seeded tables at {large} rows (pg_stat_user_tables, section 5's"
            f" windows): {'; '.join(found) if found else 'none'}"
        )

    results.section(
        "5. SQL per request, per service database, counted from the database side"
        " (background taken off)"
    )
    figures = SQL_FIGURES["sqlite" if store.startswith("sqlite") else store]
    results.row("request (how many) / service", *figures)
    for label in SQL_LABELS:
        entry = sql[label]
        results.note(f"{label} (x{entry['count']})")
        for service in SERVICE_NAMES:
            values = entry["services"][service]
            results.row(f"  {service}", *(tenths(values.get(name, 0.0)) for name in figures))
        results.row(
            "  all services",
            *(tenths(sum(v.get(n, 0.0) for v in entry["services"].values())) for n in figures),
        )
    background = sql["background_per_second"]
    results.note(
        "background taken off, per second: "
        + ", ".join(f"{s} {background[s].get('transactions', 0.0):.2f} tx" for s in SERVICE_NAMES)
        + f" (idle window {sql['idle_seconds']:.0f} s)"
    )
    if store.startswith("sqlite"):
        results.note(
            "from aiosqlite's DEBUG log (services restarted at LOG_LEVEL=DEBUG): transactions are"
            " BEGINs, statements every other execute (so not BEGIN, nor COMMIT, which is a"
            " connection call), writes INSERT/UPDATE/DELETE, hops every call handed to aiosqlite's"
            " thread (including commits, fetches and cursor closes)"
        )
    else:
        results.note(
            "from pg_stat_database (xact_commit + xact_rollback) and pg_stat_user_tables (rows"
            " inserted + updated + deleted; seq_scan + idx_scan), autovacuum off for these windows."
            " Every statement outside BEGIN is a transaction too: the platform's reads run in"
            " autocommit, one transaction per statement."
        )
        if not sql.get("pg_stat_statements"):
            results.note(
                "statements: pg_stat_statements is not available on this server (it needs"
                " shared_preload_libraries and a restart), so they are not counted"
            )


def tenths(value: float) -> str:
    """One decimal; the background's jitter taken off leaves values like -0.04, shown as 0.0."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


SQL_LABELS = ("login", "application.show", "onboarding.check", "cardless.submit")
SQL_FIGURES = {
    "sqlite": ("transactions", "statements", "writes", "hops"),
    "postgresql": ("transactions", "rows written", "table scans", "statements"),
}


def headline(raw: dict[str, Any], options: Options) -> list[tuple[str, str, str]]:
    """(figure, value, target) of the figures the summary puts side by side."""
    found: list[tuple[str, str, str]] = []
    for op, label in (("login", "login"), ("submit", "submission")):
        goal = f">= {SHARE_TARGETS[op]}"
        these = [run[op] for run in raw["throughput"]]
        cpu = [r["cpu_seconds_settled"]["platform"] / r["done"] for r in these]
        share = median(r["argon2_cpu_per_op"] / c for r, c in zip(these, cpu, strict=True))
        found += [
            (
                f"{label}s / argon2id bound",
                f"{median(r['rate'] / r['bound'] for r in these):.2f}",
                goal,
            ),
            (f"argon2id share of CPU per {label}", f"{share:.2f}", goal),
            (f"platform CPU per {label}", ms(median(cpu)), ""),
        ]
    clients = options.latency_clients
    p99 = median(raw["latency"][f"application.show (found) @{clients}"]["p99"])
    base = median(raw["latency"][f"raw nats-py echo @{clients}"]["p99"])
    found.append(
        (
            f"application.show p99 @{clients} / raw nats-py",
            f"{p99 / base:.1f}x ({ms(p99)})",
            "small multiple",
        )
    )
    for service in SERVICE_NAMES:
        idle = raw["memory_idle_kib"][service]["VmRSS"] / 1024
        after = raw["memory_after_load_kib"][service]["VmRSS"] / 1024
        found.append(
            (f"{service} RSS idle / after load, MiB", f"{idle:.1f} / {after:.1f}", "well under 100")
        )
    small, large = str(options.small_rows), str(options.large_rows)
    data = raw["data_size"]
    for name in SQL_LABELS:
        ratio = median(data[large][name]["cpu_seconds"]) / median(data[small][name]["cpu_seconds"])
        found.append((f"{name} CPU, {small} -> {large} rows", f"{ratio:.2f}", "~1.0"))
    for name in ("login", "cardless.submit"):
        services = raw["sql"][name]["services"]
        total = sum(v["transactions"] for v in services.values())
        each = ", ".join(f"{s[:3]} {tenths(services[s]['transactions'])}" for s in SERVICE_NAMES)
        found.append((f"{name}: transactions", f"{tenths(total)} ({each})", ""))
    return found


def summary(results: dict[str, Results], options: Options) -> list[str]:
    """The headline figures of every backend side by side."""
    stores = list(results)
    table = Results(widths=(46, *(34 for _ in stores), 16))
    table.section("Summary: " + " vs ".join(STORE_LABELS[s] for s in stores) + " (medians)")
    table.row("figure", *(STORE_LABELS[s] for s in stores), "target")
    columns = [headline(results[store].raw, options) for store in stores]
    for cells in zip(*columns, strict=True):
        table.row(cells[0][0], *(cell[1] for cell in cells), cells[0][2])
    return table.lines


STORE_LABELS = {
    "sqlite": "SQLite",
    "sqlite-aiosqlite": "SQLite, all on aiosqlite",
    "postgresql": "PostgreSQL",
}
ASYNC_ONLY = "sqlite-aiosqlite"
"""The services with `SW_<SERVICE>_DATABASE_THREADS=false`: every transaction on aiosqlite
(through the one-hop dialect), none on the database's own threads (`Database.run`)."""
SHARE_TARGETS = {"login": "0.85", "submit": "0.80"}


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
    parser.add_argument(
        "--service-ports", default="28101,28102,28103,28105", metavar="REG,REV,ACC,FIL"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    parser.add_argument(
        "--aiosqlite",
        action="store_true",
        help="also run every section on SQLite with every transaction on aiosqlite (no"
        " database threads: SW_<SERVICE>_DATABASE_THREADS=false), beside the shipped way",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run every section with the services on PostgreSQL: an admin URL such as"
        " postgresql+asyncpg://singlewindow:singlewindow@127.0.0.1:5432/postgres"
        " (scripts/postgres.sh prints one); a database per service is created and dropped",
    )
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
        service_ports=dict(zip(PLATFORM_SERVICES, ports, strict=True)),
        keep=bool(args.keep),
        json_path=args.json,
        postgres=args.postgres,
        aiosqlite=bool(args.aiosqlite),
        sql_counts={
            "login": 10 if quick else 20,
            "application.show": 30 if quick else 60,
            "onboarding.check": 30 if quick else 60,
            "cardless.submit": 6 if quick else 10,
        },
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
    stores = (
        ["sqlite"]
        + ([ASYNC_ONLY] if options.aiosqlite else [])
        + (["postgresql"] if options.postgres else [])
    )
    results = {store: Results() for store in stores}
    started = time.monotonic()
    load_before = os.getloadavg()
    busy_before = machine_seconds()
    others: list[str] = []
    for store in stores:
        results[store].raw["loadavg_before"] = os.getloadavg()
        run_backend(store, options, results[store], others)
        results[store].raw["loadavg_after"] = os.getloadavg()
    busy_after = machine_seconds()
    machine: dict[str, Any] = {
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
    for store in stores:
        report(results[store], options, threads, store)
    print(
        f"Single Window benchmark  {machine['date']}  {threads} cores ({machine['cpu']})"
        f"  Python {machine['python']}  argon2id {machine['argon2']}"
    )
    print(
        f"medians over {options.runs} runs; wall {machine['wall_seconds']:.0f}s;"
        f" load average {load_before[0]:.2f} before, {machine['loadavg_after'][0]:.2f} after;"
        f" machine busy {machine['machine_busy']:.0%};"
        f" {len(others)} other platform/test processes at start"
    )
    for line in others:
        print(f"  other: {line}")
    for store in stores:
        raw = results[store].raw
        print(
            f"\n==== {STORE_LABELS[store]}  (load average {raw['loadavg_before'][0]:.2f} before,"
            f" {raw['loadavg_after'][0]:.2f} after) ===="
        )
        print("\n".join(results[store].lines))
    if len(stores) > 1:
        print("\n".join(summary(results, options)))
    if options.json_path:
        everything = {"machine": machine} | {store: results[store].raw for store in stores}
        options.json_path.write_text(json.dumps(everything, indent=2, default=str))
    return 0


def run_backend(store: str, options: Options, results: Results, others: list[str]) -> None:
    """Every section on a platform of its own, its services on `store`; all of it removed after."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"sw-bench-{store}-"))
    with contextlib.ExitStack() as cleanup:
        urls: dict[str, str] = {}
        if store == "postgresql":
            assert options.postgres is not None
            # The suite's own helper: the benchmark makes its databases as the tests do.
            sys.path.insert(0, str(ROOT))
            from tests.support.platform import postgres_databases

            admin = re.sub(r"^postgresql(\+\w+)?://", "postgresql+asyncpg://", options.postgres)
            urls = cleanup.enter_context(
                postgres_databases(PLATFORM_SERVICES, admin, prefix="sw_bench")
            )
        platform = Platform(
            PlatformConfig(
                data_dir=data_dir,
                nats_port=options.nats_port,
                nats_monitor_port=options.nats_monitor_port,
                service_ports=options.service_ports,
                database_urls=urls,
                raw_account=True,
            )
        )
        if store == ASYNC_ONLY:
            for service in SERVICE_NAMES:
                platform.config.environment[f"SW_{service.upper()}_DATABASE_THREADS"] = "false"

        def make_store(platform: Platform) -> Store:
            if store == "postgresql":
                assert options.postgres is not None
                return PostgresStore(platform, options.postgres)
            return SqliteStore(platform)

        try:
            platform.start()
            if not others:
                others += foreign_processes({os.getpid(), *platform_pids(platform).values()})
            asyncio.run(suite(platform, make_store, options, results))
        finally:
            platform.stop()
            if options.keep:
                print(f"bench: data kept in {data_dir}", file=sys.stderr)
            else:
                shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
