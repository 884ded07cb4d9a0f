"""Card sessions remember their certificate's serial number, to end when it is revoked.

Card sessions opened before this revision have none: they end at once (log in again).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("card_serial", sa.String(80)))
