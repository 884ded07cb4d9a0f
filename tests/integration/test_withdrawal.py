"""An approval that cannot be applied is withdrawn where the applicant sees it, over the real
bus: the enterprise was registered with its legal-person card while the application waited.
And the streams the services make carry the limits declared for them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import DiscardPolicy
from singlewindow.contracts import accounts, registration
from singlewindow.contracts.bus import DEAD_LETTER_STREAM
from singlewindow.swctl.platform import Platform

from tests.integration.test_card_accounts import register_admin
from tests.integration.test_exactly_once import events_of
from tests.integration.test_registration_rules import approve, submit
from tests.support.cards import CardAuthority
from tests.support.identifiers import application, make_uscc
from tests.support.platform import Bus, eventually, running_platform
from tests.support.swctl import Swctl


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CardAuthority:
    """The card CA this module's platform trusts."""
    return CardAuthority(tmp_path_factory.mktemp("card-ca"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    authority: CardAuthority,
) -> Iterator[Platform]:
    """The platform with accounts trusting `authority`'s cards."""
    data_dir: Path = tmp_path_factory.mktemp(f"platform-{request.param}")
    with running_platform(
        request.param,
        data_dir,
        SW_ACCOUNTS_CARD_TRUST_ANCHOR=str(authority.anchor_path),
        SW_ACCOUNTS_CARD_CRL=str(authority.crl_path),
    ) as running:
        yield running


async def test_an_approval_whose_enterprise_registered_by_card_meanwhile_shows_withdrawn(
    platform: Platform, nats_bus: Bus, authority: CardAuthority, tmp_path: Path, reviewer: str
) -> None:
    uscc = make_uscc()
    view = await submit(nats_bus, application(uscc=uscc))
    await register_admin(nats_bus, authority.issue(uscc=uscc))  # while the application waits
    await approve(nats_bus, view.application_id, reviewer)

    swctl = Swctl(platform.config.nats_url, tmp_path / "swctl", platform.config.data_dir)

    async def withdrawn() -> dict[str, Any] | None:
        shown = await asyncio.to_thread(
            swctl,
            "registration",
            "show",
            view.application_id,
            "--claim-secret-stdin",
            "--json",
            stdin=view.claim_secret,
        )
        assert shown.code == 0, shown.stderr
        return dict(shown.json()) if shown.json()["state"] == "withdrawn" else None

    shown = await eventually(withdrawn, within=30)
    assert f"the enterprise {uscc} was registered" in shown["reason"]
    human = swctl(
        "registration", "show", view.application_id, "--claim-secret-stdin", stdin=view.claim_secret
    )
    assert human.code == 0, human.stderr
    assert "withdrawn" in human.stdout
    assert "was registered" in human.stdout

    # Integrators see why too, in the registration stream, and no enterprise came of it.
    [(event, _)] = await events_of(
        nats_bus, registration.STREAM.name, registration.WITHDRAWN.subject, uscc
    )
    assert event["source"] == "urn:singlewindow:service:accounts"
    assert event["data"]["application_id"] == view.application_id
    registered = await events_of(
        nats_bus, accounts.STREAM.name, accounts.ENTERPRISE_REGISTERED.subject, uscc
    )
    assert [e["data"]["via"] for e, _ in registered] == ["card"]


async def test_the_services_make_their_streams_with_the_declared_limits(nats_bus: Bus) -> None:
    for spec in (accounts.STREAM, accounts.AUDIT_STREAM, registration.STREAM, DEAD_LETTER_STREAM):
        config = (await nats_bus.js.stream_info(spec.name)).config
        assert (config.max_age, config.max_bytes) == (spec.max_age_seconds, spec.max_bytes)
        assert config.discard == DiscardPolicy(spec.discard.value)
        assert (config.deny_delete, config.deny_purge) == (spec.deny_delete, spec.deny_purge)
    assert accounts.AUDIT_STREAM.deny_delete
    assert accounts.AUDIT_STREAM.deny_purge
