"""My IC card: a binding keeps its certificate's validity, and an account has one card at most.

Bindings made before this revision have no validity kept (shown as unknown).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("card_bindings", sa.Column("not_before", sa.DateTime(timezone=True)))
    op.add_column("card_bindings", sa.Column("not_after", sa.DateTime(timezone=True)))
    op.create_index("one_card_per_account", "card_bindings", ["account_id"], unique=True)
