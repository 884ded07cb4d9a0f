"""Benchmarks of the Single Window platform, reported as ratios against this machine's own bounds.

    uv run python bench/run.py [--quick] [--runs N] [--large-rows N | --million] [--json PATH]

It starts its own embedded platform (nats-server with JetStream and each service as its own
process, as `swctl up` does) under a temporary directory, on non-default loopback ports, and stops
it at the end. What each figure means is in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import platform as host
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from singlewindow.shared.contracts import accounts as accounts_contract
from singlewindow.shared.contracts import registration as registration_contract
from singlewindow.shared.contracts import review as review_contract
from singlewindow.shared.identifiers import organisation_code_check_digit
from singlewindow.shared.passwords import Argon2Parameters
from singlewindow.swctl.platform import Platform, PlatformConfig
from sqlalchemy import Table, create_engine, event, insert
from sqlalchemy.engine import make_url
from stdnum.cn import uscc as stdnum_uscc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "application.json"
PASSWORD = "Chongqing-Trade-2026"
ECHO_SUBJECT = "bench.echo"
LOGIN_ACCOUNT = "benchlogin"
SERVICE_NAMES = ("registration", "review", "accounts")
CARDLESS_KIND = "registration.cardless"
# Durable consumers whose backlog must drain before a measurement starts (see each handlers.py).
CONSUMERS = (
    (registration_contract.STREAM.name, "review-registration-submitted"),
    (registration_contract.STREAM.name, "accounts-registration-approved"),
    (review_contract.STREAM.name, "registration-review-decisions"),
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# Options and results


@dataclass(frozen=True)
class Options:
    """How long and how hard to push; the defaults keep the whole suite within ~4 minutes."""

    runs: int
    seconds: float
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
    """Every raw figure of the run (written with --json) and the table rows printed at the end."""

    raw: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.lines += ["", title]

    def row(self, *cells: str) -> None:
        widths = (44, 14, 14, 14, 30)
        text = "".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False))
        self.lines.append("  " + text.rstrip())


class Refused(Exception):
    """The platform answered with an error reply."""

    def __init__(self, subject: str, error: dict[str, Any]) -> None:
        super().__init__(f"{subject}: {error.get('code')}: {error.get('message')}")
        self.code = str(error.get("code"))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


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


def argon2_rate(operation: Callable[[], object], threads: int, seconds: float) -> float:
    """Operations per second of `operation` run back to back in `threads` threads."""
    start = time.perf_counter()
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
    return sum(counts) / (time.perf_counter() - start)


def argon2_bounds(threads: int, seconds: float) -> tuple[float, float]:
    """(hashes/s, verifies/s) of argon2-cffi with the platform's parameters."""
    hasher = Argon2Parameters().hasher()
    stored = hasher.hash(PASSWORD)
    hashes = argon2_rate(lambda: hasher.hash(PASSWORD), threads, seconds)
    verifies = argon2_rate(lambda: hasher.verify(stored, PASSWORD), threads, seconds)
    return hashes, verifies


# Processes: CPU time, memory, the machine's load


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds, total CPU seconds) of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and Pss of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                found["Pss"] = int(line.split()[1])
    return found


def foreign_processes(own: set[int]) -> list[str]:
    """Other platform, test or benchmark processes on this machine (they share its cores)."""
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
    """CPU seconds used by each platform process, this client and the rest of the machine."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        sample = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        sample["bench client"] = time.process_time()
        sample["machine"], sample["machine total"] = machine_busy_seconds()
        return sample

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        used = {name: end[name] - self._start[name] for name in end}
        ours = sum(value for name, value in used.items() if not name.startswith("machine"))
        used["other processes"] = max(0.0, used["machine"] - ours)
        return used


# The platform


def ports_free(ports: Sequence[int]) -> list[int]:
    """Which of `ports` something already listens on."""
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
    """The benchmark's NATS connection: commands with decoded replies, as swctl sends them."""

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

    async def login(self, account: str = LOGIN_ACCOUNT) -> None:
        await self.call(
            accounts_contract.LOGIN_PASSWORD, {"account": account, "password": PASSWORD}
        )

    async def submit(self) -> str:
        result = await self.call(
            registration_contract.SUBMIT_CARDLESS, application(next(_serials) + 10_000_000)
        )
        application_id: str = result["application_id"]
        return application_id

    async def onboarding_check(self, serial: int) -> None:
        await self.call(
            accounts_contract.ONBOARDING_CHECK,
            {"uscc": make_uscc(serial, "510000"), "account": f"free{serial}"},
        )


async def register_login_account(bus: Bus, platform: Platform) -> str:
    """Submit an application, approve its review task, wait for accounts to create the admin."""
    serial = next(_serials)
    document = application(serial, LOGIN_ACCOUNT)
    result = await bus.call(registration_contract.SUBMIT_CARDLESS, document)
    application_id: str = result["application_id"]
    await bus.settle(platform)
    tasks = await bus.call(review_contract.LIST_TASKS, {"state": "open"})
    (task_id,) = [t["task_id"] for t in tasks["tasks"] if t["application_id"] == application_id]
    await bus.call(
        review_contract.DECIDE_TASK,
        {"task_id": task_id, "decision": "approve", "reviewer": "bench"},
    )
    # Polled through onboarding.check, not login: failed logins would start the throttle.
    deadline = time.monotonic() + 30
    check = {"uscc": document["enterprise"]["uscc"], "account": LOGIN_ACCOUNT}
    while not (await bus.call(accounts_contract.ONBOARDING_CHECK, check))["account_taken"]:
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
    """Add enterprises, their administrators and approved applications `start`..`stop`-1.

    The services must be stopped. Rows go through the services' own SQLAlchemy tables, so they
    match the schema the migrations created. Returns the seconds it took.
    """
    from singlewindow.accounts.repository import accounts, enterprises
    from singlewindow.registration.repository import applications

    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    template = json.loads(EXAMPLE.read_text("utf-8"))
    del template["admin"]["password"]
    chunk = 20_000

    def enterprise_row(n: int) -> dict[str, Any]:
        return {
            "uscc": make_uscc(n, "110000"),
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

    def account_row(n: int, uscc: str) -> dict[str, Any]:
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

    def load(service: str, build: Callable[[int], list[tuple[Table, dict[str, Any]]]]) -> None:
        engine = create_engine(f"sqlite:///{database_path(platform, service)}")
        event.listen(
            engine, "connect", lambda conn, _record: conn.execute("PRAGMA synchronous=OFF")
        )
        try:
            for first in range(start, stop, chunk):
                batches: dict[Table, list[dict[str, Any]]] = {}
                for n in range(first, min(first + chunk, stop)):
                    for table, row in build(n):
                        batches.setdefault(table, []).append(row)
                with engine.begin() as connection:
                    for table, rows in batches.items():
                        connection.execute(insert(table), [fit(table, row) for row in rows])
        finally:
            engine.dispose()

    def accounts_rows(n: int) -> list[tuple[Table, dict[str, Any]]]:
        enterprise = enterprise_row(n)
        return [(enterprises, enterprise), (accounts, account_row(n, enterprise["uscc"]))]

    def registration_rows(n: int) -> list[tuple[Table, dict[str, Any]]]:
        return [(applications, application_row(n, make_uscc(n, "110000")))]

    load("accounts", accounts_rows)
    load("registration", registration_rows)
    return time.perf_counter() - started


def fit(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """`row` restricted to `table`'s columns; fail loudly if the schema grew a required column."""
    missing = [
        column.name
        for column in table.columns
        if column.name not in row
        and not column.nullable
        and column.default is None
        and column.server_default is None
        and column.autoincrement is not True
    ]
    if missing:
        raise RuntimeError(f"bench seeding does not know {table.name}.{missing}; update seed_rows")
    return {key: value for key, value in row.items() if key in table.c}


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


# The suite


async def suite(platform: Platform, options: Options, results: Results) -> None:
    threads = len(os.sched_getaffinity(0))
    nc = await nats.connect(platform.config.nats_url, name="bench", connect_timeout=5)
    bus = Bus(nc)
    echo: subprocess.Popen[bytes] | None = None
    try:
        application_id = await register_login_account(bus, platform)
        pids = {name: process.pid for name, process in platform.processes.items()}
        await bus.settle(platform)
        await asyncio.sleep(3)
        results.raw["memory_idle_kib"] = {name: memory_kib(pid) for name, pid in pids.items()}

        # 1. Throughput against the argon2id bound, paired run by run.
        for _ in range(2):  # warm-up: connections, statement caches, allocator arenas
            await throughput(bus.login, options.clients, 1.0)
            await throughput(bus.submit, options.clients, 1.0)
            await bus.settle(platform)
        runs: list[dict[str, Any]] = []
        for _ in range(options.runs):
            hashes, verifies = await asyncio.to_thread(argon2_bounds, threads, options.seconds)
            run: dict[str, Any] = {"hash_bound": hashes, "verify_bound": verifies}
            for name, operation in (("login", bus.login), ("submit", bus.submit)):
                meter = CpuMeter(pids)
                meter.start()
                done, refused, elapsed = await throughput(
                    operation, options.clients, options.seconds
                )
                cpu = meter.stop()
                run[name] = {
                    "done": done,
                    "refused": refused,
                    "seconds": elapsed,
                    "rate": done / elapsed,
                    "cpu_seconds": cpu,
                }
                await bus.settle(platform)
            runs.append(run)
        results.raw["throughput"] = runs

        # 2. Latency of a cheap request against raw nats-py request/reply.
        echo = start_echo(platform.config.nats_url, platform.log_path("bench-echo"))
        pids["bench-echo"] = echo.pid
        await wait_echo(bus)
        show = json.dumps({"application_id": application_id}).encode()
        unknown = json.dumps({"application_id": "app_doesnotexist0000"}).encode()
        cases = (
            ("raw nats-py echo", ECHO_SUBJECT, show, ""),
            ("application.show (found)", registration_contract.SHOW_APPLICATION, show, "result"),
            ("application.show (unknown id)", registration_contract.SHOW_APPLICATION, unknown, ""),
            ("review.tasks.list (1 open task)", review_contract.LIST_TASKS, b"{}", "result"),
        )
        latency: dict[str, dict[str, list[float]]] = {}
        for clients in sorted({1, options.latency_clients}):
            for label, subject, body, expect in cases:
                await request_latencies(bus, subject, body, 50, clients, expect)
                key = f"{label} @{clients}"
                latency[key] = {"p50": [], "p99": []}
                for _ in range(options.runs):
                    samples = await request_latencies(
                        bus, subject, body, options.latency_requests, clients, expect
                    )
                    latency[key]["p50"].append(percentile(samples, 0.50))
                    latency[key]["p99"].append(percentile(samples, 0.99))
        results.raw["latency"] = latency
        echo.terminate()
        echo.wait(10)
        pids.pop("bench-echo")
        echo = None

        await bus.settle(platform)
        await asyncio.sleep(3)
        results.raw["memory_after_load_kib"] = {name: memory_kib(pid) for name, pid in pids.items()}

        # 4. Cost grows with work, not data.
        password_hash = Argon2Parameters().hasher().hash(PASSWORD)
        checks = itertools.count(1)

        async def show_found() -> None:
            await bus.call(
                registration_contract.SHOW_APPLICATION, {"application_id": application_id}
            )

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
            for service in ("registration", "accounts"):
                await asyncio.to_thread(platform.start_service, service)
            platform.write_state()
            phase: dict[str, Any] = {"seed_seconds": seconds, "counts": counts}
            for _label, call, count in operations:  # warm-up after the restart
                await sequential(call, max(2, count // 10))
            await bus.settle(platform)
            for label, call, count in operations:
                phase[label] = []
                for _ in range(options.runs):
                    phase[label].append(median(await sequential(call, count)))
                    await bus.settle(platform)
            phases[str(rows)] = phase
        results.raw["data_size"] = phases
    finally:
        if echo is not None:
            echo.terminate()
            echo.wait(10)
        await nc.close()


def report(results: Results, options: Options, threads: int) -> None:
    raw = results.raw
    runs = raw["throughput"]
    hash_bound = median([r["hash_bound"] for r in runs])
    verify_bound = median([r["verify_bound"] for r in runs])
    results.section(
        f"1. Throughput, {options.clients} concurrent clients, {options.seconds:g}s windows"
    )
    results.row("figure", "median", "ratio", "target", "note")
    results.row(f"argon2id hash bound ({threads} threads)", f"{hash_bound:.1f}/s")
    results.row(f"argon2id verify bound ({threads} threads)", f"{verify_bound:.1f}/s")
    for name, bound_key, label in (
        ("login", "verify_bound", "password logins through the platform"),
        ("submit", "hash_bound", "cardless submissions through the platform"),
    ):
        rate = median([r[name]["rate"] for r in runs])
        ratio = median([r[name]["rate"] / r[bound_key] for r in runs])
        refused = sum(r[name]["refused"] for r in runs)
        note = f"vs {bound_key.replace('_', ' ')}" + (f"; {refused} refused" if refused else "")
        results.row(label, f"{rate:.1f}/s", f"{ratio:.2f}", ">= 0.90", note)
    results.section("   CPU per operation during those windows (median ms of CPU per op)")
    results.row("process", "per login", "per submit")
    names = [*runs[0]["login"]["cpu_seconds"]]
    for name in names:
        if name in ("machine", "machine total"):
            continue
        cells = []
        for op in ("login", "submit"):
            cells.append(
                f"{median([r[op]['cpu_seconds'][name] / max(1, r[op]['done']) * 1000 for r in runs]):.1f}"
            )
        results.row(name, *cells)
    single = 1000 * threads / verify_bound
    results.row(
        "(argon2id alone, from the bound)", f"{single:.1f}", f"{1000 * threads / hash_bound:.1f}"
    )
    for op in ("login", "submit"):
        busy = median(
            [r[op]["cpu_seconds"]["machine"] / r[op]["cpu_seconds"]["machine total"] for r in runs]
        )
        results.lines.append(
            f"  machine CPU busy during {op} windows: {busy:.0%} of {threads} cores"
        )

    results.section(
        f"2. Latency, {options.latency_requests} requests per run (p50/p99 median over runs)"
    )
    results.row(
        "request @ concurrent clients", "p50", "p99", "p50 ratio", "p99 ratio (vs raw echo)"
    )
    for key, values in raw["latency"].items():
        clients = key.rsplit("@", 1)[1]
        base = raw["latency"][f"raw nats-py echo @{clients}"]
        p50, p99 = median(values["p50"]), median(values["p99"])
        results.row(
            key,
            ms(p50),
            ms(p99),
            f"{p50 / median(base['p50']):.1f}x",
            f"{p99 / median(base['p99']):.1f}x",
        )

    results.section("3. Memory (MiB): RSS / peak RSS / PSS")
    results.row("process", "idle (start)", "idle (after)", "peak RSS", "PSS idle (after)")
    totals = {"rss0": 0.0, "rss1": 0.0, "pss1": 0.0}
    for name, before in raw["memory_idle_kib"].items():
        after = raw["memory_after_load_kib"][name]
        results.row(
            name,
            f"{before['VmRSS'] / 1024:.1f}",
            f"{after['VmRSS'] / 1024:.1f}",
            f"{after['VmHWM'] / 1024:.1f}",
            f"{after.get('Pss', 0) / 1024:.1f}",
        )
        totals["rss0"] += before["VmRSS"] / 1024
        totals["rss1"] += after["VmRSS"] / 1024
        totals["pss1"] += after.get("Pss", 0) / 1024
    results.row(
        "whole platform (target < 600)",
        f"{totals['rss0']:.1f}",
        f"{totals['rss1']:.1f}",
        "",
        f"{totals['pss1']:.1f}",
    )
    results.lines.append("  target: each idle service well under 100 MiB")

    small, large = str(options.small_rows), str(options.large_rows)
    phases = raw["data_size"]
    results.section(
        f"4. Cost with data: one client, median ms per request ({small} vs {large} seeded rows)"
    )
    results.row("request", f"{small} rows", f"{large} rows", "ratio", "(target ~1.0)")
    for name in ("login", "application.show", "onboarding.check", "cardless.submit"):
        a, b = median(phases[small][name]), median(phases[large][name])
        results.row(name, ms(a), ms(b), f"{b / a:.2f}")
    for rows in (small, large):
        counts = ", ".join(f"{k} {v}" for k, v in phases[rows]["counts"].items())
        results.lines.append(
            f"  {rows}: seeded in {phases[rows]['seed_seconds']:.1f}s; rows: {counts}"
        )


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs, shorter windows")
    parser.add_argument("--runs", type=int, help="runs per figure (default 5; 3 with --quick)")
    parser.add_argument("--clients", type=int, help="concurrent clients (default 2 x cores)")
    parser.add_argument("--small-rows", type=int, default=1_000)
    parser.add_argument("--large-rows", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="--large-rows 1000000")
    parser.add_argument("--nats-port", type=int, default=14222)
    parser.add_argument("--nats-monitor-port", type=int, default=18222)
    parser.add_argument("--service-ports", default="18101,18102,18103", metavar="R,V,A")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--json", type=Path, help="also write every raw figure here")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    quick = bool(args.quick)
    ports = [int(p) for p in args.service_ports.split(",")]
    return Options(
        runs=args.runs or (3 if quick else 5),
        seconds=1.5 if quick else 3.0,
        clients=args.clients or 2 * cores,
        latency_requests=400 if quick else 1000,
        latency_clients=4,
        data_requests=50 if quick else 100,
        data_logins=5 if quick else 10,
        data_submits=3 if quick else 5,
        small_rows=args.small_rows,
        large_rows=1_000_000 if args.million else args.large_rows,
        nats_port=args.nats_port,
        nats_monitor_port=args.nats_monitor_port,
        service_ports=dict(zip(SERVICE_NAMES, ports, strict=True)),
        keep=args.keep,
        json_path=args.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--echo-responder"]:
        asyncio.run(echo_responder(sys.argv[2]))
        return 0
    options = parse(argv)
    busy = ports_free(
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
    config = PlatformConfig(
        data_dir=data_dir,
        nats_port=options.nats_port,
        nats_monitor_port=options.nats_monitor_port,
        service_ports=options.service_ports,
    )
    platform = Platform(config)
    results = Results()
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        platform.start()
        own = {os.getpid(), *(p.pid for p in platform.processes.values())}
        others = foreign_processes(own)
        asyncio.run(suite(platform, options, results))
    finally:
        platform.stop()
        if options.keep:
            print(f"bench: data kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    load_after = os.getloadavg()
    results.raw["machine"] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": threads,
        "cpu": _cpu_model(),
        "python": host.python_version(),
        "argon2": Argon2Parameters().__dict__,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "other_processes": others,
        "wall_seconds": time.monotonic() - started,
        "options": {k: str(v) for k, v in options.__dict__.items()},
    }
    report(results, options, threads)
    machine = results.raw["machine"]
    print(
        f"Single Window benchmark  {machine['date']}  {threads} cores ({machine['cpu']})  "
        f"Python {machine['python']}"
    )
    print(
        f"medians over {options.runs} runs; wall {machine['wall_seconds']:.0f}s; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"{len(others)} other platform/test processes running"
    )
    for line in others:
        print(f"  other: {line}")
    print("\n".join(results.lines))
    if options.json_path:
        options.json_path.write_text(json.dumps(results.raw, indent=2, default=str))
    return 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return host.machine()


if __name__ == "__main__":
    sys.exit(main())
