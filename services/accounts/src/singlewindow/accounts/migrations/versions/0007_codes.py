"""One-time codes (mobile change, individual activation): a digest each, never the code.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "one_time_codes",
        sa.Column("code_id", sa.String(40), primary_key=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column(
            "account_id", sa.String(40), sa.ForeignKey("accounts.account_id"), nullable=False
        ),
        sa.Column("target", sa.String(20), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.Column("voided_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "one_time_codes_by_account", "one_time_codes", ["account_id", "purpose", "created_at"]
    )
    op.create_index("one_time_codes_by_target", "one_time_codes", ["target", "created_at"])


def downgrade() -> None:
    op.drop_table("one_time_codes")
