"""Enterprises, accounts, sessions, login throttle, business scope, outbox and inbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from singlewindow.runtime.messaging import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enterprises",
        sa.Column("uscc", sa.String(18), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_en", sa.String(200)),
        sa.Column("division", sa.String(6), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("legal_rep_name", sa.String(50), nullable=False),
        sa.Column("legal_rep_id_type", sa.String(40), nullable=False),
        sa.Column("legal_rep_id_number", sa.String(40), nullable=False),
        sa.Column("legal_rep_mobile", sa.String(20), nullable=False),
        sa.Column("registered_via", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("account_key", sa.String(32), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("uscc", sa.String(18), sa.ForeignKey("enterprises.uscc")),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("id_type", sa.String(40), nullable=False),
        sa.Column("id_number", sa.String(40), nullable=False),
        sa.Column("mobile", sa.String(20), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("password_must_change", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    one_active_admin = sa.text("role = 'admin' AND status = 'active'")
    op.create_index(
        "one_active_admin_per_enterprise",
        "accounts",
        ["uscc"],
        unique=True,
        sqlite_where=one_active_admin,
        postgresql_where=one_active_admin,
    )
    op.create_table(
        "sessions",
        sa.Column("token_digest", sa.String(64), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(40),
            sa.ForeignKey("accounts.account_id"),
            nullable=False,
            index=True,
        ),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "login_throttle",
        sa.Column("account_key", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "business_scopes",
        sa.Column("uscc", sa.String(18), sa.ForeignKey("enterprises.uscc"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("codes", sa.Text, nullable=False),
        sa.Column("declared_by", sa.String(32), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_messaging_tables(op.get_bind())
