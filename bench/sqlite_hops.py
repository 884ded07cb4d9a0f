"""What one SQL statement costs on SQLite: stock aiosqlite dialect, the one-hop dialect, sqlite3.

    uv run python bench/sqlite_hops.py [-n 2000] [--rounds 5]

Three workloads on a table of 1,000 rows, each timed through
  (a) SQLAlchemy + its stock aiosqlite dialect (`sqlite+aiosqlite`, as SQLAlchemy ships it),
  (b) SQLAlchemy + the one-hop dialect (`singlewindow.runtime.sqlite`, what `Database` uses),
  (c) bare sqlite3 in the calling thread (no SQLAlchemy, no thread): a floor.
Both SQLAlchemy variants get `Database`'s pragmas and BEGIN IMMEDIATE / DEFERRED listeners and
run prebuilt Core statements (compiled once, then cached):
  select     N SELECTs of one row by key, all in one read transaction (per statement),
  select-tx  N read transactions of one such SELECT each (BEGIN DEFERRED, SELECT, COMMIT),
  insert-tx  N write transactions of one INSERT each (BEGIN IMMEDIATE, INSERT, COMMIT).
Rounds alternate the variants; figures are medians over rounds, ratios within the same round
(the machine may be busy). CPU is the process's, all threads (aiosqlite's included). Hops are calls handed to aiosqlite's worker thread, counted by
wrapping the queue aiosqlite submits them to.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite.core
from singlewindow.runtime import db
from sqlalchemy import Column, Integer, MetaData, Table, Text, bindparam, event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


class CountingQueue(queue.SimpleQueue[Any]):
    """aiosqlite's call queue to its thread, counting what is put on it: one put, one hop."""

    puts = 0

    def put_nowait(self, item: Any) -> None:
        CountingQueue.puts += 1
        super().put_nowait(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)


# aiosqlite.Connection makes its queue from this module global when it is created.
aiosqlite.core.SimpleQueue = CountingQueue  # type: ignore[attr-defined]

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", Text, nullable=False, unique=True),
    Column("value", Text, nullable=False),
)
SELECT_BY_KEY = select(items.c.id, items.c.value).where(items.c.key == bindparam("key"))
INSERT_ONE = insert(items)
ROWS = 1000
WORKLOADS = ("select", "select-tx", "insert-tx")


def make_file(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, value TEXT NOT NULL)"
    )
    connection.executemany(
        "INSERT INTO items (key, value) VALUES (?, ?)", [(f"k{i}", f"v{i}") for i in range(ROWS)]
    )
    connection.close()


def make_engine(path: Path, drivername: str) -> AsyncEngine:
    engine = create_async_engine(f"{drivername}:///{path}")
    event.listen(engine.sync_engine, "connect", db._sqlite_pragmas)
    event.listen(engine.sync_engine, "begin", db._sqlite_begin_immediate)
    return engine


class Alchemy:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.serial = 0

    async def select(self, n: int) -> None:
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(**{db.READ_ONLY: True})
            async with connection.begin():
                for i in range(n):
                    (await connection.execute(SELECT_BY_KEY, {"key": f"k{i % ROWS}"})).one()

    async def select_tx(self, n: int) -> None:
        for i in range(n):
            async with self.engine.connect() as connection:
                connection = await connection.execution_options(**{db.READ_ONLY: True})
                async with connection.begin():
                    (await connection.execute(SELECT_BY_KEY, {"key": f"k{i % ROWS}"})).one()

    async def insert_tx(self, n: int) -> None:
        for _ in range(n):
            self.serial += 1
            async with self.engine.begin() as connection:
                await connection.execute(INSERT_ONE, {"key": f"n{self.serial}", "value": "x"})


class Bare:
    """sqlite3 in the event loop's own thread: the floor for one statement."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
            self.connection.execute(f"PRAGMA {pragma}")
        self.serial = 0
        self.sql = "SELECT id, value FROM items WHERE key = ?"

    async def select(self, n: int) -> None:
        execute = self.connection.execute
        execute("BEGIN DEFERRED")
        for i in range(n):
            execute(self.sql, (f"k{i % ROWS}",)).fetchall()
        execute("COMMIT")

    async def select_tx(self, n: int) -> None:
        execute = self.connection.execute
        for i in range(n):
            execute("BEGIN DEFERRED")
            execute(self.sql, (f"k{i % ROWS}",)).fetchall()
            execute("COMMIT")

    async def insert_tx(self, n: int) -> None:
        execute = self.connection.execute
        for _ in range(n):
            self.serial += 1
            execute("BEGIN IMMEDIATE")
            execute("INSERT INTO items (key, value) VALUES (?, ?)", (f"n{self.serial}", "x"))
            execute("COMMIT")


def runner(variant: Alchemy | Bare, workload: str) -> Callable[[int], Awaitable[None]]:
    return {
        "select": variant.select,
        "select-tx": variant.select_tx,
        "insert-tx": variant.insert_tx,
    }[workload]


async def timed(call: Callable[[int], Awaitable[None]], n: int) -> tuple[float, float, float]:
    """Wall µs and CPU µs (all of this process's threads) per call of the workload; hops per call."""
    hops = CountingQueue.puts
    start, cpu = time.perf_counter(), time.process_time()
    await call(n)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return elapsed / n * 1e6, cpu / n * 1e6, (CountingQueue.puts - hops) / n


async def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        paths = {name: Path(directory) / f"{name}.db" for name in ("stock", "onehop", "sqlite3")}
        for path in paths.values():
            make_file(path)
        stock = make_engine(paths["stock"], "sqlite+aiosqlite")
        onehop = make_engine(paths["onehop"], "sqlite+swaiosqlite")
        assert type(onehop.dialect).__module__ == "singlewindow.runtime.sqlite"
        assert type(stock.dialect).__module__ == "sqlalchemy.dialects.sqlite.aiosqlite"
        variants: dict[str, Alchemy | Bare] = {
            "stock": Alchemy(stock),
            "onehop": Alchemy(onehop),
            "sqlite3": Bare(paths["sqlite3"]),
        }
        for variant in variants.values():  # warm up: connections, compiled-statement cache
            for workload in WORKLOADS:
                await runner(variant, workload)(50)
        micros: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        hops: dict[tuple[str, str], float] = {}
        ratios: dict[tuple[str, str], list[float]] = {}
        for round_ in range(rounds):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for workload in WORKLOADS:
                this_round: dict[str, float] = {}
                for name in order:
                    us, cpu, per = await timed(runner(variants[name], workload), n)
                    this_round[name] = us
                    micros.setdefault((name, workload), []).append(us)
                    cpus.setdefault((name, workload), []).append(cpu)
                    hops[(name, workload)] = per
                ratios.setdefault(("stock/onehop", workload), []).append(
                    this_round["stock"] / this_round["onehop"]
                )
                ratios.setdefault(("onehop/sqlite3", workload), []).append(
                    this_round["onehop"] / this_round["sqlite3"]
                )
        await stock.dispose()
        await onehop.dispose()

    print(f"n={n} per workload and round, {rounds} rounds; medians (min-max over rounds)")
    print(f"{'workload':<10} {'variant':<8} {'µs each':>16} {'CPU µs each':>12} {'hops each':>10}")
    for workload in WORKLOADS:
        for name in variants:
            values = micros[(name, workload)]
            spread = f"{statistics.median(values):7.1f} ({min(values):.0f}-{max(values):.0f})"
            cpu = statistics.median(cpus[(name, workload)])
            print(
                f"{workload:<10} {name:<8} {spread:>16} {cpu:>12.1f}"
                f" {hops[(name, workload)]:>10.2f}"
            )
    print()
    print("ratios within each round, median (min-max)")
    for (label, workload), values in ratios.items():
        print(
            f"{workload:<10} {label:<15} {statistics.median(values):5.2f}"
            f" ({min(values):.2f}-{max(values):.2f})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="statements or transactions per timing")
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.n, arguments.rounds))
