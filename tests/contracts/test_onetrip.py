"""`Database.run` / `Database.read` / `Database.run_unsynced`: a transaction as one synchronous
function, on a SQLite file one trip to the database's writer thread, a read in place, or a write
in place without fsync, with every guarantee of `transaction()` / `reading()`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest
from singlewindow.runtime.db import HELD, Database, IntegrityError
from singlewindow.runtime.idempotency import _Command
from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, event, insert, select

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", Text, nullable=False, unique=True),
)
FLAG: ContextVar[str] = ContextVar("test_onetrip_flag", default="unset")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.close()


def add(connection: Connection, key: str) -> int:
    result = connection.execute(insert(items).values(key=key))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def keys(connection: Connection) -> list[str]:
    return list(connection.scalars(select(items.c.key).order_by(items.c.id)))


def fail_after_adding(connection: Connection, key: str) -> None:
    add(connection, key)
    raise RuntimeError("changed my mind")


def thread_name(connection: Connection) -> str:
    return threading.current_thread().name


async def test_a_write_commits_when_it_returns_and_rolls_back_when_it_raises(
    database: Database,
) -> None:
    assert await database.run(add, "kept") == 1
    with pytest.raises(RuntimeError, match="changed my mind"):
        await database.run(fail_after_adding, "dropped")
    assert await database.read(keys) == ["kept"]
    async with database.reading() as connection:  # the async engine sees the same file
        assert list(await connection.scalars(select(items.c.key))) == ["kept"]


async def test_a_constraint_broken_on_the_thread_is_the_usual_integrity_error(
    database: Database,
) -> None:
    await database.run(add, "once")
    with pytest.raises(IntegrityError):
        await database.run(add, "once")
    assert await database.read(keys) == ["once"]


async def test_a_write_is_one_call_on_the_writer_thread_and_a_read_one_call_in_place(
    database: Database,
) -> None:
    seen: list[str] = []

    def record(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(
            statement.split()[0] + (" " + statement.split()[1] if "BEGIN" in statement else "")
        )

    assert database.thread_engine is not None
    event.listen(database.thread_engine, "before_cursor_execute", record)
    try:
        writer = await database.run(thread_name)
        await database.run(add, "a")
        reader = await database.read(thread_name)
        assert await database.read(keys) == ["a"]
    finally:
        event.remove(database.thread_engine, "before_cursor_execute", record)
    assert writer.startswith("db-write")
    assert reader == threading.current_thread().name
    assert seen == [
        "BEGIN IMMEDIATE",  # a write takes the write lock up front
        "BEGIN IMMEDIATE",
        "INSERT",
        "BEGIN DEFERRED",  # a read takes none
        "BEGIN DEFERRED",
        "SELECT",
    ]


async def test_a_read_in_place_waits_for_no_writer(database: Database) -> None:
    await database.run(add, "committed")
    async with database.transaction() as connection:  # holds the write lock, uncommitted
        await connection.execute(insert(items).values(key="pending"))
        assert await database.read(keys) == ["committed"]  # at once: not the busy timeout
    assert await database.read(keys) == ["committed", "pending"]


def synchronous(connection: Connection) -> tuple[str, int]:
    """The thread `fn` runs on, and the connection's `synchronous` (1 NORMAL, 2 FULL)."""
    level = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
    return threading.current_thread().name, level


async def test_an_unsynced_write_commits_in_place_without_fsync_and_a_run_with_it(
    database: Database,
) -> None:
    assert await database.run_unsynced(synchronous) == (threading.current_thread().name, 1)
    assert (await database.run(synchronous))[1] == 2  # what must reach the disk waits for it
    assert await database.run_unsynced(add, "unsynced") == 1
    with pytest.raises(RuntimeError, match="changed my mind"):
        await database.run_unsynced(fail_after_adding, "dropped")
    await database.run(add, "durable")  # on the writer's connection: it sees the first commit
    assert await database.read(keys) == ["unsynced", "durable"]


async def test_an_unsynced_write_never_waits_on_the_loop_for_the_write_lock(
    database: Database,
) -> None:
    async with database.transaction() as connection:  # another connection holds the write lock
        await connection.execute(insert(items).values(key="holding"))
        blocked = asyncio.create_task(database.run_unsynced(synchronous))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # queued on the writer thread, the loop free meanwhile
    where, level = await blocked
    assert where.startswith("db-write")  # taken there, as `run` takes it
    assert level == 2
    assert await database.run_unsynced(add, "after") == 2  # and in place again once free


async def test_what_the_function_sets_in_its_context_is_set_in_the_callers(
    database: Database,
) -> None:
    def set_flag(connection: Connection) -> str:
        before = FLAG.get()
        FLAG.set("set on the thread")
        return before

    FLAG.set("the caller's")
    assert await database.run(set_flag) == "the caller's"  # it sees the caller's context
    assert FLAG.get() == "set on the thread"


async def test_inside_a_held_unit_of_work_it_joins_that_transaction(database: Database) -> None:
    command = _Command(database)
    token = HELD.set(command)
    try:
        await database.run(add, "held")
        assert command.pending is not None  # not committed yet, but read inside the unit
        assert await database.read(keys) == ["held"]
        await command.rollback()
    finally:
        HELD.reset(token)
    assert await database.read(keys) == []  # the unit rolled back: so did the joined write


async def test_an_in_memory_database_runs_it_on_the_async_engine() -> None:
    database = Database("sqlite+aiosqlite:///:memory:")
    try:
        assert database.thread_engine is None
        await database.run(lambda connection: metadata.create_all(connection))
        assert await database.run(add, "x") == 1
    finally:
        await database.close()


async def test_without_threads_every_transaction_runs_on_the_async_engine(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}", threads=False)
    try:
        assert database.thread_engine is None
        assert database.sync_engines == (database.engine.sync_engine,)
        await database.run(lambda connection: metadata.create_all(connection))
        assert await database.run(add, "y") == 1
        assert await database.read(keys) == ["y"]
    finally:
        await database.close()
