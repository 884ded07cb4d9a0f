"""Cards: challenges, card bindings, operator levels, card sessions, enterprises from cards.

An enterprise registered with its legal-person card has no address, and its legal
representative's ID type and mobile are unknown: those columns become nullable.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CARD_UNKNOWN = {
    "address": sa.String(200),
    "legal_rep_name": sa.String(50),
    "legal_rep_id_type": sa.String(40),
    "legal_rep_id_number": sa.String(40),
    "legal_rep_mobile": sa.String(20),
}


def upgrade() -> None:
    op.create_table(
        "card_challenges",
        sa.Column("challenge_id", sa.String(80), primary_key=True),
        sa.Column("challenge", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "card_bindings",
        sa.Column("card_number", sa.String(40), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(40),
            sa.ForeignKey("accounts.account_id"),
            nullable=False,
            index=True,
        ),
        sa.Column("card_type", sa.String(16), nullable=False),
        sa.Column("certificate_serial", sa.String(80), nullable=False),
        sa.Column("certificate_fingerprint", sa.String(64), nullable=False),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("accounts", sa.Column("operator_level", sa.String(16)))
    op.add_column("sessions", sa.Column("card_number", sa.String(40)))
    op.add_column("sessions", sa.Column("card_fingerprint", sa.String(64)))
    # SQLite cannot drop NOT NULL in place: batch mode rebuilds the table (on PostgreSQL it is
    # ALTER COLUMN ... DROP NOT NULL).
    with op.batch_alter_table("enterprises") as batch:
        for column, type_ in CARD_UNKNOWN.items():
            batch.alter_column(column, existing_type=type_, nullable=True)
