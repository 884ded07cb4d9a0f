"""Cardless operators and account self-service: a landline, one-time passwords that expire,
deleted accounts kept for their history.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable): SQLite keeps the table, and the foreign keys onto it.
    op.add_column("accounts", sa.Column("landline", sa.String(30)))
    op.add_column("accounts", sa.Column("password_expires_at", sa.DateTime(timezone=True)))
    op.add_column("accounts", sa.Column("initial_password", sa.String(16)))
    op.add_column("accounts", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    op.create_index("accounts_by_enterprise", "accounts", ["uscc", "role"])


def downgrade() -> None:
    op.drop_index("accounts_by_enterprise", "accounts")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("initial_password")
        batch.drop_column("password_expires_at")
        batch.drop_column("landline")
