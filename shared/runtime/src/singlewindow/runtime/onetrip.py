"""A transaction as one call on the database's own thread (SQLite), for `Database.run`/`read`.

Through SQLAlchemy's asyncio layer every statement is an await: on SQLite a trip to aiosqlite's
thread and back (a queue put, a thread wake-up, a future resolved from the thread, a greenlet
switch), on PostgreSQL a round trip through asyncpg. A transaction whose statements need nothing
from the event loop between them can instead run whole, as a synchronous function of a
`sqlalchemy.Connection`, in one trip: here, on a thread that owns a synchronous pysqlite
connection to the same file, with the same pragmas (WAL, `synchronous=FULL`, foreign keys, the
busy timeout) and the same `BEGIN IMMEDIATE` (writes) or `BEGIN DEFERRED` (reads).

Writes go to one thread and reads to another, each with one connection it keeps: the writes of
the service's hot paths never wait for one another on SQLite's lock (they are queued on the
thread instead, without the busy handler's sleeps), and a read never waits behind a write's
`fsync`. The function runs in a copy of the calling task's context (correlation id, log
bindings); what it sets there (the outbox's "events staged" flag) is set in the task afterwards.
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

from sqlalchemy import Connection, Engine, event

__all__ = ["OneThread", "adopt"]

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
"""A call: the loop and future its outcome goes to, then `_transaction`'s arguments."""


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class OneThread:
    """A thread owning one connection of `engine`; each call is one transaction on it.

    A call is a job on a queue the thread takes from, and its outcome comes back to the event
    loop with one `call_soon_threadsafe`: `run_in_executor`'s executor future, its lock and the
    chaining of two futures cost the event loop more than the rest of a short transaction's
    hand-off (`docs/performance.md`).
    """

    def __init__(self, engine: Engine, name: str, *, options: dict[str, Any] | None = None) -> None:
        self._engine = engine
        self._options = options or {}
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=f"{name}_0", daemon=True)
        self._thread.start()
        self._connection: Connection | None = None
        """Touched only on the thread."""

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, context, fn, args, kwargs = job
            del job
            if future.cancelled():  # its caller gave up before it began
                continue
            result: Any = None
            error: BaseException | None = None
            try:
                result = self._transaction(context, fn, args, kwargs)
            except BaseException as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result, error)
            del loop, future, context, fn, args, kwargs, result, error
        self._close()

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
            if self._options:
                connection = connection.execution_options(**self._options)
            self._connection = connection
        return connection

    def _transaction(
        self,
        context: contextvars.Context,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        connection = self._connect()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("one trip call %s", getattr(fn, "__qualname__", fn))
        try:
            with connection.begin():
                return context.run(fn, connection, *args, **kwargs)
        except BaseException:
            if connection.invalidated:  # the driver's connection broke: a new one next time
                connection.close()
                self._connection = None
            raise

    async def call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """`fn(connection, *args, **kwargs)` in one transaction, committed if it returns."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, context, fn, args, kwargs))
        result = await future
        adopt(context)
        return result

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        """Let the thread finish the calls queued, close its connection, and end."""
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)
