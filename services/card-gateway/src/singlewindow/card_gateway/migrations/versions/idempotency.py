"""Idempotency keys: the answers of keyed requests, kept for their retries.

Revision ID: idempotency
Revises: 0001
"""

from alembic import op
from singlewindow.runtime.idempotency import create_idempotency_table

revision = "idempotency"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_table(op.get_bind())
