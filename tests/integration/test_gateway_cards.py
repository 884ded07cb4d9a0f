"""The card story through the HTTP gateway: swctl asks this machine's card-gateway (NATS, as the
workstation) for the card's answer and relays it to the gateway (HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from singlewindow.swctl.platform import GATEWAY, Platform

from tests.integration.test_card_end_to_end import Desk
from tests.integration.test_card_end_to_end import (
    test_a_legal_person_card_registers_its_administrator_who_adds_a_card_operator as card_story,
)
from tests.integration.test_gateway import SwctlOverHttp, gateway_url
from tests.support.platform import free_port, running_platform

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The platform with card-gateway, pcscd with the vpcd reader, and the gateway."""
    data_dir: Path = tmp_path_factory.mktemp(f"gateway-cards-{request.param}")
    with running_platform(request.param, data_dir, with_cards=True) as running:
        if running.pcscd is None:
            pytest.fail(f"pcscd with the vpcd reader is needed: {running.pcscd_problem}")
        running.config.service_ports[GATEWAY] = free_port()
        running.start_service(GATEWAY)
        yield running


@pytest.fixture
def desk(platform: Platform, tmp_path: Path) -> Iterator[Desk]:
    swctl = SwctlOverHttp(
        platform.config.nats_url,
        tmp_path / "swctl",
        platform.config.data_dir,
        server=gateway_url(platform),
    )
    desk = Desk(platform, swctl)
    try:
        yield desk
    finally:
        desk.remove(0)
        desk.remove(1)


def test_card_registration_login_and_operators_go_through_the_gateway(
    desk: Desk, platform: Platform
) -> None:
    card_story(desk)
    log = platform.log_path(GATEWAY).read_text()
    for path in ("card/challenge", "card/register-admin", "login/card", "operators/add-card"):
        assert f'"path": "/api/v1/accounts/{path}", "status": 200' in log, path
