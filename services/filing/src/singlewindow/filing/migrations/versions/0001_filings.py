"""Filing applications, filed records, customs-code sequences, drafts; outbox, inbox, idempotency.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from singlewindow.runtime.idempotency import create_idempotency_table
from singlewindow.runtime.messaging import create_messaging_tables, outbox_parking_columns

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "filings",
        sa.Column("filing_id", sa.String(64), primary_key=True),
        sa.Column("uscc", sa.String(18), nullable=False, index=True),
        sa.Column("enterprise_name", sa.String(100), nullable=False),
        sa.Column("application_type", sa.String(16), nullable=False),
        sa.Column("unit_type", sa.String(32)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("applicant", sa.String(32), nullable=False),
        sa.Column("form", sa.Text, nullable=False),
        sa.Column("customs_code", sa.String(10)),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )
    open_states = sa.text("state IN ('pending', 'returned')")
    op.create_index(
        "one_open_filing_per_uscc",
        "filings",
        ["uscc"],
        unique=True,
        sqlite_where=open_states,
        postgresql_where=open_states,
    )
    op.create_table(
        "records",
        sa.Column("uscc", sa.String(18), primary_key=True),
        sa.Column("enterprise_name", sa.String(100), nullable=False),
        sa.Column("customs_code", sa.String(10), unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("unit_type", sa.String(32)),
        sa.Column("form", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "code_sequences",
        sa.Column("prefix", sa.String(6), primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "drafts",
        sa.Column("uscc", sa.String(18), primary_key=True),
        sa.Column("form", sa.Text, nullable=False),
        sa.Column("saved_by", sa.String(32), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_messaging_tables(op.get_bind())
    for column in outbox_parking_columns():
        op.add_column("outbox", column)
    create_idempotency_table(op.get_bind())
