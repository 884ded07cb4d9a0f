"""Registration's handlers called directly: what a submission stores and announces, what is
refused and why, and how review decisions are applied (accounts answered by the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from singlewindow.contracts import accounts, review
from singlewindow.contracts import registration as contract
from singlewindow.contracts.accounts import OnboardingCheck, OnboardingCheckView
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.registration import (
    ApplicationState,
    ApplicationView,
    CardlessApplication,
    OnboardingDetails,
    ResubmitCardless,
    ShowApplication,
    SubmittedApplication,
)
from singlewindow.contracts.review import Decision, ReviewDecided
from singlewindow.registration.dependencies import Registration
from singlewindow.registration.domain import CARDLESS
from singlewindow.registration.handlers import (
    onboarding_details,
    resubmit_cardless,
    routes,
    show_application,
    submit_cardless,
)
from singlewindow.registration.repository import metadata
from singlewindow.registration.settings import Settings
from singlewindow.review import handlers as review_handlers
from singlewindow.review.dependencies import Review
from singlewindow.review.repository import metadata as review_metadata
from singlewindow.review.settings import Settings as ReviewSettings
from singlewindow.runtime.clock import ManualClock
from singlewindow.runtime.passwords import Argon2Parameters, PasswordHashing

from tests.support.handlers import (
    LocalService,
    deliver,
    kind_of,
    local_service,
    relay,
    staged,
    statements,
)
from tests.support.identifiers import application, make_uscc

PASSWORD = "Chongqing-Trade-2026"
ID_NUMBER = "11010519491231002X"
PASSWORDS = PasswordHashing(Argon2Parameters(memory_kib=64, time_cost=1), max_concurrent=1)
"""A cheap hasher: these tests pin rules, not the cost of argon2id."""
FREE = OnboardingCheckView(uscc_registered=False, account_taken=False)


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


def cardless(**identifiers: Any) -> CardlessApplication:
    return CardlessApplication.model_validate(application(password=PASSWORD, **identifiers))


async def refusal(registering: Registering, submitted: CardlessApplication) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await submit_cardless(submitted, registering.deps)
    return raised.value


async def stored(registering: Registering) -> int:
    """How many applications the service holds."""
    async with registering.service.db.reading() as connection:
        return len((await connection.exec_driver_sql("SELECT 1 FROM applications")).all())


def decided(
    registering: Registering, view: ApplicationView, decision: Decision, attempt: int = 1
) -> CloudEvent:
    """The event review publishes when a reviewer decides `view`'s `attempt`."""
    data = ReviewDecided(
        task_id="task_abcdefgh",
        kind=view.kind,
        reference=view.application_id,
        application_id=view.application_id,
        attempt=attempt,
        uscc=view.uscc,
        decision=decision,
        reason=None if decision is Decision.APPROVE else "address is incomplete",
        reviewer="li",
        decided_at=registering.clock.now(),
    )
    return review.DECIDED.make(
        data, subject=view.uscc, source="urn:test:review", now=registering.clock.now()
    )


async def decide(
    registering: Registering, view: ApplicationView, decision: Decision, attempt: int = 1
) -> None:
    delivery = await deliver(
        registering.service, routes, registering.deps, decided(registering, view, decision, attempt)
    )
    assert delivery.acked


async def returned(
    registering: Registering,
) -> tuple[CardlessApplication, SubmittedApplication]:
    submitted = cardless()
    view = await submit_cardless(submitted, registering.deps)
    await decide(registering, view, Decision.RETURN)
    return submitted, view


def resubmission(
    view: SubmittedApplication, corrected: CardlessApplication, claim_secret: str | None = None
) -> ResubmitCardless:
    return ResubmitCardless(
        application_id=view.application_id,
        claim_secret=claim_secret or view.claim_secret,
        enterprise=corrected.enterprise,
        admin=corrected.admin,
    )


def unclaimed(view: ApplicationView) -> ApplicationView:
    """The application as shown, without the claim secret only its submission reply has."""
    return ApplicationView.model_validate(view.model_dump(exclude={"claim_secret"}))


async def test_a_submission_is_stored_pending_and_announced_masked_to_integrators_and_review(
    registering: Registering,
) -> None:
    submitted = cardless()
    view = await submit_cardless(submitted, registering.deps)
    assert (view.state, view.kind, view.attempt) == (ApplicationState.PENDING, CARDLESS, 1)
    assert view.submitted_at == registering.clock.now()
    assert await show_application(
        ShowApplication(application_id=view.application_id, claim_secret=view.claim_secret),
        registering.deps,
    ) == unclaimed(view)

    announced, requested = await staged(registering.service)
    assert (announced.type, requested.type) == (contract.SUBMITTED.type, review.REQUESTED.type)
    submission = contract.SUBMITTED.parse(announced)
    assert submission.admin.account == submitted.admin.account
    assert submission.admin.id_number_masked == "110105********002X"
    asked = review.REQUESTED.parse(requested)
    assert (asked.kind, asked.reference, asked.attempt, asked.uscc) == (
        CARDLESS,
        view.application_id,
        1,
        view.uscc,
    )
    assert asked.details == submission.model_dump(mode="json")
    for event in (announced, requested):
        payload = event.model_dump_json()
        assert PASSWORD not in payload
        assert "$argon2" not in payload
        assert ID_NUMBER not in payload
    assert registering.service.asked == [
        (
            accounts.ONBOARDING_CHECK.subject,
            OnboardingCheck(uscc=view.uscc, account=submitted.admin.account),
        )
    ]


async def test_the_claim_secret_is_in_the_submit_reply_only_and_stored_as_a_digest(
    registering: Registering,
) -> None:
    view = await submit_cardless(cardless(), registering.deps)
    assert len(view.claim_secret) >= 43  # 256 random bits, URL-safe
    everything = str([event.model_dump() for event in await staged(registering.service)])
    assert view.claim_secret not in everything
    async with registering.service.db.reading() as connection:
        dumped = str((await connection.exec_driver_sql("SELECT * FROM applications")).all())
    assert view.claim_secret not in dumped
    second = await submit_cardless(cardless(), registering.deps)
    assert second.claim_secret != view.claim_secret


async def test_only_the_claim_secret_of_the_submission_shows_the_application(
    registering: Registering,
) -> None:
    view = await submit_cardless(cardless(), registering.deps)
    other = await submit_cardless(cardless(), registering.deps)
    for wrong in ("x" * 43, other.claim_secret):
        with pytest.raises(DomainError) as raised:
            await show_application(
                ShowApplication(application_id=view.application_id, claim_secret=wrong),
                registering.deps,
            )
        assert raised.value.code is ErrorCode.FORBIDDEN
        assert [f.path for f in raised.value.fields] == ["claim_secret"]
        assert wrong not in raised.value.message


async def test_a_returned_application_is_resubmitted_by_its_applicant_only(
    registering: Registering,
) -> None:
    submitted, view = await returned(registering)
    other = await submit_cardless(cardless(), registering.deps)
    before = await staged(registering.service)
    with pytest.raises(DomainError) as raised:
        await resubmit_cardless(
            resubmission(view, submitted, claim_secret=other.claim_secret), registering.deps
        )
    assert raised.value.code is ErrorCode.FORBIDDEN
    assert await staged(registering.service) == before
    shown = await show_application(
        ShowApplication(application_id=view.application_id, claim_secret=view.claim_secret),
        registering.deps,
    )
    assert (shown.state, shown.attempt) == (ApplicationState.RETURNED, 1)


def test_show_and_resubmit_without_a_claim_secret_are_invalid() -> None:
    with pytest.raises(ValidationError) as raised:
        ShowApplication.model_validate({"application_id": "app_abcdefgh"})
    assert raised.value.errors()[0]["loc"] == ("claim_secret",)


async def test_a_second_application_for_a_pending_uscc_is_refused_on_its_uscc(
    registering: Registering,
) -> None:
    uscc = make_uscc()
    await submit_cardless(cardless(uscc=uscc), registering.deps)
    error = await refusal(registering, cardless(uscc=uscc))
    assert error.code is ErrorCode.CONFLICT
    assert [f.path for f in error.fields] == ["enterprise.uscc"]
    assert await stored(registering) == 1
    assert len(registering.service.asked) == 1, "refused before accounts is asked"


async def test_an_account_name_a_pending_application_asks_for_is_refused_in_any_case(
    registering: Registering,
) -> None:
    first = cardless()
    await submit_cardless(first, registering.deps)
    error = await refusal(registering, cardless(account=first.admin.account.upper()))
    assert error.code is ErrorCode.CONFLICT
    assert [f.path for f in error.fields] == ["admin.account"]
    assert await stored(registering) == 1
    assert len(registering.service.asked) == 1, "refused before accounts is asked"


async def test_a_uscc_freed_by_a_rejection_can_be_applied_for_again(
    registering: Registering,
) -> None:
    first = await submit_cardless(cardless(), registering.deps)
    await decide(registering, first, Decision.REJECT)
    again = await submit_cardless(cardless(uscc=first.uscc), registering.deps)
    assert again.state is ApplicationState.PENDING


async def test_an_enterprise_that_already_has_an_administrator_is_refused(
    registering: Registering,
) -> None:
    registering.service.answer(
        accounts.ONBOARDING_CHECK,
        lambda request: OnboardingCheckView(uscc_registered=True, account_taken=False),
    )
    error = await refusal(registering, cardless())
    assert error.code is ErrorCode.CONFLICT
    assert "already has an administrator" in error.message
    assert [f.path for f in error.fields] == ["enterprise.uscc"]
    assert await stored(registering) == 0


async def test_an_account_name_accounts_already_holds_is_refused(
    registering: Registering,
) -> None:
    registering.service.answer(
        accounts.ONBOARDING_CHECK,
        lambda request: OnboardingCheckView(uscc_registered=False, account_taken=True),
    )
    error = await refusal(registering, cardless())
    assert [f.path for f in error.fields] == ["admin.account"]
    assert await stored(registering) == 0


async def test_accounts_not_answering_is_unavailable_and_nothing_is_stored(
    registering: Registering,
) -> None:
    def silent(request: OnboardingCheck) -> OnboardingCheckView:
        raise DomainError(ErrorCode.UNAVAILABLE, "the accounts service did not answer")

    registering.service.answer(accounts.ONBOARDING_CHECK, silent)
    submitted = cardless()
    error = await refusal(registering, submitted)
    assert error.code is ErrorCode.UNAVAILABLE
    assert "nothing was stored" in error.message
    assert await stored(registering) == 0
    assert await staged(registering.service) == []
    registering.service.answer(accounts.ONBOARDING_CHECK, lambda request: FREE)
    assert (await submit_cardless(submitted, registering.deps)).state is ApplicationState.PENDING


class Meanwhile(PasswordHashing):
    """While the first password is hashed, something else happens (a rival's submission)."""

    def __init__(self, meanwhile: Callable[[], Awaitable[object]]) -> None:
        super().__init__(PASSWORDS.parameters, max_concurrent=1)
        self.meanwhile: Callable[[], Awaitable[object]] | None = meanwhile

    async def hash(self, password: str) -> str:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            await meanwhile()
        return await super().hash(password)


async def test_a_race_lost_at_the_unique_index_is_refused_on_the_field_it_lost(
    registering: Registering,
) -> None:
    uscc = make_uscc()
    rival = cardless(uscc=uscc)
    racing = Meanwhile(lambda: submit_cardless(rival, registering.deps))
    deps = Registration(registering.service, registering.deps.settings, racing)
    with pytest.raises(DomainError) as raised:
        await submit_cardless(cardless(uscc=uscc), deps)
    assert raised.value.code is ErrorCode.CONFLICT
    assert [f.path for f in raised.value.fields] == ["enterprise.uscc"]
    assert await stored(registering) == 1


async def test_of_two_resubmissions_at_once_the_second_is_refused(
    registering: Registering,
) -> None:
    submitted, view = await returned(registering)
    request = resubmission(view, submitted)
    racing = Meanwhile(lambda: resubmit_cardless(request, registering.deps))
    deps = Registration(registering.service, registering.deps.settings, racing)
    with pytest.raises(DomainError) as raised:
        await resubmit_cardless(request, deps)
    assert raised.value.code is ErrorCode.CONFLICT
    assert "pending" in raised.value.message
    shown = await show_application(
        ShowApplication(application_id=view.application_id, claim_secret=view.claim_secret),
        registering.deps,
    )
    assert (shown.state, shown.attempt) == (ApplicationState.PENDING, 2)


async def test_only_a_returned_application_can_be_resubmitted(registering: Registering) -> None:
    submitted = cardless()
    pending = await submit_cardless(submitted, registering.deps)
    with pytest.raises(DomainError) as raised:
        await resubmit_cardless(resubmission(pending, submitted), registering.deps)
    assert raised.value.code is ErrorCode.CONFLICT
    assert "pending" in raised.value.message


async def test_a_returned_application_resubmitted_goes_back_to_review_as_its_next_attempt(
    registering: Registering,
) -> None:
    submitted, view = await returned(registering)
    registering.clock.advance(timedelta(days=1))
    corrected = submitted.model_copy(
        update={
            "enterprise": submitted.enterprise.model_copy(
                update={"address": "重庆市渝北区金开大道99号"}
            )
        }
    )
    again = await resubmit_cardless(resubmission(view, corrected), registering.deps)
    assert (again.state, again.attempt, again.reason) == (ApplicationState.PENDING, 2, None)
    assert again.submitted_at == registering.clock.now()
    *_, announced, requested = await staged(registering.service)
    assert announced.type == contract.RESUBMITTED.type
    asked = review.REQUESTED.parse(requested)
    assert asked.attempt == 2
    assert asked.details["enterprise"]["address"] == "重庆市渝北区金开大道99号"


async def test_a_resubmission_keeps_its_uscc(registering: Registering) -> None:
    submitted, view = await returned(registering)
    moved = submitted.model_copy(
        update={"enterprise": submitted.enterprise.model_copy(update={"uscc": make_uscc()})}
    )
    with pytest.raises(DomainError) as raised:
        await resubmit_cardless(resubmission(view, moved), registering.deps)
    assert raised.value.code is ErrorCode.INVALID
    assert [f.path for f in raised.value.fields] == ["enterprise.uscc"]


async def test_a_resubmission_may_not_take_an_account_name_another_application_asks_for(
    registering: Registering,
) -> None:
    other = await submit_cardless(cardless(), registering.deps)
    submitted, view = await returned(registering)
    renamed = submitted.model_copy(
        update={"admin": submitted.admin.model_copy(update={"account": other.admin_account})}
    )
    with pytest.raises(DomainError) as raised:
        await resubmit_cardless(resubmission(view, renamed), registering.deps)
    assert [f.path for f in raised.value.fields] == ["admin.account"]


async def test_resubmitting_an_unknown_application_is_not_found(
    registering: Registering,
) -> None:
    submitted = cardless()
    request = ResubmitCardless(
        application_id="app_unknown123",
        claim_secret="x" * 43,
        enterprise=submitted.enterprise,
        admin=submitted.admin,
    )
    with pytest.raises(DomainError) as raised:
        await resubmit_cardless(request, registering.deps)
    assert raised.value.code is ErrorCode.NOT_FOUND


async def test_a_decision_on_an_earlier_attempt_is_ignored(registering: Registering) -> None:
    submitted, view = await returned(registering)
    await resubmit_cardless(resubmission(view, submitted), registering.deps)
    before = await staged(registering.service)
    await decide(registering, view, Decision.APPROVE, attempt=1)
    shown = await show_application(
        ShowApplication(application_id=view.application_id, claim_secret=view.claim_secret),
        registering.deps,
    )
    assert (shown.state, shown.attempt) == (ApplicationState.PENDING, 2)
    assert await staged(registering.service) == before


async def test_a_decision_is_applied_and_announced_once(registering: Registering) -> None:
    view = await submit_cardless(cardless(), registering.deps)
    registering.clock.advance(timedelta(hours=5))
    approval = decided(registering, view, Decision.APPROVE)
    first = await deliver(registering.service, routes, registering.deps, approval)
    again = await deliver(registering.service, routes, registering.deps, approval)
    assert (first.acked, again.acked) == (True, True)
    shown = await show_application(
        ShowApplication(application_id=view.application_id, claim_secret=view.claim_secret),
        registering.deps,
    )
    assert (shown.state, shown.decided_at) == (ApplicationState.APPROVED, registering.clock.now())
    approvals = [e for e in await staged(registering.service) if e.type == contract.APPROVED.type]
    assert len(approvals) == 1
    assert contract.APPROVED.parse(approvals[0]).admin_account == view.admin_account


async def test_a_returned_application_shows_the_reviewers_reason(
    registering: Registering,
) -> None:
    _, view = await returned(registering)
    shown = await show_application(
        ShowApplication(application_id=view.application_id, claim_secret=view.claim_secret),
        registering.deps,
    )
    assert (shown.state, shown.reason) == (ApplicationState.RETURNED, "address is incomplete")
    [event] = [e for e in await staged(registering.service) if e.type == contract.RETURNED.type]
    assert contract.RETURNED.parse(event).reason == "address is incomplete"


async def test_onboarding_details_are_handed_over_only_for_an_approved_application(
    registering: Registering,
) -> None:
    submitted = cardless()
    view = await submit_cardless(submitted, registering.deps)
    request = OnboardingDetails(application_id=view.application_id)
    with pytest.raises(DomainError) as raised:
        await onboarding_details(request, registering.deps)
    assert raised.value.code is ErrorCode.CONFLICT
    await decide(registering, view, Decision.APPROVE)
    onboarding = await onboarding_details(request, registering.deps)
    assert onboarding.admin_account == submitted.admin.account
    assert onboarding.admin_id_number == ID_NUMBER
    assert onboarding.enterprise == submitted.enterprise
    assert await PASSWORDS.verify(onboarding.password_hash, PASSWORD)
    with pytest.raises(DomainError) as unknown:
        await onboarding_details(
            OnboardingDetails(application_id="app_unknown123"), registering.deps
        )
    assert unknown.value.code is ErrorCode.NOT_FOUND


async def test_a_submission_takes_eight_statements_in_five_transactions(
    registering: Registering, tmp_path: Path
) -> None:
    """Registration vets (one SELECT), stores and stages (one write), relays (read, delete);
    review opens the task in its inbox transaction. Accounts' onboarding check is not counted."""
    async with local_service(
        "review", review_metadata, tmp_path, clock=registering.clock
    ) as reviewing:
        review_deps = Review(service=reviewing, settings=ReviewSettings())
        with statements(registering.service, reviewing) as executed:
            await submit_cardless(cardless(), registering.deps)
            [_, requested] = await relay(registering.service)
            assert (await deliver(reviewing, review_handlers.routes, review_deps, requested)).acked
    assert [kind_of(s) for s in executed] == [
        "BEGIN DEFERRED",
        "SELECT applications",
        "BEGIN IMMEDIATE",
        "INSERT applications",
        "INSERT outbox",
        "INSERT outbox",
        "BEGIN DEFERRED",
        "SELECT outbox",
        "BEGIN IMMEDIATE",
        "DELETE outbox",
        "BEGIN IMMEDIATE",
        "INSERT inbox",
        "INSERT tasks",
    ]


async def test_a_resubmission_takes_five_statements_in_two_transactions(
    registering: Registering,
) -> None:
    submitted, view = await returned(registering)
    with statements(registering.service) as executed:
        await resubmit_cardless(resubmission(view, submitted), registering.deps)
    assert [kind_of(s) for s in executed] == [
        "BEGIN DEFERRED",
        "SELECT applications",  # the claim
        "SELECT applications",
        "BEGIN IMMEDIATE",
        "UPDATE applications",
        "INSERT outbox",
        "INSERT outbox",
    ]


async def test_applying_a_decision_takes_three_statements_in_one_transaction(
    registering: Registering,
) -> None:
    view = await submit_cardless(cardless(), registering.deps)
    with statements(registering.service) as executed:
        await decide(registering, view, Decision.APPROVE)
    assert [kind_of(s) for s in executed] == [
        "BEGIN IMMEDIATE",
        "INSERT inbox",
        "UPDATE applications",
        "INSERT outbox",
    ]


def withdrawal(view: ApplicationView, reason: str) -> CloudEvent:
    """The event accounts publishes when it cannot register an approved application."""
    data = contract.ApplicationWithdrawn(
        application_id=view.application_id,
        uscc=view.uscc,
        admin_account=view.admin_account,
        reason=reason,
    )
    return contract.WITHDRAWN.make(data, subject=view.uscc, source="urn:test:accounts")


async def test_an_approval_accounts_could_not_apply_shows_withdrawn_with_its_reason(
    registering: Registering,
) -> None:
    submitted = cardless()
    view = await submit_cardless(submitted, registering.deps)
    await decide(registering, view, Decision.APPROVE)
    reason = f"the account name {view.admin_account} was taken after this application was submitted"
    delivered = await deliver(
        registering.service, routes, registering.deps, withdrawal(view, reason)
    )
    assert delivered.acked
    shown = await show_application(
        ShowApplication(application_id=view.application_id, claim_secret=view.claim_secret),
        registering.deps,
    )
    assert (shown.state, shown.reason) == (ApplicationState.WITHDRAWN, reason)
    # Withdrawn holds nothing: the applicant may apply again for the same enterprise.
    again = await submit_cardless(cardless(uscc=view.uscc), registering.deps)
    assert again.state is ApplicationState.PENDING


async def test_a_withdrawal_of_an_application_not_approved_changes_nothing(
    registering: Registering,
) -> None:
    view = await submit_cardless(cardless(), registering.deps)
    delivered = await deliver(
        registering.service, routes, registering.deps, withdrawal(view, "forged")
    )
    assert delivered.acked
    shown = await show_application(
        ShowApplication(application_id=view.application_id, claim_secret=view.claim_secret),
        registering.deps,
    )
    assert (shown.state, shown.reason) == (ApplicationState.PENDING, None)
