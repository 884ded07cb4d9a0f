"""A transaction as one call on a connection of its own (SQLite), for `Database.run`/`read`.

Through SQLAlchemy's asyncio layer every statement is an await: on SQLite a trip to aiosqlite's
thread and back (a queue put, a thread wake-up, a future resolved from the thread, a greenlet
switch), on PostgreSQL a round trip through asyncpg. A transaction whose statements need nothing
from the event loop between them can instead run whole, as a synchronous function of a
`sqlalchemy.Connection`, in one call on a synchronous pysqlite connection to the same file,
with the same pragmas (WAL, `synchronous=FULL`, foreign keys, the busy timeout) and the same
`BEGIN IMMEDIATE` (writes) or `BEGIN DEFERRED` (reads).

Writes go to a thread that owns a connection (`OneThread`): the writes of the service's hot
paths never wait for one another on SQLite's lock (they are queued on the thread instead,
without the busy handler's sleeps), and the event loop never waits for a commit's `fsync`. The
function runs in a copy of the calling task's context (correlation id, log bindings); what it
sets there (the outbox's "events staged" flag) is set in the task afterwards.

Reads run on the event loop's own thread, on a connection of their own (`InPlace`): under WAL a
read waits for no writer and no `fsync`, and takes less time than a hand-off to a thread would.
So do writes that need not reach the disk before the caller goes on (`Unsynced`, for
`Database.run_unsynced`): without an `fsync` a short write transaction takes tens of
microseconds, less than the hand-off too.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, RootTransaction, event
from sqlalchemy.exc import OperationalError

__all__ = ["Busy", "InPlace", "OneThread", "Unsynced", "adopt"]

T = TypeVar("T")

log = logging.getLogger("singlewindow.runtime.onetrip")
"""At DEBUG, each trip (`one trip call fn`) and each statement (`one trip execute 'SQL'`: its
SQL only, never its parameters, which hold password hashes and ID numbers): `bench/run.py`
counts them from the services' logs."""


def _log_statement(_connection: Connection, _cursor: Any, statement: str, *_: Any) -> None:
    log.debug("one trip execute %r", statement)


def adopt(context: contextvars.Context) -> None:
    """Set in the current context every variable `context` (a copy of it) holds differently."""
    for variable, value in context.items():
        try:
            if variable.get() is value:
                continue
        except LookupError:
            pass
        variable.set(value)


_Job = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
]
"""A call: the loop and future its outcome goes to, the context it runs in, then `fn` and its
arguments."""

SQLITE_BUSY = 5


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Owner:
    """One connection of `engine`, kept, and each call one transaction on it."""

    pragmas: tuple[str, ...] = ()
    """Run on each new connection, after the engine's own connect pragmas."""

    def __init__(self, engine: Engine, options: dict[str, Any] | None = None) -> None:
        self._engine = engine
        self._options = options or {}
        self._connection: Connection | None = None

    def _begin(self, connection: Connection) -> RootTransaction:
        return connection.begin()

    def _transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        connection = self._connect()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("one trip call %s", getattr(fn, "__qualname__", fn))
        try:
            with self._begin(connection):
                return fn(connection, *args, **kwargs)
        except BaseException:
            if connection.invalidated:  # the driver's connection broke: a new one next time
                connection.close()
                self._connection = None
            raise

    def _connect(self) -> Connection:
        connection = self._connection
        if connection is None or connection.closed or connection.invalidated:
            if connection is not None:
                connection.close()
            if log.isEnabledFor(logging.DEBUG) and not event.contains(
                self._engine, "before_cursor_execute", _log_statement
            ):
                event.listen(self._engine, "before_cursor_execute", _log_statement)
            connection = self._engine.connect()
            for pragma in self.pragmas:  # outside a transaction: on the driver's connection
                connection.connection.driver_connection.execute(pragma)  # type: ignore[union-attr]
            if self._options:
                connection = connection.execution_options(**self._options)
            self._connection = connection
        return connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class OneThread(_Owner):
    """A thread owning one connection of `engine`; each call is one transaction on it.

    A call is a job on a queue the thread takes from, and its outcome comes back to the event
    loop with one `call_soon_threadsafe`: `run_in_executor`'s executor future, its lock and the
    chaining of two futures cost the event loop more than the rest of a short transaction's
    hand-off (`docs/performance.md`).
    """

    def __init__(self, engine: Engine, name: str, *, options: dict[str, Any] | None = None) -> None:
        super().__init__(engine, options)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=f"{name}_0", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, context, fn, args, kwargs = job
            del job
            if future.cancelled():  # its caller gave up before it began
                continue
            result: Any = None
            error: BaseException | None = None
            try:
                result = context.run(self._transaction, fn, *args, **kwargs)
            except BaseException as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result, error)
            del loop, future, context, fn, args, kwargs, result, error
        self._close()

    async def call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """`fn(connection, *args, **kwargs)` in one transaction, committed if it returns."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, context, fn, args, kwargs))
        result = await future
        adopt(context)
        return result

    async def close(self) -> None:
        """Let the thread finish the calls queued, close its connection, and end."""
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)


class InPlace(_Owner):
    """One connection of `engine` used where it is called (the event loop's thread), for reads.

    A read of a SQLite file in WAL mode takes no lock a writer holds: it never waits for one,
    and reading pages from the page cache takes microseconds. A hand-off to a thread costs more
    than that: the thread's wake-up, the loop's wake-up when the outcome comes back, and the
    cold caches each of them then runs on while argon2id fills the cores (`docs/performance.md`).
    """

    def call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """`fn(connection, *args, **kwargs)` in one transaction, here and now."""
        return self._transaction(fn, *args, **kwargs)

    def close(self) -> None:
        """Close its connection."""
        self._close()


class Busy(Exception):
    """Another connection holds the database's write lock: `Unsynced` did not begin."""


class Unsynced(InPlace):
    """One connection of `engine` for write transactions whose commit does not wait for `fsync`,
    used where it is called (the event loop's thread).

    Under WAL with `synchronous=NORMAL` a commit writes its frames to the log without an
    `fsync`; the next commit made with `synchronous=FULL` (any other connection's: they share
    the log file) flushes them with its own, and a crash of the process loses nothing. Only a
    power cut before that flush can undo such a commit, which is why `Database.run_unsynced` is
    for writes that no reply or acknowledgement depends on by themselves.

    It never waits for the write lock (no busy timeout): `call` raises `Busy` before anything
    ran if another connection holds it, for the caller to take the write elsewhere. Nor does
    it checkpoint the log: the connections that `fsync` do.
    """

    pragmas = ("PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=0", "PRAGMA wal_autocheckpoint=0")

    def _begin(self, connection: Connection) -> RootTransaction:
        try:
            return connection.begin()
        except OperationalError as exc:
            if getattr(exc.orig, "sqlite_errorcode", None) == SQLITE_BUSY:
                raise Busy from exc
            raise
