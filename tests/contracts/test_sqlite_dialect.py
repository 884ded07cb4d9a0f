"""The one-hop SQLite dialect: the stock aiosqlite dialect's results, one thread hop a statement."""

from __future__ import annotations

import queue
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import aiosqlite.core
import pytest
import sqlalchemy.exc
from singlewindow.registration.repository import metadata as registration_tables
from singlewindow.runtime import db
from singlewindow.runtime.db import Database, IntegrityError
from singlewindow.runtime.sqlite import SQLiteDialect_swaiosqlite, check_aiosqlite
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tests.support.handlers import local_service

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", Text, nullable=False, unique=True),
    Column("value", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=True),
)
AT = datetime(2026, 12, 2, 3, 4, 5, 678000, tzinfo=UTC)


class CountingQueue(queue.SimpleQueue[Any]):
    """aiosqlite's queue of calls to its thread, counting puts: one put is one hop."""

    puts = 0

    def put_nowait(self, item: Any) -> None:
        CountingQueue.puts += 1
        super().put_nowait(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)


@pytest.fixture(autouse=True)
def counted_hops(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiosqlite.Connection makes its queue from this module global when it is created.
    monkeypatch.setattr(aiosqlite.core, "SimpleQueue", CountingQueue)


def hops_since(start: int) -> int:
    return CountingQueue.puts - start


def engine_for(path: Path, drivername: str) -> AsyncEngine:
    """An engine as `Database` makes one (pragmas, BEGIN IMMEDIATE), on the given dialect."""
    engine = create_async_engine(f"{drivername}:///{path}")
    event.listen(engine.sync_engine, "connect", db._sqlite_pragmas)
    event.listen(engine.sync_engine, "begin", db._sqlite_begin_immediate)
    return engine


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[dict[str, AsyncEngine]]:
    made = {
        "stock": engine_for(tmp_path / "stock.db", "sqlite+aiosqlite"),
        "onehop": engine_for(tmp_path / "onehop.db", "sqlite+swaiosqlite"),
    }
    for engine in made.values():
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
    yield made
    for engine in made.values():
        await engine.dispose()


def test_aiosqlite_still_has_what_the_dialect_relies_on() -> None:
    # If this fails, aiosqlite changed: singlewindow/runtime/sqlite.py needs updating.
    check_aiosqlite()
    assert isinstance(aiosqlite.Connection.in_transaction, property)
    assert isinstance(aiosqlite.Connection.__dict__["_conn"], property)
    broken = types.ModuleType("aiosqlite")
    broken.Connection = type("Connection", (), {})
    with pytest.raises(RuntimeError, match="one-hop SQLite dialect"):
        check_aiosqlite(broken)


async def test_aiosqlite_execute_runs_the_function_on_its_thread(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "x.db") as connection:
        assert isinstance(connection._tx, CountingQueue)
        start = CountingQueue.puts
        execute: Callable[..., Awaitable[int]] = connection._execute
        ident = await execute(threading.get_ident)
        assert ident == connection._thread.ident != threading.get_ident()
        assert hops_since(start) == 1


def test_database_keeps_the_url_and_runs_the_one_hop_dialect(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    assert str(database.url).startswith("sqlite+aiosqlite:///")
    assert isinstance(database.engine.dialect, SQLiteDialect_swaiosqlite)
    assert database.engine.dialect.driver == "aiosqlite"
    assert database._migration_engine().dialect.__class__ is SQLiteDialect_swaiosqlite


async def script(connection: AsyncConnection) -> list[Any]:
    """Statements of every kind the services use, and what SQLAlchemy makes of each."""
    seen: list[Any] = []
    result = await connection.execute(insert(items), {"key": "a", "value": "1", "at": AT})
    seen.append(("insert", result.inserted_primary_key, result.rowcount, result.lastrowid))
    result = await connection.execute(
        insert(items), [{"key": f"m{i}", "value": str(i), "at": None} for i in range(5)]
    )
    seen.append(("executemany", result.rowcount))
    result = await connection.execute(
        insert(items).returning(items.c.id, items.c.key),
        [{"key": f"r{i}", "value": None, "at": AT} for i in range(3)],
    )
    seen.append(("insertmanyvalues returning", result.all()))
    by_key = select(items).where(items.c.key == bindparam("key"))
    seen.append(("select one", (await connection.execute(by_key, {"key": "a"})).one()))
    seen.append(("select none", (await connection.execute(by_key, {"key": "zz"})).all()))
    result = await connection.execute(select(items.c.key).order_by(items.c.id))
    seen.append(("select keys", result.keys(), result.scalars().all()))
    result = await connection.execute(
        update(items).where(items.c.key.like("m%")).values(value="u").returning(items.c.key)
    )
    seen.append(("update returning", sorted(result.scalars().all())))
    result = await connection.execute(update(items).where(items.c.key.like("r%")).values(value="v"))
    seen.append(("update rowcount", result.rowcount))
    result = await connection.execute(
        text("UPDATE items SET value = :value WHERE key = :key"),
        [{"value": "w", "key": "m1"}, {"value": "w", "key": "m2"}],
    )
    seen.append(("text executemany", result.rowcount))
    result = await connection.execute(text("DELETE FROM items WHERE key = 'm4'"))
    seen.append(("delete", result.rowcount))
    partitions = (await connection.execute(select(items.c.key).order_by(items.c.key))).partitions(4)
    seen.append(("partitions", [list(part) for part in partitions]))
    seen.append(
        ("driver sql", (await connection.exec_driver_sql("SELECT count(*) FROM items")).all())
    )
    streamed = await connection.stream(select(items.c.key).order_by(items.c.id).limit(3))
    seen.append(("stream", [row async for row in streamed]))
    return seen


async def test_the_same_results_as_the_stock_dialect(engines: dict[str, AsyncEngine]) -> None:
    seen = {}
    for name, engine in engines.items():
        async with engine.begin() as connection:
            seen[name] = await script(connection)
        async with engine.connect() as connection:
            seen[name].append(
                ("committed", (await connection.execute(select(items).order_by(items.c.id))).all())
            )
    assert seen["onehop"] == seen["stock"]
    assert seen["onehop"][0] == ("insert", (1,), 1, 1)
    assert seen["onehop"][3][1][3] in (AT, AT.replace(tzinfo=None))


async def insert_b_then_a(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(items), {"key": "b"})
        await connection.execute(insert(items), {"key": "a"})


async def select_from_nowhere(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT nothing FROM nowhere"))


async def test_errors_map_to_sqlalchemys_exceptions(engines: dict[str, AsyncEngine]) -> None:
    for name, engine in engines.items():
        async with engine.begin() as connection:
            await connection.execute(insert(items), {"key": "a"})
        with pytest.raises(IntegrityError) as caught:
            await insert_b_then_a(engine)
        assert isinstance(caught.value.orig, aiosqlite.IntegrityError), name
        assert "UNIQUE constraint failed" in str(caught.value), name
        with pytest.raises(sqlalchemy.exc.OperationalError):
            await select_from_nowhere(engine)
        async with engine.connect() as connection:  # the failed transaction was rolled back
            keys = (await connection.execute(select(items.c.key))).scalars().all()
        assert keys == ["a"], name


async def test_one_hop_per_statement_begin_and_commit(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        async with database.transaction() as connection:
            await connection.run_sync(metadata.create_all)
        by_key = select(items).where(items.c.key == bindparam("key"))
        counts: dict[str, int] = {}
        async with database.engine.connect() as connection:
            start = CountingQueue.puts
            await connection.begin()
            counts["begin"] = hops_since(start)
            statements: list[tuple[str, Any, Any, bool]] = [
                ("insert", insert(items), {"key": "a"}, False),
                ("executemany", insert(items), [{"key": "b"}, {"key": "c"}], False),
                ("select", by_key, {"key": "a"}, True),
                (
                    "update returning",
                    update(items).values(value="x").returning(items.c.id),
                    None,
                    True,
                ),
                ("text select", text("SELECT key FROM items"), None, True),
            ]
            for label, statement, parameters, rows in statements:
                start = CountingQueue.puts
                result = await connection.execute(statement, parameters)
                if rows:
                    assert result.all()
                counts[label] = hops_since(start)
            start = CountingQueue.puts
            await connection.commit()
            counts["commit"] = hops_since(start)
            await connection.begin()
            start = CountingQueue.puts
            await connection.rollback()
            counts["rollback"] = hops_since(start)
            start = CountingQueue.puts
        counts["checkin"] = hops_since(start)  # no reset-on-return ROLLBACK: nothing was open
        assert counts == {
            "begin": 1,
            "insert": 1,
            "executemany": 1,
            "select": 1,
            "update returning": 1,
            "text select": 1,
            "commit": 1,
            "rollback": 1,
            "checkin": 0,
        }
        start = CountingQueue.puts
        async with database.reading() as connection:
            (await connection.execute(by_key, {"key": "a"})).one()
        assert hops_since(start) == 3  # BEGIN DEFERRED, SELECT, COMMIT
    finally:
        await database.close()


async def test_the_stock_dialect_takes_several_hops(engines: dict[str, AsyncEngine]) -> None:
    # The counter sees what the one-hop dialect saves: the stock cursor's create, execute,
    # fetchall and close are a hop each.
    async with engines["stock"].begin() as connection:
        start = CountingQueue.puts
        (await connection.execute(select(items))).all()
        assert hops_since(start) == 4
        start = CountingQueue.puts
        await connection.execute(insert(items), {"key": "a"})
        assert hops_since(start) == 3


async def test_a_service_commits_with_synchronous_full(tmp_path: Path) -> None:
    """Under WAL, `synchronous=NORMAL` may lose the last commits on power loss; FULL does not."""
    async with local_service("registration", registration_tables, tmp_path) as service:
        for connect in (service.db.transaction, service.db.reading):
            async with connect() as connection:
                assert await connection.scalar(text("PRAGMA synchronous")) == 2  # FULL
                assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
