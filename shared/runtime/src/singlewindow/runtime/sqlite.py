"""SQLAlchemy's aiosqlite dialect, with each SQL statement one trip to aiosqlite's thread.

Stock, one `execute` through SQLAlchemy's async adapter (`sqlalchemy.connectors.asyncio`) hands
aiosqlite's worker thread a call for each DBAPI step: making the cursor, `execute`, `fetchall`
when the statement returns rows, and the cursor's `close` (4 hops for a SELECT, 3 for an INSERT
or a `BEGIN`); each hop is a queue put, a thread wake-up, a future resolved through
`call_soon_threadsafe` and a greenlet switch. Here the cursor runs all of those steps in one
function on aiosqlite's thread and keeps what SQLAlchemy reads afterwards (description, rows,
rowcount, lastrowid), so a statement costs one hop. COMMIT and ROLLBACK were one hop already;
they now skip it when sqlite3 has no transaction open (sqlite3 itself does nothing then), which
drops the pool's reset-on-return ROLLBACK after each committed transaction.

Still aiosqlite: its `Connection`, thread and exceptions, reached through the one thing of its
beyond the public API this relies on, `Connection._execute(fn, *args)` (run `fn(*args)` on the
connection's thread and await the result), which `check_aiosqlite` verifies and a test pins.
Server-side cursors (`stream()`) keep the stock multi-hop cursor. URLs stay `sqlite+aiosqlite`:
`Database` asks for this dialect by its registered name, `sqlite+swaiosqlite`.
"""

from __future__ import annotations

import collections
import inspect
import sqlite3
from types import ModuleType
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["DRIVERNAME", "SQLiteDialect_swaiosqlite", "check_aiosqlite"]

DRIVERNAME = "sqlite+swaiosqlite"

# One statement's outcome as the thread hands it back: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any] | None, int, int | None]


def check_aiosqlite(module: ModuleType = aiosqlite) -> None:
    """Fail loudly if aiosqlite no longer has the internals this dialect runs statements through."""
    connection = getattr(module, "Connection", None)
    execute = getattr(connection, "_execute", None)
    problem = ""
    if execute is None or not inspect.iscoroutinefunction(execute):
        problem = "Connection._execute is gone or is no longer a coroutine function"
    else:
        parameters = list(inspect.signature(execute).parameters.values())
        kinds = [parameter.kind for parameter in parameters[1:]]
        if kinds[:2] != [inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_POSITIONAL]:
            problem = f"Connection._execute{inspect.signature(execute)} is not (fn, *args, ...)"
    if not problem and not isinstance(getattr(connection, "_conn", None), property):
        problem = "Connection._conn (the sqlite3 connection) is gone"
    if problem:
        raise RuntimeError(
            f"aiosqlite {getattr(module, '__version__', '?')}: {problem}; the one-hop SQLite"
            " dialect (singlewindow.runtime.sqlite) needs updating for it"
        )


class _OnThread:
    """What one statement runs on aiosqlite's thread; its repr keeps aiosqlite's DEBUG log short."""

    __slots__ = ("_connection",)

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    def __repr__(self) -> str:
        return "<OneHop>"

    def execute(self, operation: str, parameters: Any) -> _Outcome:
        # `_conn` raises ValueError("no active connection") once closed, as stock calls do.
        cursor = self._connection._conn.cursor()
        try:
            cursor.execute(operation, parameters)
            description = cursor.description
            rows = cursor.fetchall() if description else None
            return description, rows, cursor.rowcount, cursor.lastrowid
        finally:
            cursor.close()

    def executemany(self, operation: str, seq_of_parameters: Any) -> _Outcome:
        cursor = self._connection._conn.cursor()
        try:
            cursor.executemany(operation, seq_of_parameters)
            description = cursor.description
            rows = cursor.fetchall() if description else None
            return description, rows, cursor.rowcount, cursor.lastrowid
        finally:
            cursor.close()


class AsyncAdapt_swaiosqlite_cursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose every `execute` is one call on aiosqlite's thread.

    Nothing is opened when it is made and nothing is left open after a statement, so `close`
    needs no hop either. The stock cursor's `_execute_mutex` is not needed: one call on the
    thread cannot interleave with another statement on the same connection.
    """

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    _adapt_connection: AsyncAdapt_swaiosqlite_connection

    def __init__(self, adapt_connection: AsyncAdapt_swaiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def _outcome(self, outcome: _Outcome) -> None:
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows) if rows else collections.deque()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        on_thread = self._adapt_connection._on_thread
        try:
            if parameters is None:
                parameters = ()
            self._outcome(
                await_(self._connection._execute(on_thread.execute, operation, parameters))
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        on_thread = self._adapt_connection._on_thread
        try:
            self._outcome(
                await_(
                    self._connection._execute(on_thread.executemany, operation, seq_of_parameters)
                )
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _async_soft_close(self) -> None:
        return None  # the sqlite3 cursor was closed on the thread; rows stay buffered here

    def close(self) -> None:
        self._rows.clear()

    def nextset(self) -> None:
        return None  # sqlite3 has one result set per statement

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None  # a no-op in sqlite3 too


class AsyncAdapt_swaiosqlite_connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_on_thread",)

    _cursor_cls = AsyncAdapt_swaiosqlite_cursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._on_thread = _OnThread(connection)

    def _in_transaction(self) -> bool:
        # sqlite3's own commit() and rollback() do nothing outside a transaction (they check
        # sqlite3_get_autocommit first), so asking costs no hop and saves one: chiefly the
        # pool's reset-on-return ROLLBACK after every committed transaction. aiosqlite's
        # in_transaction reads the flag on this thread; no statement of this connection is in
        # flight then (SQLAlchemy awaits each call). Closed, aiosqlite raises ValueError (and
        # stock skips the call too); anything else sqlite3 objects to, the call goes as stock.
        try:
            return bool(self._connection.in_transaction)
        except ValueError:
            return False
        except sqlite3.Error:
            return True

    def rollback(self) -> None:
        if self._in_transaction():
            super().rollback()

    def commit(self) -> None:
        if self._in_transaction():
            super().commit()


class AsyncAdapt_swaiosqlite_dbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_swaiosqlite_connection:
        stock = super().connect(*arg, **kw)
        return AsyncAdapt_swaiosqlite_connection(self, stock._connection)


class SQLiteDialect_swaiosqlite(SQLiteDialect_aiosqlite):
    """The aiosqlite dialect with one hop to aiosqlite's thread per statement."""

    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_swaiosqlite_dbapi:
        check_aiosqlite()
        return AsyncAdapt_swaiosqlite_dbapi(aiosqlite, sqlite3)


dialect = SQLiteDialect_swaiosqlite
