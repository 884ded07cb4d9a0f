"""The registration service's tables and queries."""

from __future__ import annotations

from datetime import UTC, datetime

from singlewindow.contracts.registration import (
    ApplicationState,
    ApplicationView,
    CardlessApplication,
)
from singlewindow.registration.domain import OPEN_STATES
from singlewindow.runtime.db import as_utc
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

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
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
)
OPEN = applications.c.state.in_([s.value for s in OPEN_STATES])
Index(
    "one_open_application_per_account",
    applications.c.admin_account_key,
    unique=True,
    sqlite_where=OPEN,
    postgresql_where=OPEN,
)
Index(
    "one_open_application_per_uscc",
    applications.c.uscc,
    unique=True,
    sqlite_where=OPEN,
    postgresql_where=OPEN,
)


class Applications:
    """Applications, read and written inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def add(
        self,
        application_id: str,
        kind: str,
        application: CardlessApplication,
        password_hash: str,
    ) -> ApplicationView:
        """Store a new pending application."""
        now = datetime.now(UTC)
        await self.connection.execute(
            insert(applications).values(
                application_id=application_id,
                kind=kind,
                uscc=application.enterprise.uscc,
                enterprise_name=application.enterprise.name,
                admin_account=application.admin.account,
                admin_account_key=application.admin.account.casefold(),
                state=ApplicationState.PENDING.value,
                attempt=1,
                details=_details_json(application),
                password_hash=password_hash,
                submitted_at=now,
            )
        )
        found = await self.get(application_id)
        assert found is not None
        return found

    async def get(self, application_id: str) -> ApplicationView | None:
        """An application by id."""
        row = await self._row(application_id)
        return None if row is None else _view(row)

    async def details(self, application_id: str) -> tuple[ApplicationView, str, str] | None:
        """An application with its full details (JSON, no password) and its password hash."""
        row = await self._row(application_id)
        return None if row is None else (_view(row), row["details"], row["password_hash"])

    async def open_for(self, uscc: str) -> ApplicationView | None:
        """The open application holding `uscc`, if any."""
        return await self._open_where(applications.c.uscc == uscc)

    async def open_for_account(self, account: str) -> ApplicationView | None:
        """The open application asking for account name `account` (in any case), if any."""
        return await self._open_where(applications.c.admin_account_key == account.casefold())

    async def _open_where(self, condition: ColumnElement[bool]) -> ApplicationView | None:
        result = await self.connection.execute(select(applications).where(condition, OPEN))
        row = result.mappings().first()
        return None if row is None else _view(row)

    async def resubmit(
        self, application_id: str, application: CardlessApplication, password_hash: str
    ) -> ApplicationView:
        """Put a corrected application back in the queue."""
        await self.connection.execute(
            update(applications)
            .where(applications.c.application_id == application_id)
            .values(
                enterprise_name=application.enterprise.name,
                admin_account=application.admin.account,
                admin_account_key=application.admin.account.casefold(),
                state=ApplicationState.PENDING.value,
                reason=None,
                attempt=applications.c.attempt + literal(1),
                details=_details_json(application),
                password_hash=password_hash,
                submitted_at=datetime.now(UTC),
                decided_at=None,
            )
        )
        found = await self.get(application_id)
        assert found is not None
        return found

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
            .values(state=state.value, reason=reason, decided_at=datetime.now(UTC))
        )
        if result.rowcount != 1:
            return None
        return await self.get(application_id)

    async def _row(self, application_id: str) -> RowMapping | None:
        result = await self.connection.execute(
            select(applications).where(applications.c.application_id == application_id)
        )
        return result.mappings().first()


def _details_json(application: CardlessApplication) -> str:
    return application.model_dump_json(exclude={"admin": {"password"}})


def _view(row: RowMapping) -> ApplicationView:
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
