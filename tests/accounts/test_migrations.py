"""Migration 0002 on a database that already holds enterprises, accounts and sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from singlewindow.accounts.tables import enterprises
from singlewindow.runtime.db import Database
from sqlalchemy import Connection, insert, select, text

MIGRATIONS = (
    Path(__file__).resolve().parents[2] / "services/accounts/src/singlewindow/accounts/migrations"
)
NOW = datetime(2026, 1, 5, tzinfo=UTC)


async def upgrade_to(database: Database, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    def upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(upgrade)


async def test_an_existing_sqlite_database_keeps_its_rows_and_foreign_keys(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}")
    try:
        await upgrade_to(database, "0001")
        async with database.transaction() as connection:
            await connection.execute(
                text(
                    "INSERT INTO enterprises VALUES ('91500000MA5U7X1C69', '重庆某某贸易有限公司',"
                    " NULL, '500000', '重庆市渝北区', '张三', 'resident_id', '11010519491231002X',"
                    " '13800138000', 'cardless', :now)"
                ),
                {"now": NOW},
            )
            await connection.execute(
                text(
                    "INSERT INTO accounts VALUES ('acc_1', 'admin_one', 'admin_one', 'admin',"
                    " '91500000MA5U7X1C69', '李四', 'resident_id', '11010519491231002X',"
                    " '13900000001', NULL, 'hash', 0, 'active', :now)"
                ),
                {"now": NOW},
            )
        # The service's own start-up path: rebuilding `enterprises` must not trip the accounts'
        # foreign key to it.
        await database.migrate(MIGRATIONS)
        async with database.transaction() as connection:
            kept = (await connection.execute(select(enterprises))).mappings().one()
            assert kept["legal_rep_name"] == "张三"
            await connection.execute(
                insert(enterprises).values(
                    uscc="91500000MA5U7X1D6X",
                    name="from a card",
                    division="500000",
                    registered_via="card",
                    created_at=NOW,
                )
            )
            assert (await connection.execute(text("PRAGMA foreign_key_check"))).all() == []
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            owner = await connection.scalar(text("SELECT uscc FROM accounts"))
            assert owner == "91500000MA5U7X1C69"
    finally:
        await database.close()
