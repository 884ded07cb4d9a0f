"""Idempotency keys through the runtime's request path (`rpc.respond`), on registration's
database: a retry with the same key gets the first answer and makes no second effect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from singlewindow.contracts import accounts
from singlewindow.contracts import registration as contract
from singlewindow.contracts.accounts import OnboardingCheckView
from singlewindow.contracts.endpoints import Audience, Endpoint
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.registration import SubmittedApplication
from singlewindow.contracts.wire import decode_result
from singlewindow.registration.dependencies import Registration
from singlewindow.registration.handlers import routes, show_application, submit_cardless
from singlewindow.registration.repository import metadata
from singlewindow.registration.settings import Settings
from singlewindow.runtime.clock import ManualClock
from singlewindow.runtime.idempotency import HEADER, LEASE, _Keyed
from singlewindow.runtime.passwords import Argon2Parameters, PasswordHashing
from singlewindow.runtime.rpc import respond
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.handlers import LocalService, kind_of, local_service, statements
from tests.support.identifiers import application

PASSWORDS = PasswordHashing(Argon2Parameters(memory_kib=64, time_cost=1), max_concurrent=1)
FREE = OnboardingCheckView(uscc_registered=False, account_taken=False)
TAKEN = OnboardingCheckView(uscc_registered=False, account_taken=True)
KEY = "0b6f1c7e-8d1a-4d0e-9a51-3f1f4c2d9e77"


@dataclass
class Registering:
    deps: Registration
    service: LocalService
    clock: ManualClock


@pytest.fixture
async def registering(tmp_path: Path) -> AsyncIterator[Registering]:
    clock = ManualClock()
    async with local_service("registration", metadata, tmp_path, clock=clock) as service:
        deps = Registration(service=service, settings=Settings(), passwords=PASSWORDS)
        service.include(routes, deps)
        service.answer(accounts.ONBOARDING_CHECK, lambda request: FREE)
        yield Registering(deps, service, clock)


def body(**identifiers: Any) -> bytes:
    return json.dumps(application(password="Chongqing-Trade-2026", **identifiers)).encode()


async def submit(registering: Registering, payload: bytes, key: str | None = KEY) -> bytes:
    """Send a submission as the service's request path would get it: body and headers."""

    async def handle(request: Any) -> BaseModel | None:
        return await submit_cardless(request, registering.deps)

    return await respond(
        contract.SUBMIT_CARDLESS,
        payload,
        None,
        handle,
        headers={HEADER: key} if key is not None else {},
        idempotency=registering.service.idempotency,
    )


def view(reply: bytes) -> SubmittedApplication:
    result = decode_result(contract.SUBMIT_CARDLESS, reply)
    assert result is not None
    return result


def refusal(reply: bytes) -> DomainError:
    with pytest.raises(DomainError) as raised:
        decode_result(contract.SUBMIT_CARDLESS, reply)
    return raised.value


async def count(service: LocalService, table: str) -> int:
    async with service.db.reading() as connection:
        return len((await connection.exec_driver_sql(f"SELECT 1 FROM {table}")).all())


async def test_a_retry_with_the_same_key_gets_the_first_application_and_makes_none(
    registering: Registering,
) -> None:
    payload = body()
    first = await submit(registering, payload)
    with statements(registering.service) as executed:
        again = await submit(registering, payload)
    assert again == first
    assert view(first).application_id
    assert [kind_of(s) for s in executed] == ["BEGIN DEFERRED", "SELECT idempotency"]
    assert await count(registering.service, "applications") == 1
    assert await count(registering.service, "outbox") == 2  # announced once


async def test_concurrent_duplicates_make_one_application_and_get_its_answer_or_wait(
    registering: Registering,
) -> None:
    payload = body()
    replies = await asyncio.gather(*(submit(registering, payload) for _ in range(4)))
    answers = {reply for reply in replies if b'"result"' in reply}
    assert len(answers) == 1
    waiting = [refusal(reply).code for reply in replies if reply not in answers]
    assert set(waiting) <= {ErrorCode.IN_PROGRESS}
    assert await submit(registering, payload) in answers
    assert await count(registering.service, "applications") == 1
    assert await count(registering.service, "idempotency") == 1


async def test_a_key_whose_request_died_is_taken_over_after_its_lease(
    registering: Registering,
) -> None:
    payload = body()
    keyed = _Keyed(contract.SUBMIT_CARDLESS, KEY, None, payload)
    async with registering.service.db.transaction() as connection:
        await connection.execute(
            insert(registering.service.idempotency.table).values(
                key_digest=keyed.digest,
                fingerprint=keyed.fingerprint,
                claim=keyed.claim,
                reply=None,
                expires_at=registering.clock.now() + LEASE,
            )
        )
    assert refusal(await submit(registering, payload)).code is ErrorCode.IN_PROGRESS
    registering.clock.advance(LEASE)
    assert view(await submit(registering, payload)).application_id
    assert await count(registering.service, "applications") == 1


async def test_the_answer_commits_in_the_transaction_of_the_application(
    registering: Registering,
) -> None:
    with statements(registering.service) as executed:
        await submit(registering, body())
    assert [kind_of(s) for s in executed] == [
        "BEGIN DEFERRED",
        "SELECT idempotency",
        "BEGIN IMMEDIATE",  # the claim
        "INSERT idempotency",
        "DELETE idempotency",  # expired keys, at most once an hour
        "BEGIN DEFERRED",
        "SELECT applications",
        "BEGIN IMMEDIATE",  # the application, its events and the answer
        "INSERT applications",
        "INSERT outbox",
        "INSERT outbox",
        "UPDATE idempotency",
    ]


async def test_without_a_key_a_submission_runs_exactly_the_statements_it_always_did(
    registering: Registering,
) -> None:
    with statements(registering.service) as executed:
        await submit(registering, body(), key=None)
    assert [kind_of(s) for s in executed] == [
        "BEGIN DEFERRED",
        "SELECT applications",
        "BEGIN IMMEDIATE",
        "INSERT applications",
        "INSERT outbox",
        "INSERT outbox",
    ]


async def test_the_same_key_with_a_different_body_is_refused_and_changes_nothing(
    registering: Registering,
) -> None:
    await submit(registering, body())
    other = body()  # another enterprise
    refused = refusal(await submit(registering, other))
    assert refused.code is ErrorCode.IDEMPOTENCY_KEY_REUSED
    assert [field.path for field in refused.fields] == [HEADER]
    assert await count(registering.service, "applications") == 1
    assert view(await submit(registering, other, "another-key-1")).application_id


@pytest.mark.parametrize("key", ["short", "x" * 129, "has space in it", "ключ-ключ-ключ"])
async def test_a_bad_key_is_refused_naming_the_header_and_changes_nothing(
    registering: Registering, key: str
) -> None:
    refused = refusal(await submit(registering, body(), key))
    assert refused.code is ErrorCode.INVALID
    assert [field.path for field in refused.fields] == [HEADER]
    assert await count(registering.service, "applications") == 0


async def test_a_refusal_that_changed_nothing_is_not_kept_so_a_retry_runs_again(
    registering: Registering,
) -> None:
    registering.service.answer(accounts.ONBOARDING_CHECK, lambda request: TAKEN)
    payload = body()
    assert refusal(await submit(registering, payload)).code is ErrorCode.CONFLICT
    assert await count(registering.service, "idempotency") == 0
    registering.service.answer(accounts.ONBOARDING_CHECK, lambda request: FREE)
    assert view(await submit(registering, payload)).application_id


async def test_a_key_is_forgotten_after_the_retention_time(registering: Registering) -> None:
    payload = body()
    view(await submit(registering, payload))
    registering.clock.advance(timedelta(hours=24, seconds=1))
    # Run again, the submission meets the application the first made.
    assert refusal(await submit(registering, payload)).code is ErrorCode.CONFLICT
    assert await count(registering.service, "applications") == 1


async def test_a_key_on_a_read_is_ignored(registering: Registering) -> None:
    submitted = view(await submit(registering, body(), key=None))

    async def handle(request: Any) -> BaseModel | None:
        return await show_application(request, registering.deps)

    request = json.dumps(
        {"application_id": submitted.application_id, "claim_secret": submitted.claim_secret}
    ).encode()
    with statements(registering.service) as executed:
        reply = await respond(
            contract.SHOW_APPLICATION,
            request,
            None,
            handle,
            headers={HEADER: KEY},
            idempotency=registering.service.idempotency,
        )
    assert json.loads(reply)["result"]["application_id"] == submitted.application_id
    assert not any("idempotency" in statement for statement in executed)


class Count(BaseModel):
    """Count something for the caller (a command of this test's own)."""

    token: str
    refuse: bool = False


COUNT: Endpoint[Count, None] = Endpoint(
    "registration", "test.count", Count, None, Audience.SESSION, changes_state=True
)


async def counted(
    registering: Registering,
    request: Count,
    key: str = KEY,
    *,
    crash: bool = False,
    started: asyncio.Event | None = None,
    until: asyncio.Event | None = None,
    hashes: bool = False,
    seen: list[int] | None = None,
) -> bytes:
    """A command that writes a row, then answers, refuses or crashes (or first waits)."""
    written = await count(registering.service, "inbox")

    async def handle(parsed: Any) -> None:
        if started is not None:
            started.set()
        if until is not None:
            await until.wait()
        connection: AsyncConnection
        async with registering.service.db.transaction() as connection:
            await connection.exec_driver_sql(
                "INSERT INTO inbox VALUES ('test', ?, '2026-01-01 00:00:00')", (f"e{written}",)
            )
        if hashes:
            await registering.deps.passwords.hash("Chongqing-Trade-2026")
            async with registering.service.db.engine.connect() as elsewhere:
                rows = await elsewhere.exec_driver_sql("SELECT 1 FROM inbox")
                assert seen is not None
                seen.append(len(rows.all()))
        if crash:
            raise RuntimeError("the process dies after the write")
        if parsed.refuse:
            raise DomainError(ErrorCode.THROTTLED, "counted, and refused")

    return await respond(
        COUNT,
        request.model_dump_json().encode(),
        None,
        handle,
        headers={HEADER: key},
        idempotency=registering.service.idempotency,
    )


async def test_a_refusal_after_a_write_is_kept_with_the_write_and_answered_again(
    registering: Registering,
) -> None:
    request = Count(token="session-of-one", refuse=True)
    first = await counted(registering, request)
    assert await counted(registering, request) == first
    assert json.loads(first)["error"]["code"] == "throttled"
    assert await count(registering.service, "inbox") == 1


async def test_an_error_after_the_write_rolls_back_the_write_and_keeps_no_answer(
    registering: Registering,
) -> None:
    request = Count(token="session-of-one")
    assert json.loads(await counted(registering, request, crash=True))["error"]["code"] == (
        "internal"
    )
    assert await count(registering.service, "inbox") == 0
    assert await count(registering.service, "idempotency") == 0
    assert json.loads(await counted(registering, request)) == {"result": None}
    assert await count(registering.service, "inbox") == 1


async def test_a_duplicate_while_the_first_runs_is_told_it_is_in_progress_and_runs_nothing(
    registering: Registering,
) -> None:
    request, started, release = Count(token="session-of-one"), asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(counted(registering, request, started=started, until=release))
    await started.wait()  # it has claimed its key and runs
    duplicate = json.loads(await counted(registering, request))
    assert duplicate["error"]["code"] == "in_progress"
    release.set()
    answer = await first
    assert json.loads(answer) == {"result": None}
    assert await counted(registering, request) == answer
    assert await count(registering.service, "inbox") == 1


async def test_a_write_before_hashing_commits_first_so_no_lock_is_held_while_it_hashes(
    registering: Registering,
) -> None:
    seen: list[int] = []
    request = Count(token="session-of-one", refuse=True)
    first = await counted(registering, request, hashes=True, seen=seen)
    assert seen == [1]  # another connection saw the write while the hash ran
    # The refusal followed a write: kept, and answered again without a second one.
    assert await counted(registering, request, hashes=True, seen=seen) == first
    assert seen == [1]
    assert await count(registering.service, "inbox") == 1


async def test_keys_are_scoped_by_caller(registering: Registering) -> None:
    await counted(registering, Count(token="session-of-one"))
    assert json.loads(await counted(registering, Count(token="session-of-two"))) == {"result": None}
    assert await count(registering.service, "inbox") == 2


async def test_a_stored_answer_is_not_kept_in_the_clear(registering: Registering) -> None:
    reply = await submit(registering, body())
    async with registering.service.db.reading() as connection:
        row = (await connection.exec_driver_sql("SELECT * FROM idempotency")).one()
    assert KEY not in str(tuple(row))
    assert view(reply).application_id.encode() not in bytes(row.reply)
    assert view(reply).claim_secret.encode() not in bytes(row.reply)
