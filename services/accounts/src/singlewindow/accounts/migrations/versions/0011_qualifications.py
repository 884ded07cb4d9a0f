"""My qualifications (the inspection password as ciphertext with its key id) and the
administrator's application-permission revocations and restores.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qualifications",
        sa.Column("uscc", sa.String(18), sa.ForeignKey("enterprises.uscc"), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("registration_number", sa.String(10)),
        sa.Column("declaration_account", sa.String(64)),
        sa.Column("password_ciphertext", sa.Text),
        sa.Column("password_key_id", sa.String(40)),
        sa.Column("authority", sa.String(10)),
        sa.Column("updated_by", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "permission_overrides",
        sa.Column("uscc", sa.String(18), sa.ForeignKey("enterprises.uscc"), primary_key=True),
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("application", sa.String(40), primary_key=True),
        sa.Column("action", sa.String(16), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("changed_by", sa.String(32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("permission_overrides")
    op.drop_table("qualifications")
