"""The filing service's tables and queries: applications, filed records, code sequences, drafts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from singlewindow.contracts.filing import (
    ApplicationType,
    DraftView,
    FilingState,
    FilingView,
    RecordStatus,
)
from singlewindow.runtime.clock import Clock
from singlewindow.runtime.db import as_utc, partial_index, upsert
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

metadata = MetaData()

OPEN_STATES = (FilingState.PENDING, FilingState.RETURNED)
"""An application in these states is the enterprise's one open application."""

filings = Table(
    "filings",
    metadata,
    Column("filing_id", String(64), primary_key=True),
    Column("uscc", String(18), nullable=False, index=True),
    Column("enterprise_name", String(100), nullable=False),
    Column("application_type", String(16), nullable=False),
    Column("unit_type", String(32)),
    Column("state", String(16), nullable=False),
    Column("reason", Text),
    Column("attempt", Integer, nullable=False),
    Column("applicant", String(32), nullable=False),
    Column("form", Text, nullable=False),
    Column("customs_code", String(10)),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
)
OPEN = filings.c.state.in_([s.value for s in OPEN_STATES])
partial_index("one_open_filing_per_uscc", filings.c.uscc, unique=True, where=OPEN)

records = Table(
    "records",
    metadata,
    Column("uscc", String(18), primary_key=True),
    Column("enterprise_name", String(100), nullable=False),
    Column("customs_code", String(10), unique=True),
    Column("status", String(16), nullable=False),
    Column("unit_type", String(32)),
    Column("form", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=False),
    Column("valid_until", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

code_sequences = Table(
    "code_sequences",
    metadata,
    Column("prefix", String(6), primary_key=True),
    Column("last", Integer, nullable=False),
)
"""The last sequence number given in each 6-character customs-code prefix."""

drafts = Table(
    "drafts",
    metadata,
    Column("uscc", String(18), primary_key=True),
    Column("form", Text, nullable=False),
    Column("saved_by", String(32), nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
)


class Filings:
    """Filing applications, records and drafts, inside the caller's transaction, at `clock`'s
    time."""

    def __init__(self, connection: AsyncConnection, clock: Clock) -> None:
        self.connection = connection
        self.clock = clock

    async def add(
        self,
        filing_id: str,
        *,
        uscc: str,
        enterprise_name: str,
        applicant: str,
        form: Mapping[str, Any],
    ) -> FilingView:
        """Store a new pending application."""
        values: dict[str, Any] = {
            "filing_id": filing_id,
            "uscc": uscc,
            "enterprise_name": enterprise_name,
            "application_type": form["application_type"],
            "unit_type": form.get("unit_type"),
            "state": FilingState.PENDING.value,
            "reason": None,
            "attempt": 1,
            "applicant": applicant,
            "form": json.dumps(form, ensure_ascii=False),
            "customs_code": None,
            "submitted_at": self.clock.now(),
            "decided_at": None,
        }
        await self.connection.execute(insert(filings).values(values))
        return _view(values)

    async def resubmit(
        self, filing_id: str, *, applicant: str, enterprise_name: str, form: Mapping[str, Any]
    ) -> FilingView | None:
        """Put a returned application back in the queue, corrected; None unless it is returned."""
        result = await self.connection.execute(
            update(filings)
            .where(filings.c.filing_id == filing_id, filings.c.state == FilingState.RETURNED)
            .values(
                application_type=form["application_type"],
                unit_type=form.get("unit_type"),
                enterprise_name=enterprise_name,
                state=FilingState.PENDING.value,
                reason=None,
                attempt=filings.c.attempt + literal(1),
                applicant=applicant,
                form=json.dumps(form, ensure_ascii=False),
                submitted_at=self.clock.now(),
                decided_at=None,
            )
            .returning(*filings.c)
        )
        row = result.mappings().first()
        return None if row is None else _view(row)

    async def open_of(self, uscc: str) -> FilingView | None:
        """The enterprise's open application, if any."""
        result = await self.connection.execute(select(filings).where(filings.c.uscc == uscc, OPEN))
        row = result.mappings().first()
        return None if row is None else _view(row)

    async def history(self, uscc: str) -> tuple[FilingView, ...]:
        """The enterprise's applications, newest first."""
        result = await self.connection.execute(
            select(filings)
            .where(filings.c.uscc == uscc)
            .order_by(filings.c.submitted_at.desc(), filings.c.filing_id)
        )
        return tuple(_view(row) for row in result.mappings())

    async def form_of(self, filing_id: str) -> dict[str, Any] | None:
        """An application's submitted form."""
        result = await self.connection.execute(
            select(filings.c.form).where(filings.c.filing_id == filing_id)
        )
        form = result.scalar_one_or_none()
        return None if form is None else dict(json.loads(form))

    async def decide(
        self, filing_id: str, attempt: int, state: FilingState, reason: str | None
    ) -> FilingView | None:
        """Record a decision on a pending application's `attempt`; None if it no longer applies."""
        result = await self.connection.execute(
            update(filings)
            .where(
                filings.c.filing_id == filing_id,
                filings.c.attempt == attempt,
                filings.c.state == FilingState.PENDING.value,
            )
            .values(state=state.value, reason=reason, decided_at=self.clock.now())
            .returning(*filings.c)
        )
        row = result.mappings().first()
        return None if row is None else _view(row)

    async def set_code(self, filing_id: str, code: str) -> None:
        """Note on an approved first filing the customs code it assigned."""
        await self.connection.execute(
            update(filings).where(filings.c.filing_id == filing_id).values(customs_code=code)
        )

    async def next_sequence(self, prefix: str) -> int:
        """The next sequence number in `prefix`, taken in one statement: concurrent approvals in
        one prefix queue on its row and each get their own number."""
        statement = (
            upsert(self.connection.dialect.name, code_sequences)
            .values(prefix=prefix, last=1)
            .on_conflict_do_update(
                index_elements=[code_sequences.c.prefix],
                set_={"last": code_sequences.c.last + literal(1)},
            )
            .returning(code_sequences.c.last)
        )
        return int((await self.connection.execute(statement)).scalar_one())

    async def reserve(self, prefix: str, sequence: int) -> None:
        """Never give `sequence` of `prefix` again (an imported record holds it)."""
        statement = (
            upsert(self.connection.dialect.name, code_sequences)
            .values(prefix=prefix, last=sequence)
            .on_conflict_do_update(
                index_elements=[code_sequences.c.prefix],
                set_={
                    "last": case(
                        (code_sequences.c.last < literal(sequence), literal(sequence)),
                        else_=code_sequences.c.last,
                    )
                },
            )
        )
        await self.connection.execute(statement)

    async def record(self, uscc: str) -> dict[str, Any] | None:
        """The enterprise's filed record, if it has one."""
        result = await self.connection.execute(select(records).where(records.c.uscc == uscc))
        row = result.mappings().first()
        if row is None:
            return None
        found = dict(row)
        found["form"] = json.loads(found["form"])
        for column in ("filed_at", "valid_until", "updated_at"):
            if found[column] is not None:
                found[column] = as_utc(found[column])
        return found

    async def record_by_code(self, customs_code: str) -> dict[str, Any] | None:
        """The record holding `customs_code`, if any."""
        result = await self.connection.execute(
            select(records.c.uscc).where(records.c.customs_code == customs_code)
        )
        uscc = result.scalar_one_or_none()
        return None if uscc is None else await self.record(uscc)

    async def put_record(
        self,
        *,
        uscc: str,
        enterprise_name: str,
        customs_code: str,
        unit_type: str | None,
        form: Mapping[str, Any],
        source: str,
        valid_until: datetime | None,
    ) -> None:
        """Create (or, after a cancellation or expiry, replace) the enterprise's filed record."""
        now = self.clock.now()
        values: dict[str, Any] = {
            "enterprise_name": enterprise_name,
            "customs_code": customs_code,
            "status": RecordStatus.FILED.value,
            "unit_type": unit_type,
            "form": json.dumps(form, ensure_ascii=False),
            "source": source,
            "filed_at": now,
            "valid_until": valid_until,
            "updated_at": now,
        }
        changed = await self.connection.execute(
            update(records).where(records.c.uscc == uscc).values(values)
        )
        if changed.rowcount == 0:
            await self.connection.execute(insert(records).values(uscc=uscc, **values))

    async def amend_record(
        self, uscc: str, *, enterprise_name: str, unit_type: str | None, form: Mapping[str, Any]
    ) -> bool:
        """Amend a filed record with an approved change; False unless it is filed."""
        result = await self.connection.execute(
            update(records)
            .where(records.c.uscc == uscc, records.c.status == RecordStatus.FILED.value)
            .values(
                enterprise_name=enterprise_name,
                unit_type=unit_type,
                form=json.dumps(form, ensure_ascii=False),
                updated_at=self.clock.now(),
            )
        )
        return bool(result.rowcount)

    async def end_record(self, uscc: str, status: RecordStatus) -> bool:
        """Mark a filed record cancelled or expired; False unless it was filed."""
        result = await self.connection.execute(
            update(records)
            .where(records.c.uscc == uscc, records.c.status == RecordStatus.FILED.value)
            .values(status=status.value, updated_at=self.clock.now())
        )
        return bool(result.rowcount)

    async def lapsed(self, now: datetime) -> tuple[str, ...]:
        """The USCCs of filed records past their validity."""
        result = await self.connection.execute(
            select(records.c.uscc).where(
                records.c.status == RecordStatus.FILED.value,
                records.c.valid_until.is_not(None),
                records.c.valid_until <= now,
            )
        )
        return tuple(result.scalars())

    async def save_draft(self, uscc: str, account: str, form: Mapping[str, Any]) -> DraftView:
        """Keep the enterprise's draft (one per enterprise; the newest save wins)."""
        values: dict[str, Any] = {
            "form": json.dumps(form, ensure_ascii=False),
            "saved_by": account,
            "saved_at": self.clock.now(),
        }
        changed = await self.connection.execute(
            update(drafts).where(drafts.c.uscc == uscc).values(values)
        )
        if changed.rowcount == 0:
            await self.connection.execute(insert(drafts).values(uscc=uscc, **values))
        return DraftView(uscc=uscc, form=dict(form), saved_by=account, saved_at=values["saved_at"])

    async def draft(self, uscc: str) -> DraftView | None:
        """The enterprise's draft, if it saved one."""
        result = await self.connection.execute(select(drafts).where(drafts.c.uscc == uscc))
        row = result.mappings().first()
        if row is None:
            return None
        return DraftView(
            uscc=uscc,
            form=json.loads(row["form"]),
            saved_by=row["saved_by"],
            saved_at=as_utc(row["saved_at"]),
        )

    async def drop_draft(self, uscc: str) -> None:
        """Forget the enterprise's draft (its filing was submitted)."""
        await self.connection.execute(drafts.delete().where(drafts.c.uscc == uscc))


def _view(row: Mapping[Any, Any]) -> FilingView:
    decided_at = row["decided_at"]
    return FilingView(
        filing_id=row["filing_id"],
        uscc=row["uscc"],
        enterprise_name=row["enterprise_name"],
        application_type=ApplicationType(row["application_type"]),
        unit_type=row["unit_type"],
        state=FilingState(row["state"]),
        reason=row["reason"],
        attempt=row["attempt"],
        applicant=row["applicant"],
        submitted_at=as_utc(row["submitted_at"]),
        decided_at=None if decided_at is None else as_utc(decided_at),
        customs_code=row["customs_code"],
    )
