"""Dialect-specific SQL built without importing the dialect a service does not use."""

from __future__ import annotations

import re

import pytest
from singlewindow.runtime.db import Database, partial_index, upsert
from sqlalchemy import Column, Integer, MetaData, String, Table, literal
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex

SQLITE: Dialect = SQLiteDialect()
POSTGRESQL: Dialect = PGDialect()  # type: ignore[no-untyped-call]  # its __init__ has no hints

metadata = MetaData()
counters = Table(
    "counters",
    metadata,
    Column("name", String, primary_key=True),
    Column("value", Integer, nullable=False),
    Column("state", String, nullable=False),
)
open_counters = partial_index(
    "one_open_counter_per_value",
    counters.c.value,
    unique=True,
    where=counters.c.state == "open",
)


async def test_a_partial_index_keeps_its_predicate_on_sqlite_and_postgresql() -> None:
    sqlite_ddl = str(CreateIndex(open_counters).compile(dialect=SQLITE))
    database = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # never connects
    try:
        postgresql_ddl = str(CreateIndex(open_counters).compile(dialect=POSTGRESQL))
        declared_later = partial_index(
            "one_counter_per_name_when_open",
            counters.c.name,
            where=counters.c.state == "open",
        )
        later_ddl = str(CreateIndex(declared_later).compile(dialect=POSTGRESQL))
    finally:
        await database.engine.dispose()
    for ddl in (sqlite_ddl, postgresql_ddl):
        assert ddl.startswith("CREATE UNIQUE INDEX one_open_counter_per_value ON counters (value)")
        assert re.search(r" WHERE (counters\.)?state = 'open'$", ddl.rstrip()), ddl
    assert re.search(r" WHERE (counters\.)?state = 'open'$", later_ddl.rstrip()), later_ddl


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRESQL], ids=["sqlite", "postgresql"])
def test_an_upsert_is_the_dialects_own_insert_on_conflict(dialect: Dialect) -> None:
    statement = (
        upsert(dialect.name, counters)
        .values(name="a", value=1, state="open")
        .on_conflict_do_update(
            index_elements=[counters.c.name], set_={"value": counters.c.value + literal(1)}
        )
        .returning(counters.c.value)
    )
    sql = str(statement.compile(dialect=dialect))
    assert "ON CONFLICT (name) DO UPDATE SET value = (counters.value + " in sql
    assert re.search(r" RETURNING (counters\.)?value$", sql.rstrip()), sql


def test_an_upsert_for_another_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="'mysql'"):
        upsert("mysql", counters)
