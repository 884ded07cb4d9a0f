"""The registration service's tables and queries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from singlewindow.contracts.registration import (
    ApplicationState,
    ApplicationView,
    CardlessApplication,
)
from singlewindow.registration.domain import OPEN_STATES
from singlewindow.runtime.clock import Clock
from singlewindow.runtime.db import as_utc, partial_index
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

metadata = MetaData()

applications = Table(
    "applications",
    metadata,
    Column("application_id", String(64), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("uscc", String(18), nullable=False, index=True),
    Column("enterprise_name", String(100), nullable=False),
    Column("admin_account", String(32), nullable=False),
    Column("admin_account_key", String(32), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text),
    Column("attempt", Integer, nullable=False),
    Column("details", Text, nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("claim_digest", String(64)),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
)
OPEN = applications.c.state.in_([s.value for s in OPEN_STATES])
VIEW = tuple(
    c
    for c in applications.c
    if c.name not in {"admin_account_key", "details", "password_hash", "claim_digest"}
)
"""The columns an applicant's view of an application shows."""
partial_index(
    "one_open_application_per_account", applications.c.admin_account_key, unique=True, where=OPEN
)
partial_index("one_open_application_per_uscc", applications.c.uscc, unique=True, where=OPEN)


class Applications:
    """Applications, read and written inside the caller's transaction, at `clock`'s time."""

    def __init__(self, connection: AsyncConnection, clock: Clock) -> None:
        self.connection = connection
        self.clock = clock

    async def add(
        self,
        application_id: str,
        kind: str,
        application: CardlessApplication,
        password_hash: str,
        claim_digest: str,
    ) -> ApplicationView:
        """Store a new pending application and the digest of its claim secret."""
        values = _new_values(
            self.clock, application_id, kind, application, password_hash, claim_digest
        )
        await self.connection.execute(_INSERT, values)
        return _view(values)

    async def get(self, application_id: str) -> ApplicationView | None:
        """An application by id."""
        result = await self.connection.execute(
            select(*VIEW).where(applications.c.application_id == application_id)
        )
        row = result.mappings().first()
        return None if row is None else _view(row)

    async def claimed(self, application_id: str) -> tuple[ApplicationView, str | None] | None:
        """An application by id, with the digest of its claim secret (None before there were
        claim secrets)."""
        result = await self.connection.execute(
            select(*VIEW, applications.c.claim_digest).where(
                applications.c.application_id == application_id
            )
        )
        row = result.mappings().first()
        return None if row is None else (_view(row), row["claim_digest"])

    async def details(self, application_id: str) -> tuple[ApplicationView, str, str] | None:
        """An application with its full details (JSON, no password) and its password hash."""
        result = await self.connection.execute(
            select(applications).where(applications.c.application_id == application_id)
        )
        row = result.mappings().first()
        return None if row is None else (_view(row), row["details"], row["password_hash"])

    async def holders_of(
        self, uscc: str, account: str, *, including: str | None = None
    ) -> tuple[ApplicationView, ...]:
        """In one query: the open applications holding `uscc` or asking for the account name
        `account` (in any case), and the application `including`, whatever its state."""
        holding = [
            and_(applications.c.uscc == uscc, OPEN),
            and_(applications.c.admin_account_key == account.casefold(), OPEN),
        ]
        if including is not None:
            holding.append(applications.c.application_id == including)
        result = await self.connection.execute(select(*VIEW).where(or_(*holding)))
        return tuple(_view(row) for row in result.mappings())

    async def resubmit(
        self, application_id: str, application: CardlessApplication, password_hash: str
    ) -> ApplicationView | None:
        """Put a corrected application back in the queue; None unless it is returned and keeps
        its USCC."""
        result = await self.connection.execute(
            update(applications)
            .where(
                applications.c.application_id == application_id,
                applications.c.state == ApplicationState.RETURNED.value,
                applications.c.uscc == application.enterprise.uscc,
            )
            .values(
                enterprise_name=application.enterprise.name,
                admin_account=application.admin.account,
                admin_account_key=application.admin.account.casefold(),
                state=ApplicationState.PENDING.value,
                reason=None,
                attempt=applications.c.attempt + literal(1),
                details=_details_json(application),
                password_hash=password_hash,
                submitted_at=self.clock.now(),
                decided_at=None,
            )
            .returning(*VIEW)
        )
        row = result.mappings().first()
        return None if row is None else _view(row)

    async def decide(
        self, application_id: str, attempt: int, state: ApplicationState, reason: str | None
    ) -> ApplicationView | None:
        """Record a decision on a pending application's `attempt`; None if it no longer applies."""
        result = await self.connection.execute(
            update(applications)
            .where(
                applications.c.application_id == application_id,
                applications.c.attempt == attempt,
                applications.c.state == ApplicationState.PENDING.value,
            )
            .values(state=state.value, reason=reason, decided_at=self.clock.now())
            .returning(*VIEW)
        )
        row = result.mappings().first()
        return None if row is None else _view(row)

    async def withdraw(self, application_id: str, reason: str) -> ApplicationView | None:
        """Mark an approved application withdrawn, saying why; None unless it was approved."""
        result = await self.connection.execute(
            update(applications)
            .where(
                applications.c.application_id == application_id,
                applications.c.state == ApplicationState.APPROVED.value,
            )
            .values(state=ApplicationState.WITHDRAWN.value, reason=reason)
            .returning(*VIEW)
        )
        row = result.mappings().first()
        return None if row is None else _view(row)


# The hot paths' statements, built once (a statement is cheaper to run than to build), and the
# synchronous functions that run them in one trip (`Database.run` / `Database.read`).
_INSERT = insert(applications)
_CLAIMED = select(*VIEW, applications.c.claim_digest).where(
    applications.c.application_id == bindparam("application_id")
)
_HOLDERS = select(*VIEW).where(
    or_(
        and_(applications.c.uscc == bindparam("uscc"), OPEN),
        and_(applications.c.admin_account_key == bindparam("account_key"), OPEN),
    )
)


def claimed(
    connection: Connection, application_id: str
) -> tuple[ApplicationView, str | None] | None:
    """`Applications.claimed` in a synchronous transaction."""
    row = connection.execute(_CLAIMED, {"application_id": application_id}).mappings().first()
    return None if row is None else (_view(row), row["claim_digest"])


def holders_of(connection: Connection, uscc: str, account: str) -> tuple[ApplicationView, ...]:
    """`Applications.holders_of` (without `including`) in a synchronous transaction."""
    rows = connection.execute(_HOLDERS, {"uscc": uscc, "account_key": account.casefold()})
    return tuple(_view(row) for row in rows.mappings())


def add(
    connection: Connection,
    clock: Clock,
    application_id: str,
    kind: str,
    application: CardlessApplication,
    password_hash: str,
    claim_digest: str,
) -> ApplicationView:
    """`Applications.add` in a synchronous transaction."""
    values = _new_values(clock, application_id, kind, application, password_hash, claim_digest)
    connection.execute(_INSERT, values)
    return _view(values)


def _new_values(
    clock: Clock,
    application_id: str,
    kind: str,
    application: CardlessApplication,
    password_hash: str,
    claim_digest: str,
) -> dict[str, Any]:
    return {
        "application_id": application_id,
        "kind": kind,
        "uscc": application.enterprise.uscc,
        "enterprise_name": application.enterprise.name,
        "admin_account": application.admin.account,
        "admin_account_key": application.admin.account.casefold(),
        "state": ApplicationState.PENDING.value,
        "reason": None,
        "attempt": 1,
        "details": _details_json(application),
        "password_hash": password_hash,
        "claim_digest": claim_digest,
        "submitted_at": clock.now(),
        "decided_at": None,
    }


def _details_json(application: CardlessApplication) -> str:
    return application.model_dump_json(exclude={"admin": {"password"}})


def _view(row: Mapping[Any, Any]) -> ApplicationView:
    return ApplicationView(
        application_id=row["application_id"],
        kind=row["kind"],
        uscc=row["uscc"],
        enterprise_name=row["enterprise_name"],
        admin_account=row["admin_account"],
        state=ApplicationState(row["state"]),
        reason=row["reason"],
        attempt=row["attempt"],
        submitted_at=as_utc(row["submitted_at"]),
        decided_at=None if row["decided_at"] is None else as_utc(row["decided_at"]),
    )
