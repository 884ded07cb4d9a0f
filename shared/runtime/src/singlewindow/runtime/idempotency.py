"""Idempotency keys: a state-changing request retried with the same key gets the first answer.

A client sends the optional `Idempotency-Key` NATS header with a request to an endpoint declared
`changes_state`. The first request with a key runs; its answer is stored under the key, scoped by
endpoint and by caller (the session token, when the request carries one), **in the same database
transaction as the command's last write**, so no crash can leave an effect without its answer or
an answer without its effect. A retry with the same key and the same body gets that answer again
without running the command; the same key with a different body is refused
(`idempotency_key_reused`). Keys are kept for `retention` (24 h by default), then forgotten.

A request claims its key before it runs (a row without an answer, held for `LEASE`): a duplicate
that comes meanwhile, on any replica, is refused `in_progress` and runs nothing. While it runs, its
handler's transactions are held (`db.HELD`): each commits when the handler begins its next one
or slow work (a password hash, a request to another service: `db.settle_held`), and the last
commits once the answer is written in it. A refusal that follows a write (a failed
login counted, say) is kept with that write and answered again; a refusal that changed nothing
gives the key up, so a retry runs again (and is refused again, unless what refused it changed).
A request that dies leaves its claim, which a retry takes over once the lease has run out.

Nothing secret is stored in the clear: the key itself is not kept (rows are found by a digest of
endpoint, caller and key), the body only as an HMAC under the key, and the answer (a login's
session token) encrypted with a pad derived from the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
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
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.idempotency")

HEADER = IDEMPOTENCY_HEADER
KEY_PATTERN = IDEMPOTENCY_KEY
RETENTION = timedelta(hours=24)
"""How long an answer is kept for retries, unless the service is configured otherwise."""
LEASE = timedelta(seconds=60)
"""How long a request holds its key while it runs: a duplicate meanwhile is told it is in
progress; a request that died gives its key up to a retry after this long."""
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
        Column("claim", String(32), nullable=False),
        Column("reply", LargeBinary, nullable=True),
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
        self.claim = secrets.token_hex(16)
        """This request's hold on the key, until its answer is kept."""
        self.answered = False

    def seal(self, reply: bytes) -> bytes:
        """The answer as stored: XORed with a pad only the key's holder can derive."""
        pad = hashlib.shake_256(self._pad_seed).digest(len(reply))
        return bytes(a ^ b for a, b in zip(reply, pad, strict=True))

    unseal = seal


class _Command:
    """A keyed request's transactions (the `db.Held` it sets): each commits when the next
    begins, or before slow work; the last stays open for the answer to be recorded in it."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._task = asyncio.current_task()
        self._active: AsyncConnection | None = None
        self.pending: AsyncConnection | None = None
        """The last write transaction, ended by its handler but not yet committed."""
        self.wrote = False
        """Whether any write transaction of the command ended well (committed or pending)."""

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
        self.pending, self.wrote = connection, True

    def reading(self) -> AbstractAsyncContextManager[AsyncConnection] | None:
        connection = self._active or self.pending
        return None if connection is None else _as_is(connection)

    async def settle(self) -> None:
        if asyncio.current_task() is self._task:
            await self.commit()

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
        self._find = select(
            columns.fingerprint, columns.reply, columns.expires_at, columns.claim
        ).where(columns.key_digest == bindparam("digest"))
        self._claim = insert(table)
        self._take_over = (
            update(table)
            .where(
                columns.key_digest == bindparam("digest"), columns.expires_at <= bindparam("now")
            )
            .values(
                fingerprint=bindparam("new_fingerprint"),
                claim=bindparam("new_claim"),
                reply=None,
                expires_at=bindparam("lease_until"),
            )
        )
        self._answer = (
            update(table)
            .where(columns.key_digest == bindparam("digest"), columns.claim == bindparam("mine"))
            .values(reply=bindparam("sealed"), expires_at=bindparam("keep_until"))
        )
        self._release = delete(table).where(
            columns.key_digest == bindparam("digest"), columns.claim == bindparam("mine")
        )
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
        none yet; a refusal from `run` is raised, kept first if it followed a write."""
        keyed = _Keyed(endpoint, key, caller, body)
        stored = await self._claimed_or_answered(keyed)
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
                if not command.wrote:  # it changed nothing: a retry may run again
                    raise
                reply, refusal = encode_error(exc.body()), exc
            if not await self._record(command, keyed, reply):
                raise DomainError(
                    ErrorCode.CONFLICT,
                    f"the request took longer than its {HEADER} is held ({LEASE.seconds} s)"
                    " and was not applied; send it again",
                )
            if refusal is not None:
                raise refusal
            return reply
        except BaseException:
            await command.rollback()
            if not keyed.answered:
                await self._released(keyed)
            raise
        finally:
            HELD.reset(token)

    async def _claimed_or_answered(self, keyed: _Keyed) -> bytes | None:
        """Claim the key for this request (None), or the answer already kept for it; a request
        holding it, or another body under it, is refused."""
        now = self.clock.now()
        async with self.db.reading() as connection:
            row = (await connection.execute(self._find, {"digest": keyed.digest})).first()
        if row is not None and as_utc(row.expires_at) > now:
            return self._kept(keyed, row)
        purge = self._purged_at is None or now - self._purged_at >= PURGE_EVERY
        if purge:
            self._purged_at = now
        try:
            async with self.db.engine.begin() as connection:
                if row is None:
                    await connection.execute(
                        self._claim,
                        {
                            "key_digest": keyed.digest,
                            "fingerprint": keyed.fingerprint,
                            "claim": keyed.claim,
                            "reply": None,
                            "expires_at": now + LEASE,
                        },
                    )
                else:  # expired: kept too long, or held by a request that died
                    taken = await connection.execute(
                        self._take_over,
                        {
                            "digest": keyed.digest,
                            "now": now,
                            "new_fingerprint": keyed.fingerprint,
                            "new_claim": keyed.claim,
                            "lease_until": now + LEASE,
                        },
                    )
                    if taken.rowcount != 1:
                        raise _Lost
                if purge:
                    await connection.execute(self._purge, {"now": now})
        except (IntegrityError, _Lost):
            async with self.db.reading() as connection:
                row = (await connection.execute(self._find, {"digest": keyed.digest})).first()
            if row is None:  # claimed, then given up, meanwhile
                raise DomainError(
                    ErrorCode.IN_PROGRESS,
                    f"a request with this {HEADER} was just running; send it again",
                ) from None
            return self._kept(keyed, row)
        return None

    def _kept(self, keyed: _Keyed, row: Any) -> bytes:
        """The kept answer of `row`, if it is one for this very request."""
        if not hmac.compare_digest(row.fingerprint, keyed.fingerprint):
            raise DomainError(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                f"this {HEADER} was sent with a different request; send a new key",
                (FieldError(path=HEADER, message="already used for a different request"),),
            )
        if row.reply is None:
            raise DomainError(
                ErrorCode.IN_PROGRESS,
                f"a request with this {HEADER} is in progress; send it again in a moment",
            )
        keyed.answered = True
        return keyed.unseal(row.reply)

    async def _record(self, command: _Command, keyed: _Keyed, reply: bytes) -> bool:
        """Keep the answer in the command's last transaction and commit both; False if the
        claim was lost meanwhile (then nothing of this request commits)."""
        values = {
            "digest": keyed.digest,
            "mine": keyed.claim,
            "sealed": keyed.seal(reply),
            "keep_until": self.clock.now() + self.retention,
        }
        async with (
            command.transaction()
            if command.pending is None
            else _as_is(command.pending) as connection
        ):
            kept = await connection.execute(self._answer, values)
        if kept.rowcount != 1:
            return False
        await command.commit()
        keyed.answered = True
        return True

    async def _released(self, keyed: _Keyed) -> None:
        """Give the key up: the request changed nothing, so a retry may run it again."""
        async with self.db.engine.begin() as connection:  # not the command's: it is over
            await connection.execute(self._release, {"digest": keyed.digest, "mine": keyed.claim})


class _Lost(Exception):
    """Another request took the key over first."""
