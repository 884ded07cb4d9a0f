"""Outbox rows no stream accepts are parked (kept, marked, and dead-lettered), not retried forever.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
from singlewindow.runtime.messaging import outbox_parking_columns

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in outbox_parking_columns():
        op.add_column("outbox", column)
