"""Applications, outbox and inbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from singlewindow.runtime.messaging import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("application_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False, index=True),
        sa.Column("enterprise_name", sa.String(100), nullable=False),
        sa.Column("admin_account", sa.String(32), nullable=False),
        # Indexed plainly too: a query with bound state parameters cannot use the partial index.
        sa.Column("admin_account_key", sa.String(32), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )
    open_states = sa.text("state IN ('pending', 'returned')")
    op.create_index(
        "one_open_application_per_uscc",
        "applications",
        ["uscc"],
        unique=True,
        sqlite_where=open_states,
        postgresql_where=open_states,
    )
    op.create_index(
        "one_open_application_per_account",
        "applications",
        ["admin_account_key"],
        unique=True,
        sqlite_where=open_states,
        postgresql_where=open_states,
    )
    create_messaging_tables(op.get_bind())
