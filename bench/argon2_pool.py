"""argon2id through the platform's pool against argon2-cffi's PasswordHasher in a thread pool.

    uv run python bench/argon2_pool.py [--runs N] [--seconds S] [--json PATH]

Each configuration runs in a process of its own, as a service would:

- "mapped per hash": `PasswordHasher` in a `ThreadPoolExecutor` under
  `MALLOC_MMAP_THRESHOLD_=131072`, the platform's previous setup (glibc maps and unmaps argon2's
  19 MiB on every hash);
- "glibc default": the same without the variable (glibc keeps the memory in its arenas);
- "pooled": the `Argon2Pool` and `Argon2Hasher` that `PasswordHashing` uses, no variable.

Throughput: in one process per baseline, windows of the baseline and of the pool alternate (the
pool's threads told not to end while the baseline's windows run); the pool's rate is divided by
the mean of the baseline windows either side of it, run by run, so a neighbour's load moves both
sides of a ratio together; medians over the runs. 1 and 2 client threads keep that many hashes or
verifies in flight. Minor page faults and CPU per operation come from `getrusage` over each window.

Memory: a fresh process per configuration (three each) hashes and verifies 24 passwords on 2
threads; VmRSS before, right after, and 1 s after the pool's idle time (2 s) has passed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from singlewindow.runtime.argon2pool import Argon2Hasher, Argon2Pool
from singlewindow.runtime.passwords import Argon2Parameters

PASSWORD = "Chongqing-Trade-2026"
OLD_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}
BASELINES = {"mapped per hash": OLD_MALLOC, "glibc default": {}}
IDLE_SECONDS = 2.0


class Submitter:
    """One configuration's hash and verify, submitted to its pool as the services do."""

    def __init__(self, kind: str, threads: int, idle_seconds: float = IDLE_SECONDS) -> None:
        hasher = Argon2Parameters().hasher()
        if kind == "pooled":  # as PasswordHashing builds it
            argon2 = Argon2Hasher(hasher)
            self.pool: Executor | Argon2Pool = Argon2Pool(
                threads, retain=argon2.memory_bytes, idle_seconds=idle_seconds
            )
            self.hash: Callable[[str], str] = argon2.hash
            self.verify: Callable[[str, str], bool] = argon2.verify
        else:
            self.pool = ThreadPoolExecutor(threads, thread_name_prefix="argon2")
            self.hash, self.verify = hasher.hash, hasher.verify
        self.stored = ""
        self.stored = self.submit("hash").result()

    def submit(self, operation: str) -> Future[Any]:
        if operation == "hash" or not self.stored:
            return self.pool.submit(self.hash, PASSWORD)
        return self.pool.submit(self.verify, self.stored, PASSWORD)


def window(submitter: Submitter, operation: str, clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads each keeping one operation in flight for `seconds`."""
    counts = [0] * clients
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    deadline = start + seconds

    def client(index: int) -> None:
        while time.perf_counter() < deadline:
            submitter.submit(operation).result()
            counts[index] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    done = max(1, sum(counts))
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {
        "per_second": sum(counts) / elapsed,
        "faults_per_op": (after.ru_minflt - before.ru_minflt) / done,
        "cpu_ms_per_op": cpu * 1000 / done,
        "system_ms_per_op": (after.ru_stime - before.ru_stime) * 1000 / done,
    }


def rates_child(runs: int, seconds: float) -> dict[str, Any]:
    """Baseline and pool windows alternating, for 1 and 2 clients, hash and verify."""
    found: dict[str, Any] = {}
    for clients in (1, 2):
        # The pool's threads must outlive the baseline's windows: this measures them busy.
        baseline, pooled = Submitter("baseline", clients), Submitter("pooled", clients, 3600)
        for operation in ("hash", "verify"):
            baseline.submit(operation).result()
            pooled.submit(operation).result()
            windows: dict[str, list[dict[str, float]]] = {"baseline": [], "pooled": []}
            windows["baseline"].append(window(baseline, operation, clients, seconds))
            for _ in range(runs):
                windows["pooled"].append(window(pooled, operation, clients, seconds))
                windows["baseline"].append(window(baseline, operation, clients, seconds))
            found[f"{operation} {clients}"] = windows
    return found


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def memory_child(kind: str) -> dict[str, int]:
    """VmRSS before, after 24 hashes and 24 verifies on 2 threads, and after the idle time."""
    idle = rss_kib()
    submitter = Submitter(kind, 2)
    for operation in ("hash", "verify"):
        for future in [submitter.submit(operation) for _ in range(24)]:
            future.result()
    after = rss_kib()
    time.sleep(IDLE_SECONDS + 1)
    return {"idle": idle, "after_burst": after, "after_idle": rss_kib()}


def child(arguments: list[str], environment: dict[str, str]) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | environment
    done = subprocess.run(
        [sys.executable, __file__, *arguments],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return json.loads(done.stdout)


def ratios(windows: dict[str, list[dict[str, float]]], key: str) -> float:
    """Median over runs of pooled / mean of the two baseline windows around it."""
    base, pooled = windows["baseline"], windows["pooled"]
    return statistics.median(
        p[key] / ((base[i][key] + base[i + 1][key]) / 2) for i, p in enumerate(pooled)
    )


def median_of(found: list[dict[str, float]], key: str) -> float:
    return statistics.median(w[key] for w in found)


def report(options: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    load = os.getloadavg()
    results: dict[str, Any] = {"rates": {}, "memory": {}}
    for name, environment in BASELINES.items():
        results["rates"][name] = child(
            ["--child", "rates", "--runs", str(options.runs), "--seconds", str(options.seconds)],
            environment,
        )
    for name, kind, environment in (
        ("mapped per hash", "baseline", OLD_MALLOC),
        ("glibc default", "baseline", {}),
        ("pooled", "pooled", {}),
    ):
        runs = [child(["--child", "memory", "--kind", kind], environment) for _ in range(3)]
        results["memory"][name] = {
            key: statistics.median(run[key] for run in runs) for key in runs[0]
        }

    print(
        f"argon2id, m=19 MiB t=2 p=1; {os.cpu_count()} cores, load {load[0]:.2f} before and "
        f"{os.getloadavg()[0]:.2f} after, {options.runs} runs of {options.seconds:g} s, "
        f"{time.time() - started:.0f} s"
    )
    for name, found in results["rates"].items():
        print(f"\nbaseline: PasswordHasher in a ThreadPoolExecutor, {name}")
        print(
            f"  {'':10} {'baseline /s':>11} {'pooled /s':>10} {'ratio':>6}"
            f" {'faults/op':>15} {'CPU ms/op':>13} {'kernel ms/op':>13}"
        )
        for figure, windows in found.items():
            base, pooled = windows["baseline"], windows["pooled"]
            cells = [
                f"{median_of(base, 'per_second'):11.1f}",
                f"{median_of(pooled, 'per_second'):10.1f}",
                f"{ratios(windows, 'per_second'):6.2f}",
            ]
            for key, width in (("faults_per_op", 7), ("cpu_ms_per_op", 6), ("system_ms_per_op", 6)):
                pair = f"{median_of(base, key):.1f} / {median_of(pooled, key):.1f}"
                cells.append(pair.rjust(2 * width + 1))
            print(f"  {figure:10} " + " ".join(cells))
    print("\nVmRSS, MiB (24 hashes and 24 verifies on 2 threads; idle = 3 s later)")
    print(f"  {'':16} {'start':>6} {'after burst':>12} {'after idle':>11}")
    for name, memory in results["memory"].items():
        print(
            f"  {name:16} {memory['idle'] / 1024:6.1f} {memory['after_burst'] / 1024:12.1f}"
            f" {memory['after_idle'] / 1024:11.1f}"
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each window")
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    parser.add_argument("--child", choices=("rates", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="pooled", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child == "rates":
        print(json.dumps(rates_child(options.runs, options.seconds)))
    elif options.child == "memory":
        print(json.dumps(memory_child(options.kind)))
    else:
        results = report(options)
        if options.json:
            options.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
