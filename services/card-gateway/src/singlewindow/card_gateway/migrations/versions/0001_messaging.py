"""Outbox and inbox: card-gateway keeps no state of its own, only the events it announces.

Revision ID: 0001
Revises:
"""

from alembic import op
from singlewindow.runtime.messaging import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables(op.get_bind())
