"""Idempotency keys: the answers of keyed requests, kept for their retries.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
from singlewindow.runtime.idempotency import create_idempotency_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_table(op.get_bind())
