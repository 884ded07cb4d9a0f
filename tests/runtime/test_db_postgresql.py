"""`Database` on a real PostgreSQL: no ping per checkout, yet a backend the server ended (a restart,
`pg_terminate_backend`) costs no request, and a unit of work whose COMMIT was lost is never run
twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from singlewindow.runtime.db import Database
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError

from tests.support.platform import postgres_admin_url, postgres_databases

pytestmark = pytest.mark.integration

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("key", Text))
COUNT = select(func.count()).select_from(items)


@pytest.fixture(scope="module")
def admin_url() -> str:
    return postgres_admin_url()


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    with postgres_databases(["db"], admin_url, prefix="sw_test_runtime") as urls:
        yield urls["db"]


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.close()


async def end_backends(admin_url: str, database_url: str) -> None:
    """Terminate every backend serving the database of `database_url`, as a restart would, and
    wait until they are gone (their sockets closed)."""
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        for _ in range(500):  # 10 s at most
            if not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
            ):
                break
            await asyncio.sleep(0.02)
        else:
            raise TimeoutError(f"backends of {name} still there 10 s after their termination")
    finally:
        await admin.close()
    await asyncio.sleep(0.05)  # the client's event loop reads the end of each socket


def count(connection: Connection) -> int:
    return int(connection.execute(COUNT).scalar_one())


async def test_every_kind_of_request_succeeds_after_the_backends_were_terminated(
    database: Database, admin_url: str, database_url: str
) -> None:
    async def warm() -> None:  # several pooled connections, all of them about to be ended
        async def hold() -> None:
            async with database.reading() as connection:
                await connection.execute(text("SELECT pg_sleep(0.05)"))

        await asyncio.gather(*(hold() for _ in range(3)))

    for attempt in range(4):
        await warm()
        await end_backends(admin_url, database_url)
        if attempt == 0:
            async with database.transaction() as connection:
                await connection.execute(insert(items).values(key="tx"))
        elif attempt == 1:
            async with database.reading() as connection:
                assert (await connection.execute(COUNT)).scalar_one() == 1
        elif attempt == 2:
            await database.run(lambda c: c.execute(insert(items).values(key="run")))
        else:
            assert await database.read(count) == 2


async def test_a_unit_of_work_whose_backend_ends_before_commit_runs_again_once(
    database: Database,
) -> None:
    calls = 0

    def add_then_lose_the_backend(connection: Connection) -> int:
        nonlocal calls
        calls += 1
        connection.execute(insert(items).values(key=f"try {calls}"))
        if calls == 1:  # the server ends this very backend before COMMIT is sent
            connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return calls

    assert await database.run(add_then_lose_the_backend) == 2
    keys = await database.read(lambda c: c.execute(select(items.c.key)).scalars().all())
    assert keys == ["try 2"]


async def test_a_read_whose_backend_ends_runs_again_once(database: Database) -> None:
    calls = 0

    def read_then_lose_the_backend(connection: Connection) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return count(connection)

    assert await database.read(read_then_lose_the_backend) == 0
    assert calls == 2


async def test_a_unit_of_work_whose_commit_was_lost_is_not_run_again(database: Database) -> None:
    # A deferred constraint trigger runs at COMMIT: this one ends its own backend there, so the
    # client loses the connection while committing, and cannot know whether it committed.
    await database.run(
        lambda c: c.exec_driver_sql(
            "CREATE FUNCTION end_me() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$"
        )
    )
    await database.run(
        lambda c: c.exec_driver_sql(
            "CREATE CONSTRAINT TRIGGER end_at_commit AFTER INSERT ON items"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION end_me()"
        )
    )
    calls = 0

    def add(connection: Connection) -> None:
        nonlocal calls
        calls += 1
        connection.execute(insert(items).values(key="once"))

    with pytest.raises(DBAPIError) as raised:
        await database.run(add)
    assert raised.value.connection_invalidated
    assert calls == 1
    assert await database.read(count) == 0  # the server ended it before the commit was durable


async def test_two_statements_of_a_read_are_not_in_one_transaction(database: Database) -> None:
    # Under READ COMMITTED each statement had its own snapshot anyway; without BEGIN, each is
    # its own transaction too, and a new transaction id shows it.
    def two_transactions(connection: Connection) -> tuple[int, int]:
        first = connection.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one()
        second = connection.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one()
        return int(first), int(second)

    first, second = await database.read(two_transactions)
    assert first != second
    async with database.reading() as connection:
        ids = [
            (
                await connection.execute(text("SELECT pg_current_xact_id()::text::bigint"))
            ).scalar_one()
            for _ in range(2)
        ]
    assert ids[0] != ids[1]


async def test_a_write_transaction_is_still_one_transaction(database: Database) -> None:
    def two_ids(connection: Connection) -> tuple[int, int]:
        query = text("SELECT pg_current_xact_id()::text::bigint")
        return int(connection.execute(query).scalar_one()), int(
            connection.execute(query).scalar_one()
        )

    first, second = await database.run(two_ids)
    assert first == second
