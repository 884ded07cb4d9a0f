"""One database per service: SQLite by default, PostgreSQL by URL, Alembic migrations at start."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

import structlog
from singlewindow.runtime.onetrip import Busy, InPlace, OneThread, Unsynced
from sqlalchemy import Column, ColumnElement, Connection, Engine, Index, create_engine, event, text
from sqlalchemy.dialects import registry
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.util import greenlet_spawn

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

log = structlog.get_logger("singlewindow.db")

P = ParamSpec("P")
T = TypeVar("T")

__all__ = [
    "HELD",
    "Database",
    "Held",
    "IntegrityError",
    "as_utc",
    "partial_index",
    "settle_held",
    "upsert",
]


def as_utc(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite hands back naive ones)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# SQLAlchemy's PostgreSQL dialect package (every driver's dialect: asyncpg, psycopg, pg8000, …)
# adds about 5 MiB to a process. A service on SQLite never compiles for PostgreSQL, so nothing at
# module level names that dialect: upserts are built per dialect on first use, and partial indexes
# get their PostgreSQL predicate when a PostgreSQL database is opened.


def upsert(dialect_name: str, table: TableClause) -> postgresql.Insert | sqlite.Insert:
    """`INSERT … ON CONFLICT` on `table` for the dialect named `dialect_name` (a connection's
    `dialect.name`), importing only that dialect."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if dialect_name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    raise ValueError(f"no upsert for the {dialect_name!r} dialect")


_PARTIAL_INDEXES: list[tuple[Index, ColumnElement[bool]]] = []
_postgresql_opened = False


def partial_index(
    name: str, *columns: Column[Any], where: ColumnElement[bool], unique: bool = False
) -> Index:
    """An index on the rows matching `where` only, on SQLite and on PostgreSQL (the tables'
    record of what the migrations create: `op.create_index(..., sqlite_where=...,
    postgresql_where=...)`).

    SQLite's predicate is set at once; PostgreSQL's when a PostgreSQL `Database` is opened (or at
    once if one already is), since naming `postgresql_where` imports PostgreSQL's dialect.
    """
    index = Index(name, *columns, unique=unique, sqlite_where=where)
    _PARTIAL_INDEXES.append((index, where))
    if _postgresql_opened:
        index.dialect_options["postgresql"]["where"] = where
    return index


def _give_postgresql_partial_indexes() -> None:
    global _postgresql_opened
    _postgresql_opened = True
    for index, where in _PARTIAL_INDEXES:
        index.dialect_options["postgresql"]["where"] = where


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, foreign_keys: bool = True) -> None:
    # Transactions are begun by hand (BEGIN IMMEDIATE below), so the driver must not begin its own.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: under WAL, NORMAL may lose the last commits on power loss, and a lost commit is a
    # lost registration whose reply already said "accepted" (https://www.sqlite.org/pragma.html).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cursor.close()


READ_ONLY = "singlewindow_read_only"

# SQLAlchemy's aiosqlite dialect with one hop to aiosqlite's thread per statement (sqlite.py).
registry.register("sqlite.swaiosqlite", "singlewindow.runtime.sqlite", "SQLiteDialect_swaiosqlite")


def _engine_url(url: URL) -> URL:
    """The URL the engine is made with: `sqlite+aiosqlite` runs on the one-hop dialect."""
    if url.drivername == "sqlite+aiosqlite":
        return url.set(drivername="sqlite+swaiosqlite")
    return url


def _closed_by_server(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    # Instead of `pool_pre_ping` (BEGIN, an empty query and ROLLBACK: three round trips per
    # checkout): a backend that PostgreSQL terminated (a restart, `pg_terminate_backend`) closed
    # its socket, which asyncpg has already seen. The pool then connects afresh; a connection
    # that breaks after the checkout is `Database.run`/`read`'s retry's to handle.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _sqlite_begin_immediate(connection: Connection) -> None:
    # A deferred transaction that reads then writes can fail with SQLITE_BUSY mid-way;
    # taking the write lock up front makes concurrent writers queue instead. A transaction
    # that only reads needs no lock: under WAL it sees a snapshot while writers go on.
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


class Held(Protocol):
    """A unit of work that the current task's transactions join (an idempotent command's)."""

    def joins(self, database: Database) -> bool:
        """Whether `database`'s transactions in the current task belong to this unit of work."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """Its connection inside one write transaction, committed when the unit of work says."""
        ...

    def reading(self) -> AbstractAsyncContextManager[AsyncConnection] | None:
        """Its uncommitted write transaction, for a read that must see it; None without one."""
        ...

    async def settle(self) -> None:
        """Commit its uncommitted write transaction now."""
        ...


HELD: ContextVar[Held | None] = ContextVar("singlewindow_held_transaction", default=None)
"""The unit of work the current task's transactions join, if any (`idempotency.py`)."""


async def settle_held() -> None:
    """Commit the current task's held write transaction, if any, before slow work (hashing, a
    request to another service) that must not keep the database's write lock meanwhile."""
    held = HELD.get()
    if held is not None:
        await held.settle()


class Database:
    """An async engine with transactions that commit on success and roll back on error."""

    def __init__(self, url: str, *, echo: bool = False, threads: bool = True) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        options: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            options |= {"pool_size": 10, "max_overflow": 10}
        if self.url.get_backend_name() == "postgresql" and not _postgresql_opened:
            _give_postgresql_partial_indexes()
        self.engine: AsyncEngine = create_async_engine(_engine_url(self.url), **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)
        else:
            event.listen(self.engine.sync_engine, "checkout", _closed_by_server)
        # Reads outside a transaction on a server: under READ COMMITTED (PostgreSQL's default,
        # which nothing here raises) each statement takes its own snapshot even inside one, so
        # BEGIN and ROLLBACK around a read add two round trips and no consistency. SQLite keeps
        # its BEGIN DEFERRED: there one snapshot per transaction is what a read gets.
        self._read_options: dict[str, Any] = {READ_ONLY: True}
        if not self.is_sqlite:
            self._read_options["isolation_level"] = "AUTOCOMMIT"
        # One call per transaction (`run`, `read`): a synchronous engine, writes on a thread of
        # their own and reads in place, for a SQLite file (an in-memory database is per
        # connection: it keeps the async engine).
        self.thread_engine: Engine | None = None
        self._writer: OneThread | None = None
        self._reader: InPlace | None = None
        self._unsynced: Unsynced | None = None
        if threads and self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            self.thread_engine = create_engine(
                self.url.set(drivername="sqlite+pysqlite"),
                echo=echo,
                poolclass=NullPool,
                connect_args={"check_same_thread": False},
            )
            event.listen(self.thread_engine, "connect", _sqlite_pragmas)
            event.listen(self.thread_engine, "begin", _sqlite_begin_immediate)
            self._writer = OneThread(self.thread_engine, "db-write")
            self._reader = InPlace(self.thread_engine, {READ_ONLY: True})
            self._unsynced = Unsynced(self.thread_engine)

    @property
    def sync_engines(self) -> tuple[Engine, ...]:
        """Every engine whose statements reach this database (for listeners: tests, counts)."""
        engines = (self.engine.sync_engine,)
        return engines if self.thread_engine is None else (*engines, self.thread_engine)

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(connection, *args, **kwargs)` as one write transaction, committed if it returns.

        `fn` is synchronous: every statement of the transaction, and nothing that waits for
        anything but the database. On a SQLite file the whole transaction is one trip to the
        database's writer thread (`onetrip.py`); on PostgreSQL (and in-memory SQLite) it runs in
        one greenlet on a pooled connection, and runs once more on a new connection if the first
        broke before COMMIT was sent (the server restarted): so `fn` changes nothing but the
        database. Inside a held unit of work (an idempotent command's) it joins that unit's
        transaction, as `transaction()` does.
        """
        held = HELD.get()
        if held is not None and held.joins(self):
            async with held.transaction() as connection:
                return await connection.run_sync(fn, *args, **kwargs)
        if self._writer is not None:
            return await self._writer.call(fn, args, kwargs)
        return await greenlet_spawn(self._unit_of_work, {}, fn, args, kwargs)

    async def run_unsynced(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """As `run`, for a write that nobody is told of by itself: a durable `run` of this
        database (or nothing, if the process stops) always follows it before any reply or
        acknowledgement that depends on it, such as a login attempt counted before its verify.

        On a SQLite file it runs here, on the event loop's thread, and commits without an
        `fsync` (`onetrip.Unsynced`); the next durable commit flushes it with its own (under WAL
        they write one log). A crash of the process loses nothing; a power cut before that
        commit loses it, and with it only what no one was told. While another connection holds
        the write lock it goes to the writer thread as `run` instead, so it never waits on the
        loop. Elsewhere (PostgreSQL, in-memory SQLite, a held unit of work) it is `run`."""
        held = HELD.get()
        if self._unsynced is not None and (held is None or not held.joins(self)):
            try:
                return self._unsynced.call(fn, args, kwargs)
            except Busy:
                pass
        return await self.run(fn, *args, **kwargs)

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(connection, *args, **kwargs)`, statements that only read (no write lock): on a
        SQLite file as one transaction, here on the event loop's thread (`onetrip.InPlace`: under
        WAL it waits for no writer, and costs less than a trip to a thread); on PostgreSQL
        each statement on its own (autocommit, see `reading()`), `fn` run again on a new
        connection if the first broke; inside a held unit of work with a write transaction, in
        that transaction (it must see it), as `reading()`."""
        held = HELD.get()
        joined = held.reading() if held is not None and held.joins(self) else None
        if joined is not None:
            async with joined as connection:
                return await connection.run_sync(fn, *args, **kwargs)
        if self._reader is not None:
            return self._reader.call(fn, args, kwargs)
        return await greenlet_spawn(self._unit_of_work, self._read_options, fn, args, kwargs)

    def _unit_of_work(
        self,
        options: dict[str, Any],
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        """`fn` in one transaction on a pooled connection, committed if it returns: checkout,
        statements, commit and release in one greenlet (`run_sync` would spawn one for each).

        A connection found broken before COMMIT was sent (the server restarted, or ended its
        backend) is replaced and `fn` runs once more: nothing of the first try was committed.
        A COMMIT that fails is never retried, since it may have committed.
        """
        for last in (False, True):
            with self.engine.sync_engine.connect() as connection:
                if options:
                    connection.execution_options(**options)
                try:
                    result = fn(connection, *args, **kwargs)
                except DBAPIError as error:
                    if last or not error.connection_invalidated:
                        raise
                    log.warning(
                        "database connection lost before commit; running again",
                        error=str(error.orig),
                    )
                    continue
                connection.commit()
                return result
        raise AssertionError("unreachable: the last try returns or raises")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction."""
        held = HELD.get()
        if held is not None and held.joins(self):
            async with held.transaction() as connection:
                yield connection
            return
        async with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for statements that only read (it takes no write lock): inside one
        transaction on SQLite, in autocommit on PostgreSQL (no BEGIN nor ROLLBACK to send; under
        READ COMMITTED each statement had its own snapshot anyway)."""
        held = HELD.get()
        joined = held.reading() if held is not None and held.joins(self) else None
        if joined is not None:
            async with joined as connection:
                yield connection
            return
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(**self._read_options)
            async with connection.begin():
                yield connection

    async def migrate_in_child(self, script_location: Path) -> None:
        """`migrate` in a short-lived child process: Alembic and what it imports (some 10-30 MB)
        never stay in the long-running service. The URL goes by environment, not argv (`ps`)."""
        if self.url.database in (None, "", ":memory:") and self.is_sqlite:
            await self.migrate(script_location)  # a child could not see this database
            return
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "singlewindow.runtime.db",
            str(script_location),
            env=os.environ | {MIGRATE_URL: self.url.render_as_string(hide_password=False)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"migration failed: {stderr.decode(errors='replace')[-2000:]}")

    async def migrate(self, script_location: Path) -> None:
        """Bring the schema to the newest Alembic revision in `script_location`."""
        # Imported here: Alembic is needed once at start, and costs each service ~10 MB if kept.
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(script_location))

        def upgrade(connection: Connection) -> None:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            if self.is_sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")

        engine = self._migration_engine()
        try:
            async with engine.begin() as connection:
                await connection.run_sync(upgrade)
        finally:
            if engine is not self.engine:
                await engine.dispose()

    def _migration_engine(self) -> AsyncEngine:
        if not self.is_sqlite or self.url.database in (None, "", ":memory:"):
            return self.engine
        # A batch migration rebuilds a table (copy, drop, rename), which trips the foreign keys
        # pointing at it: SQLite's procedure runs it with foreign keys off, checked before commit
        # (https://www.sqlite.org/lang_altertable.html#otheralter), and the pragma cannot change
        # inside a transaction, so migrations get connections of their own.
        engine = create_async_engine(_engine_url(self.url), poolclass=NullPool)
        event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, foreign_keys=False))
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine

    async def ping(self) -> bool:
        """Whether the database answers."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        """Close every pooled connection, and the threads' own."""
        if self._writer is not None:
            await self._writer.close()
        for owner in (self._reader, self._unsynced):
            if owner is not None:
                owner.close()
        self._writer = self._reader = self._unsynced = None
        await self.engine.dispose()
        if self.thread_engine is not None:
            self.thread_engine.dispose()


MIGRATE_URL = "SW_MIGRATE_DATABASE_URL"
"""The database a migration child process (`python -m singlewindow.runtime.db DIR`) migrates."""


async def _migrate_here(script_location: Path) -> None:
    database = Database(os.environ[MIGRATE_URL])
    try:
        await database.migrate(script_location)
    finally:
        await database.close()


if __name__ == "__main__":
    asyncio.run(_migrate_here(Path(sys.argv[1])))
