"""The customs code an enterprise's legal-person card carries, kept when the card registers it,
for filing to compare with the enterprise's imported record (issue 11).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("enterprises", sa.Column("card_customs_code", sa.String(10)))


def downgrade() -> None:
    op.drop_column("enterprises", "card_customs_code")
