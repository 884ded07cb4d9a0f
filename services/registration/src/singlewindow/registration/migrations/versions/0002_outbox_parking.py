"""Outbox rows no stream accepts are parked (kept, marked, and dead-lettered), not retried forever.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
from singlewindow.runtime.messaging import outbox_parking_columns

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in outbox_parking_columns():
        op.add_column("outbox", column)
