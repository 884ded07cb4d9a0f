"""Tasks are assigned to a reviewer, by a claim or a supervisor.

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
    op.add_column("tasks", sa.Column("assignee", sa.String(64)))
    op.create_index("ix_tasks_assignee", "tasks", ["assignee"])
