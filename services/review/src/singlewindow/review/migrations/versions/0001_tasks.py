"""Review tasks, outbox and inbox.

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
        "tasks",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("enterprise_name", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("submission", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("reviewer", sa.String(64)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("application_id", "attempt", name="one_task_per_attempt"),
    )
    create_messaging_tables(op.get_bind())
