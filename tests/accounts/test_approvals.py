"""Accounts applying approved applications: the enterprise created once, or the approval
withdrawn, with a reason the applicant can read, when its USCC or account name went meanwhile."""

from __future__ import annotations

import uuid

import pytest
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.routes import routes
from singlewindow.contracts import accounts, registration
from singlewindow.contracts.common import EnterpriseInfo
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.registration import ApplicationDecided, Onboarding, OnboardingDetails

from tests.support.accounts import PASSWORD, card_admin
from tests.support.cards import CardAuthority
from tests.support.handlers import LocalService, deliver, staged
from tests.support.identifiers import application, make_account, make_uscc

ID_NUMBER = "11010519491231002X"


@pytest.fixture(autouse=True)
def wired(deps: AccountsRuntime) -> None:
    """The service wired to accounts' routes, as `app.py` does: what it may publish included."""
    deps.service.include(routes, deps)


async def onboarding(deps: AccountsRuntime, *, uscc: str, account: str) -> Onboarding:
    """What registration answers accounts for an approved application, once asked."""
    content = application(uscc=uscc, account=account)
    admin = content["admin"]
    return Onboarding(
        application_id=f"app_{uuid.uuid4().hex[:16]}",
        enterprise=EnterpriseInfo.model_validate(content["enterprise"]),
        admin_account=admin["account"],
        admin_name=admin["name"],
        admin_id_type=admin["id_type"],
        admin_id_number=ID_NUMBER,
        admin_mobile="13900000001",
        admin_email=None,
        password_hash=await deps.passwords.hash(PASSWORD),
    )


async def approve(deps: AccountsRuntime, details: Onboarding) -> CloudEvent:
    """Deliver the approval of `details`' application, as registration announces it (each
    time under a fresh event id); the approval event."""

    def answer(request: OnboardingDetails) -> Onboarding:
        assert request.application_id == details.application_id
        return details

    assert isinstance(deps.service, LocalService)
    deps.service.answer(registration.ONBOARDING_DETAILS, answer)
    approved = registration.APPROVED.make(
        ApplicationDecided(
            application_id=details.application_id,
            uscc=details.enterprise.uscc,
            enterprise_name=details.enterprise.name,
            admin_account=details.admin_account,
            reason=None,
        ),
        subject=details.enterprise.uscc,
        source="urn:test:registration",
    )
    delivery = await deliver(deps.service, routes, deps, approved)
    assert delivery.acked
    assert delivery.dead_letter_reason is None
    return approved


async def of_type(deps: AccountsRuntime, spec_type: str) -> list[CloudEvent]:
    return [e for e in await staged(deps.service) if e.type == spec_type]


async def registered_from(deps: AccountsRuntime, details: Onboarding) -> list[CloudEvent]:
    """The enterprise-registered events of `details`' application."""
    return [
        e
        for e in await of_type(deps, accounts.ENTERPRISE_REGISTERED.type)
        if e.data["application_id"] == details.application_id
    ]


async def test_an_approval_whose_enterprise_was_registered_by_card_is_withdrawn_saying_why(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    await card_admin(deps, authority, uscc=uscc)
    details = await onboarding(deps, uscc=uscc, account=make_account())

    await approve(deps, details)

    assert await registered_from(deps, details) == []
    [event] = await of_type(deps, registration.WITHDRAWN.type)
    assert event.subject == uscc
    assert event.source == deps.service.source
    withdrawn = registration.WITHDRAWN.parse(event)
    assert (withdrawn.application_id, withdrawn.uscc, withdrawn.admin_account) == (
        details.application_id,
        uscc,
        details.admin_account,
    )
    assert f"the enterprise {uscc} was registered" in withdrawn.reason
    wire = event.model_dump_json()
    assert details.password_hash not in wire
    assert ID_NUMBER not in wire


async def test_an_approval_whose_account_name_was_taken_is_withdrawn_saying_why(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    taken = make_account()
    await card_admin(deps, authority, account=taken)
    details = await onboarding(deps, uscc=make_uscc(), account=taken.upper())

    await approve(deps, details)

    [event] = await of_type(deps, registration.WITHDRAWN.type)
    reason = registration.WITHDRAWN.parse(event).reason
    assert f"the account name {taken.upper()} was taken" in reason
    assert "another account name" in reason
    assert await registered_from(deps, details) == []


async def test_an_approval_announced_again_creates_nothing_more_and_withdraws_nothing(
    deps: AccountsRuntime,
) -> None:
    details = await onboarding(deps, uscc=make_uscc(), account=make_account())
    await approve(deps, details)
    await approve(deps, details)  # the same approval under a new event id

    assert len(await registered_from(deps, details)) == 1
    assert await of_type(deps, registration.WITHDRAWN.type) == []
