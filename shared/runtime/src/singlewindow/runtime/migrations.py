"""The body of every service's Alembic `env.py`: migrate on the connection the service hands over."""

from __future__ import annotations

from alembic import context


def run_migrations() -> None:
    """Run the pending migrations on the connection in `config.attributes["connection"]`."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
