"""The HTTP gateway's speed figures (issue 8 item 6), as ratios measured in the same run.

    uv run python bench/gateway.py [--quick] [--runs N] [--clients N] [--json PATH]

It starts its own embedded platform (nats-server, the services and the HTTP gateway, each its own
process, with the `RAW` account for the baseline) under a temporary directory on spare loopback
ports, registers an account the real way (cardless application, review approves it, accounts
creates the administrator), and prints medians over `--runs` of:

1. password logins through HTTP (`POST /api/v1/accounts/login/password`, N closed-loop clients on
   keep-alive connections) over the argon2id verify bound, each window bracketed by two bound
   windows as `bench/run.py` does; target at least 0.85;
2. `accounts.session.show` (Bearer token) p50 / p99 through HTTP at 4 clients against a raw
   nats-py request/reply echo on the same nats-server; target p99 at most 4x.

The gateway's rate limits are lifted for this platform (`SW_GATEWAY_RATE_*_LIMIT`, printed), and
the password is right, so the accounts throttle never delays a login either.
What each figure means is in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import run  # noqa: E402  (bench/run.py: its helpers, reused)
from singlewindow.contracts import accounts as accounts_contract  # noqa: E402
from singlewindow.swctl.platform import (  # noqa: E402
    GATEWAY,
    RAW_USER,
    SERVICES,
    Platform,
    PlatformConfig,
)

from tests.support.platform import free_port  # noqa: E402

LOGIN_PATH = "/api/v1/accounts/login/password"
QUERY_PATH = "/api/v1/accounts/session/show"
SHOW_SESSION = accounts_contract.SHOW_SESSION.subject
UNLIMITED = str(10**9)
GATEWAY_ENVIRONMENT = {
    "SW_GATEWAY_RATE_ADDRESS_LIMIT": UNLIMITED,
    "SW_GATEWAY_RATE_ACCOUNT_LIMIT": UNLIMITED,
}
"""The bench's logins all come from one address and name one account: lift both limits."""
HTTP_CLIENT = (
    "bench/gateway.py's own asyncio HTTP/1.1 keep-alive client (status, headers and body parsed"
    " and checked)"
)
LOGIN_TARGET = 0.85
P99_TARGET = 4.0


@dataclass(frozen=True)
class Options:
    runs: int
    seconds: float
    bound_seconds: float
    clients: int
    latency_clients: int
    latency_requests: int
    json_path: Path | None


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs, shorter windows")
    parser.add_argument("--runs", type=int, help="runs per figure (default 5; 3 with --quick)")
    parser.add_argument("--clients", type=int, help="login clients (default 2 x cores)")
    parser.add_argument("--requests", type=int, help="query requests per run (default 600)")
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    cores = len(os.sched_getaffinity(0))
    return Options(
        runs=args.runs or (3 if quick else 5),
        seconds=1.5 if quick else 3.0,
        bound_seconds=1.0 if quick else 1.5,
        clients=args.clients or 2 * cores,
        latency_clients=4,
        latency_requests=args.requests or (300 if quick else 600),
        json_path=args.json,
    )


class HttpError(Exception):
    """The gateway's answer did not parse as HTTP/1.1."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    """Header names lower-cased; a repeated header keeps its last value."""
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection: a request written in one go, the reply parsed whole.

    httpx spends about a millisecond of CPU per request, on the same two cores as the platform;
    this client spends a fraction of that and still reads everything an HTTP client must: the
    status line, every header, a Content-Length or chunked body, and `Connection: close`.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        request = "\r\n".join(lines).encode() + body
        reused = self.writer is not None and not self.writer.is_closing()
        if not reused:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # uvicorn closes a connection idle for 5 s; a request sent on it as it closed got
            # no byte back, so it is sent again on a new connection, as httpx would.
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            await self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        if version != "HTTP/1.1" or not rest[:3].isdigit():
            raise HttpError(f"not an HTTP/1.1 status line: {status_line!r}")
        fields: dict[str, str] = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise HttpError(f"not a header line: {line!r}")
            fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunks()
        else:
            data = await self.reader.read()  # delimited by the end of the connection
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return Reply(int(rest[:3]), fields, data)

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers from uvicorn
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None


class Http:
    """Keep-alive connections to the gateway, one per concurrent caller; each reply is checked:
    status 200, a JSON content type, the request id echoed, a body that parses."""

    def __init__(self, base: str, connections: int) -> None:
        url = urllib.parse.urlsplit(base)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        self.idle: asyncio.Queue[Connection] = asyncio.Queue()
        self.every = [Connection(host, port) for _ in range(connections)]
        for connection in self.every:
            self.idle.put_nowait(connection)
        self.throttled = 0

    async def post(self, path: str, body: dict[str, Any] | None, token: str = "") -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["X-Request-Id"] = request_id = f"bench-{uuid.uuid4().hex}"
        connection = await self.idle.get()
        try:
            reply = await connection.post(path, json.dumps(body).encode(), headers)
        except BaseException:
            await connection.close()
            raise
        finally:
            self.idle.put_nowait(connection)
        if reply.status == 429:
            self.throttled += 1
        if reply.status != 200:
            raise run.Refused(path, {"status": reply.status, "body": reply.body[:200]})
        if reply.headers.get("content-type") != "application/json":
            raise HttpError(f"{path}: content-type {reply.headers.get('content-type')!r}")
        if reply.headers.get("x-request-id") != request_id:
            raise HttpError(f"{path}: request id {reply.headers.get('x-request-id')!r}")
        return json.loads(reply.body)

    async def login(self) -> Any:
        return await self.post(LOGIN_PATH, {"account": run.LOGIN_ACCOUNT, "password": run.PASSWORD})

    async def close(self) -> None:
        for connection in self.every:
            await connection.close()


async def http_latencies(http: Http, token: str, total: int, clients: int) -> list[float]:
    """Seconds per `session.show` of `total` requests from `clients` closed-loop clients."""
    samples: list[float] = []
    remaining = total

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await http.post(QUERY_PATH, None, token)
            samples.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(clients)))
    return samples


async def measure_logins(
    http: Http, platform: Platform, store: run.Store, options: Options, threads: int
) -> list[dict[str, Any]]:
    """Logins per second through HTTP, each window between two argon2id verify bound windows."""
    for _ in range(2):  # warm-up: connections, caches, allocator arenas
        await run.throughput(http.login, options.clients, 1.0)
    runs: list[dict[str, Any]] = []
    for _ in range(options.runs):
        pids = await run.counted_pids(platform, store)
        before = await asyncio.to_thread(run.argon2_bound, "verify", threads, options.bound_seconds)
        meter = run.CpuMeter(pids)
        done, refused, elapsed = await run.throughput(http.login, options.clients, options.seconds)
        cpu = meter.stop()
        after = await asyncio.to_thread(run.argon2_bound, "verify", threads, options.bound_seconds)
        bound = (before.per_second + after.per_second) / 2
        runs.append(
            {
                "rate": done / elapsed,
                "done": done,
                "refused": refused,
                "bound": bound,
                "ratio": done / elapsed / bound,
                "argon2_cpu_per_op": (before.cpu_per_op + after.cpu_per_op) / 2,
                "cpu_per_login": cpu["platform"] / max(1, done),
                "gateway_cpu_per_login": cpu.get(GATEWAY, 0.0) / max(1, done),
                "client_cpu_per_login": cpu["bench client"] / max(1, done),
            }
        )
    return runs


async def measure_query(
    http: Http, platform: Platform, options: Options, token: str
) -> dict[str, dict[str, list[float]]]:
    """p50 / p99 of `session.show` over HTTP and of a raw nats-py echo, at 1 and 4 clients."""
    echo = run.start_echo(run.raw_url(platform), platform.log_path("bench-echo"))
    raw = run.Bus(await run.connect_as(platform, RAW_USER, name="bench-raw", connect_timeout=5))
    body = json.dumps({"token": "x" * 43}).encode()
    show = json.dumps({"token": token}).encode()
    portal = run.Bus(await run.connect_as(platform, "portal", name="bench-q", connect_timeout=5))
    figures: dict[str, dict[str, list[float]]] = {}
    gateway = platform.processes[GATEWAY].pid
    try:
        await run.wait_echo(raw)
        total = options.latency_requests
        for clients in sorted({1, options.latency_clients}):
            echo_key, http_key = (
                f"raw nats-py echo @{clients}",
                f"session.show over HTTP @{clients}",
            )
            nats_key = f"session.show over NATS @{clients}"
            await run.request_latencies(raw, run.ECHO_SUBJECT, body, 50, clients, "")
            await run.request_latencies(portal, SHOW_SESSION, show, 50, clients, "result")
            await http_latencies(http, token, 50, clients)
            for key in (echo_key, nats_key, http_key):
                figures[key] = {"p50": [], "p99": []}
            figures[http_key] |= {"gateway_cpu": [], "client_cpu": []}
            for _ in range(options.runs):  # alternating, so both sides see the same neighbours
                samples = await run.request_latencies(
                    raw, run.ECHO_SUBJECT, body, total, clients, ""
                )
                figures[echo_key]["p50"].append(run.percentile(samples, 0.50))
                figures[echo_key]["p99"].append(run.percentile(samples, 0.99))
                samples = await run.request_latencies(
                    portal, SHOW_SESSION, show, total, clients, "result"
                )
                figures[nats_key]["p50"].append(run.percentile(samples, 0.50))
                figures[nats_key]["p99"].append(run.percentile(samples, 0.99))
                gateway_cpu, client_cpu = run.cpu_seconds(gateway), time.process_time()
                samples = await http_latencies(http, token, total, clients)
                gateway_cpu = run.cpu_seconds(gateway) - gateway_cpu
                client_cpu = time.process_time() - client_cpu
                figures[http_key]["p50"].append(run.percentile(samples, 0.50))
                figures[http_key]["p99"].append(run.percentile(samples, 0.99))
                figures[http_key]["gateway_cpu"].append(gateway_cpu / len(samples))
                figures[http_key]["client_cpu"].append(client_cpu / len(samples))
        return figures
    finally:
        await raw.nc.close()
        await portal.nc.close()
        echo.terminate()
        echo.wait(10)


async def suite(platform: Platform, options: Options) -> dict[str, Any]:
    threads = len(os.sched_getaffinity(0))
    store = run.SqliteStore(platform)
    await store.open()
    nc = await run.connect_as(platform, "portal", name="bench", connect_timeout=5)
    reader = await run.connect_as(platform, "operator", name="bench-reader", connect_timeout=5)
    asker = await run.connect_as(platform, "registration", name="bench-asker", connect_timeout=5)
    bus = run.Bus(nc, reader, asker)
    base = f"http://127.0.0.1:{platform.config.service_ports[GATEWAY]}"
    http = Http(base, max(options.clients, options.latency_clients))
    try:
        await bus.become_reviewer(platform.config.data_dir)
        await run.register_login_account(bus, store)
        await bus.settle(store)
        session = await http.login()
        token: str = session["token"]
        logins = await measure_logins(http, platform, store, options, threads)
        query = await measure_query(http, platform, options, token)
        return {"logins": logins, "query": query, "throttled": http.throttled}
    finally:
        await http.close()
        await nc.close()
        await reader.close()
        await asker.close()
        await store.close()


def ratio_of_medians(figures: dict[str, dict[str, list[float]]], key: str, floor: str) -> float:
    return float(run.median(figures[key]["p99"]) / run.median(figures[floor]["p99"]))


def report(raw: dict[str, Any], options: Options) -> list[str]:
    logins = raw["logins"]
    lines = [
        f"{'figure':<52} {'median':>24}  target",
        f"{'argon2id verify bound':<52} {run.median(r['bound'] for r in logins):>22.1f}/s",
        f"{'password logins through HTTP':<52} {run.median(r['rate'] for r in logins):>22.1f}/s",
    ]
    ratio = run.median(r["ratio"] for r in logins)
    lines.append(f"{'logins over HTTP / verify bound':<52} {ratio:>24.2f}  >= {LOGIN_TARGET}")
    cpu = (
        f"{run.median(r['cpu_per_login'] for r in logins) * 1000:.1f}"
        f" / {run.median(r['gateway_cpu_per_login'] for r in logins) * 1000:.1f}"
        f" / {run.median(r['client_cpu_per_login'] for r in logins) * 1000:.1f} ms"
    )
    lines.append(f"{'CPU per login: platform / of it gateway / bench client':<52} {cpu:>24}")
    argon2 = run.median(r["argon2_cpu_per_op"] for r in logins) * 1000
    lines.append(f"{'argon2id CPU per verify (bound windows)':<52} {argon2:>21.1f} ms")
    share = run.median(r["argon2_cpu_per_op"] / r["cpu_per_login"] for r in logins if r["done"])
    lines.append(f"{'argon2id share of a login platform CPU':<52} {share:>24.2f}")
    refused = sum(r["refused"] for r in logins)
    lines.append(f"{'refused logins (429 among them)':<52} {refused:>18} ({raw['throttled']})")
    query = raw["query"]
    for clients in sorted({1, options.latency_clients}):
        floor = f"raw nats-py echo @{clients}"
        keys = (floor, f"session.show over NATS @{clients}", f"session.show over HTTP @{clients}")
        for key in keys:
            p50 = run.median(query[key]["p50"]) * 1000
            p99 = run.median(query[key]["p99"]) * 1000
            cells = f"{p50:.2f} / {p99:.2f} ms"
            tail = ""
            if key != floor:
                over = ratio_of_medians(query, key, floor)
                cells += f" ({over:.1f}x)"
                over_http = key.startswith("session.show over HTTP")
                target = over_http and clients == options.latency_clients
                tail = f"  p99 <= {P99_TARGET:g}x" if target else ""
            lines.append(f"{key + ' p50 / p99':<52} {cells:>24}{tail}")
        http_figures = query[keys[-1]]
        cpu = (
            f"{run.median(http_figures['gateway_cpu']) * 1000:.2f}"
            f" / {run.median(http_figures['client_cpu']) * 1000:.2f} ms"
        )
        lines.append(f"{f'  CPU per query @{clients}: gateway / bench client':<52} {cpu:>24}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    data_dir = Path(tempfile.mkdtemp(prefix="sw-bench-gateway-"))
    platform = Platform(
        PlatformConfig(
            data_dir=data_dir,
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            service_ports={service: free_port() for service in (*SERVICES, GATEWAY)},
            environment=dict(GATEWAY_ENVIRONMENT),
            raw_account=True,
        )
    )
    load_before = os.getloadavg()
    started = time.monotonic()
    others: list[str] = []
    try:
        platform.start()
        others = run.foreign_processes({os.getpid(), *run.platform_pids(platform).values()})
        raw = asyncio.run(suite(platform, options))
    finally:
        platform.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    load_after = os.getloadavg()
    cores = len(os.sched_getaffinity(0))
    print(
        f"HTTP gateway benchmark  {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"
        f"  {cores} cores ({run.cpu_model()})"
    )
    print(
        f"medians over {options.runs} runs; {options.clients} login clients,"
        f" {options.latency_requests} queries per run; wall {time.monotonic() - started:.0f}s;"
        f" load average {load_before[0]:.2f} before, {load_after[0]:.2f} after;"
        f" {len(others)} other platform/test processes at start"
    )
    limits = " ".join(f"{name}={value}" for name, value in GATEWAY_ENVIRONMENT.items())
    print(f"gateway rate limits lifted for the bench: {limits}")
    print(f"HTTP client: {HTTP_CLIENT}")
    print("")
    print("\n".join(report(raw, options)))
    if options.json_path:
        raw |= {"loadavg_before": load_before, "loadavg_after": load_after, "others": others}
        options.json_path.write_text(json.dumps(raw, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
