"""Claim secrets: the digest of the secret an application's submission gave its applicant.

Applications submitted before this revision have none: they cannot be shown or resubmitted
(a returned one is submitted anew once it is withdrawn or decided).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("applications", sa.Column("claim_digest", sa.String(64)))
