"""The real platform, once per module and backend: every integration test runs on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from singlewindow.swctl.platform import Platform

from tests.support.platform import Bus, bus, running_platform
from tests.support.staff import staff_token


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """nats-server with JetStream and each service as its own process, on `backend`."""
    data_dir: Path = tmp_path_factory.mktemp(f"platform-{request.param}")
    with running_platform(request.param, data_dir) as running:
        yield running


@pytest.fixture
async def nats_bus(platform: Platform) -> AsyncIterator[Bus]:
    """A test's own connection to the platform's NATS."""
    async with bus(platform) as connection:
        yield connection


@pytest.fixture
async def registration_bus(platform: Platform) -> AsyncIterator[Bus]:
    """The registration service's connection: what it may ask other services (a SERVICE one)."""
    async with bus(platform, "registration") as connection:
        yield connection


@pytest.fixture
async def workstation_bus(platform: Platform) -> AsyncIterator[Bus]:
    """The connection of the front end with the card readers: card-gateway's requests."""
    async with bus(platform, "workstation") as connection:
        yield connection


@pytest.fixture
async def reviewer(platform: Platform, nats_bus: Bus) -> str:
    """A reviewer's staff token (the reviewer added by the platform's bootstrap admin)."""
    return await staff_token(nats_bus, platform)
