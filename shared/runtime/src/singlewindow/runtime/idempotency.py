"""Idempotency keys: a state-changing request retried with the same key gets the first answer.

A client sends the optional `Idempotency-Key` NATS header with a request to an endpoint declared
`changes_state`. The first request with a key runs; its answer is stored under the key, scoped by
endpoint and by caller (the session token, when the request carries one), **in the same database
transaction as the command's last write**, so no crash can leave an effect without its answer or
an answer without its effect. A retry with the same key and the same body gets that answer again
without running the command; the same key with a different body is refused
(`idempotency_key_reused`). Keys are kept for `retention` (24 h by default), then forgotten.

While a keyed request runs, its handler's transactions are held (`db.HELD`): each commits when
the handler begins its next one, and the last commits once the answer is recorded in it. A refusal
that follows a write (a failed login counted, say) is stored with that write and replayed; a
refusal that changed nothing is not stored, so a retry runs again (and is refused again, unless
what refused it has changed). A concurrent duplicate runs too, but its last write conflicts on the
key and rolls back: it answers with the first's answer, never with a second effect.

Nothing secret is stored in the clear: the key itself is not kept (rows are found by a digest of
endpoint, caller and key), the body only as an HMAC under the key, and the answer (a login's
session token) encrypted with a pad derived from the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import structlog
from singlewindow.contracts.endpoints import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY, Endpoint
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.wire import encode_error
from singlewindow.runtime.clock import Clock
from singlewindow.runtime.db import HELD, Database, IntegrityError, as_utc
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.idempotency")

HEADER = IDEMPOTENCY_HEADER
KEY_PATTERN = IDEMPOTENCY_KEY
RETENTION = timedelta(hours=24)
"""How long an answer is kept for retries, unless the service is configured otherwise."""
PURGE_EVERY = timedelta(hours=1)
"""How often expired keys are deleted, in the transaction of a keyed request."""


def idempotency_table(metadata: MetaData) -> Table:
    """The answers of keyed requests, for retries."""
    if "idempotency" in metadata.tables:
        return metadata.tables["idempotency"]
    table = Table(
        "idempotency",
        metadata,
        Column("key_digest", String(64), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("reply", LargeBinary, nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    )
    Index("idempotency_expires_at", table.c.expires_at)
    return table


def create_idempotency_table(connection: Connection) -> None:
    """Create the idempotency table, as it is now, in a service's migration."""
    metadata = MetaData()
    idempotency_table(metadata)
    metadata.create_all(connection)


def idempotency_key(endpoint: Endpoint[Any, Any], headers: Mapping[str, str] | None) -> str | None:
    """The request's key if `endpoint` changes state and one is sent; a bad key is refused."""
    if not endpoint.changes_state or not headers:
        return None
    key = headers.get(HEADER)
    if key is None:
        return None
    if not KEY_PATTERN.fullmatch(key):
        raise DomainError(
            ErrorCode.INVALID,
            f"the {HEADER} header must be 8 to 128 letters, digits or . _ : -",
            (FieldError(path=HEADER, message="8 to 128 letters, digits or . _ : -"),),
        )
    return key


class _Keyed:
    """One keyed request's names for its row: what finds it, checks it and hides its answer."""

    def __init__(self, endpoint: Endpoint[Any, Any], key: str, caller: str | None, body: bytes):
        scope = f"{endpoint.subject}\0{caller or ''}\0{key}".encode()
        self.digest = hashlib.sha256(b"idempotency-key\0" + scope).hexdigest()
        self.fingerprint = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        self._pad_seed = b"idempotency-reply\0" + scope

    def seal(self, reply: bytes) -> bytes:
        """The answer as stored: XORed with a pad only the key's holder can derive."""
        pad = hashlib.shake_256(self._pad_seed).digest(len(reply))
        return bytes(a ^ b for a, b in zip(reply, pad, strict=True))

    open = seal


class _Command:
    """A keyed request's transactions (the `db.Held` it sets): each commits when the next
    begins; the last stays open for the answer to be recorded in it."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._task = asyncio.current_task()
        self._active: AsyncConnection | None = None
        self.pending: AsyncConnection | None = None
        """The last write transaction, ended by its handler but not yet committed."""

    def joins(self, database: Database) -> bool:
        return database is self.database and asyncio.current_task() is self._task

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        if self._active is not None:  # nested: part of the enclosing transaction
            yield self._active
            return
        await self.commit()
        connection = await self.database.engine.connect()
        self._active = connection
        try:
            await connection.begin()
            yield connection
        except BaseException:
            await _end(connection, commit=False)
            raise
        finally:
            self._active = None
        self.pending = connection

    def reading(self) -> AbstractAsyncContextManager[AsyncConnection] | None:
        connection = self._active or self.pending
        return None if connection is None else _as_is(connection)

    async def commit(self) -> None:
        """Commit the pending write transaction, if there is one."""
        connection, self.pending = self.pending, None
        if connection is not None:
            await _end(connection, commit=True)

    async def rollback(self) -> None:
        """Roll the pending write transaction back, if there is one."""
        connection, self.pending = self.pending, None
        if connection is not None:
            await _end(connection, commit=False)


@asynccontextmanager
async def _as_is(connection: AsyncConnection) -> AsyncIterator[AsyncConnection]:
    yield connection


async def _end(connection: AsyncConnection, *, commit: bool) -> None:
    try:
        await (connection.commit() if commit else connection.rollback())
    finally:
        await connection.close()


class Idempotency:
    """A service's store of keyed answers (the `idempotency` table of its database)."""

    def __init__(
        self, table: Table, db: Database, clock: Clock, retention: timedelta = RETENTION
    ) -> None:
        self.table = table
        self.db = db
        self.clock = clock
        self.retention = retention
        columns = table.c
        self._find = select(columns.fingerprint, columns.reply, columns.expires_at).where(
            columns.key_digest == bindparam("digest")
        )
        self._insert = insert(table)
        self._forget = delete(table).where(columns.key_digest == bindparam("digest"))
        self._purge = delete(table).where(columns.expires_at <= bindparam("now"))
        self._purged_at: datetime | None = None

    async def answer(
        self,
        endpoint: Endpoint[Any, Any],
        key: str,
        caller: str | None,
        body: bytes,
        run: Callable[[], Awaitable[bytes]],
    ) -> bytes:
        """The first answer to this key, running `run` (which encodes the result) if there is
        none yet; a refusal from `run` is raised, stored first if it followed a write."""
        keyed = _Keyed(endpoint, key, caller, body)
        stored, expired = await self._stored(keyed)
        if stored is not None:
            log.info("answer replayed", subject=endpoint.subject)
            return stored
        command = _Command(self.db)
        token = HELD.set(command)
        try:
            try:
                reply = await run()
                refusal: DomainError | None = None
            except DomainError as exc:
                if command.pending is None:  # it changed nothing: a retry may run again
                    stored, _ = await self._stored(keyed)
                    if stored is not None:  # a duplicate that ran first holds the answer
                        log.info("answer replayed", subject=endpoint.subject)
                        return stored
                    raise
                reply, refusal = encode_error(exc.body()), exc
            if not await self._record(command, keyed, reply, expired=expired):
                stored, _ = await self._stored(keyed)
                if stored is None:
                    raise DomainError(
                        ErrorCode.CONFLICT, f"a request with this {HEADER} is in progress"
                    )
                log.info("answer replayed", subject=endpoint.subject)
                return stored
            if refusal is not None:
                raise refusal
            return reply
        finally:
            HELD.reset(token)
            await command.rollback()

    async def _stored(self, keyed: _Keyed) -> tuple[bytes | None, bool]:
        """The answer stored for this key, checked against the body; and whether an expired
        row is in the way of recording one."""
        async with self.db.reading() as connection:
            row = (await connection.execute(self._find, {"digest": keyed.digest})).first()
        if row is None:
            return None, False
        if as_utc(row.expires_at) <= self.clock.now():
            return None, True
        if not hmac.compare_digest(row.fingerprint, keyed.fingerprint):
            raise DomainError(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                f"this {HEADER} was sent with a different request; send a new key",
                (FieldError(path=HEADER, message="already used for a different request"),),
            )
        return keyed.open(row.reply), False

    async def _record(
        self, command: _Command, keyed: _Keyed, reply: bytes, *, expired: bool
    ) -> bool:
        """Record the answer in the command's last transaction and commit both; False if
        another request recorded this key first (then nothing of this one commits)."""
        now = self.clock.now()
        purge = self._purged_at is None or now - self._purged_at >= PURGE_EVERY
        if purge:
            self._purged_at = now
        try:
            async with (
                command.transaction()
                if command.pending is None
                else _as_is(command.pending) as connection
            ):
                if expired:
                    await connection.execute(self._forget, {"digest": keyed.digest})
                if purge:
                    await connection.execute(self._purge, {"now": now})
                await connection.execute(
                    self._insert,
                    {
                        "key_digest": keyed.digest,
                        "fingerprint": keyed.fingerprint,
                        "reply": keyed.seal(reply),
                        "expires_at": now + self.retention,
                    },
                )
            await command.commit()
        except IntegrityError:
            await command.rollback()
            return False
        return True
