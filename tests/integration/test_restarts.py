"""Killing nats-server or a service during a stream of registrations loses and doubles nothing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter

from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from singlewindow.contracts import registration, review
from singlewindow.contracts.errors import DomainError
from singlewindow.contracts.registration import SubmittedApplication
from singlewindow.contracts.review import TaskList
from singlewindow.swctl.platform import Platform

from tests.support.identifiers import application
from tests.support.platform import Bus, bus, connect, eventually
from tests.support.staff import staff_token

UNANSWERED = (NoRespondersError, NatsTimeoutError, TimeoutError, ConnectionClosedError, DomainError)


async def submit_for(seconds: float, platform: Platform) -> list[str]:
    """Submit applications back to back for `seconds`; return the ids of those accepted."""
    accepted: list[str] = []
    nc = await connect(platform, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    client = Bus(nc)
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        while asyncio.get_running_loop().time() < deadline:
            try:
                view: SubmittedApplication = await client.call(
                    registration.SUBMIT_CARDLESS, application()
                )
            except UNANSWERED:
                await asyncio.sleep(0.1)  # not accepted: the client was told so
                continue
            accepted.append(view.application_id)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    return accepted


async def assert_each_has_one_task(nats_bus: Bus, accepted: list[str], platform: Platform) -> None:
    reviewer = await staff_token(nats_bus, platform)

    async def all_tasked() -> Counter[str] | None:
        counts: Counter[str] = Counter()
        for offset in itertools.count(0, 500):
            page: TaskList = await nats_bus.call(
                review.LIST_TASKS,
                {"token": reviewer, "state": None, "limit": 500, "offset": offset},
            )
            counts.update(t.application_id for t in page.tasks)
            if len(page.tasks) < 500:
                break
        return counts if all(counts[a] for a in accepted) else None

    counts = await eventually(all_tasked, within=60)
    assert [a for a in accepted if counts[a] != 1] == []


async def test_restarting_nats_server_loses_and_doubles_no_registration(platform: Platform) -> None:
    submitting = asyncio.create_task(submit_for(4.0, platform))
    await asyncio.sleep(1.5)
    platform.stop_process("nats-server", kill=True)
    await asyncio.sleep(1.0)
    platform.start_nats()
    accepted = await submitting
    assert len(accepted) > 5
    async with bus(platform) as checker:
        await assert_each_has_one_task(checker, accepted, platform)


async def test_killing_review_mid_stream_loses_and_doubles_no_task(platform: Platform) -> None:
    submitting = asyncio.create_task(submit_for(3.5, platform))
    await asyncio.sleep(1.0)
    platform.stop_process("review", kill=True)
    await asyncio.sleep(1.0)
    platform.start_service("review")
    accepted = await submitting
    assert len(accepted) > 5
    async with bus(platform) as checker:
        await assert_each_has_one_task(checker, accepted, platform)


async def test_killing_registration_mid_stream_loses_no_accepted_application(
    platform: Platform,
) -> None:
    submitting = asyncio.create_task(submit_for(3.5, platform))
    await asyncio.sleep(1.0)
    platform.stop_process("registration", kill=True)
    platform.start_service("registration")
    accepted = await submitting
    assert len(accepted) > 5
    async with bus(platform) as checker:
        await assert_each_has_one_task(checker, accepted, platform)


async def test_stopping_registration_gracefully_answers_every_request_it_took(
    platform: Platform,
) -> None:
    """SIGTERM while submissions are under way: each is answered or was never taken (no
    responders); none is left waiting for a reply that never comes."""
    nc = await connect(platform)
    client = Bus(nc)
    outcomes: list[str] = []

    async def submit() -> None:
        try:
            await client.call(registration.SUBMIT_CARDLESS, application())
        except NoRespondersError:
            outcomes.append("not taken")
        except (NatsTimeoutError, TimeoutError):
            outcomes.append("taken, never answered")
        except DomainError:
            outcomes.append("answered")  # refused, but answered
        else:
            outcomes.append("answered")

    try:
        under_way = [asyncio.create_task(submit()) for _ in range(12)]
        await asyncio.sleep(0.05)  # sent, and some of them being hashed
        await asyncio.to_thread(platform.stop_process, "registration")
        await asyncio.gather(*under_way)
    finally:
        platform.start_service("registration")
        await nc.close()
    assert "taken, never answered" not in outcomes
    assert "answered" in outcomes
