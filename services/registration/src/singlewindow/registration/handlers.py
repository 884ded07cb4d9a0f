"""The registration service's handlers: open a unit of work, apply the rules, reply."""

from __future__ import annotations

import json

from singlewindow.contracts import accounts, review
from singlewindow.contracts import registration as contract
from singlewindow.contracts.common import MaskedEnterprise, MaskedPerson
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.events import CloudEvent, EventSpec
from singlewindow.contracts.registration import (
    ApplicationState,
    ApplicationSubmitted,
    ApplicationView,
    ApplicationWithdrawn,
    CardlessApplication,
    MaskedAdmin,
    Onboarding,
    OnboardingDetails,
    ResubmitCardless,
    ShowApplication,
    SubmittedApplication,
)
from singlewindow.contracts.review import ReviewDecided, ReviewRequested
from singlewindow.registration import repository
from singlewindow.registration.dependencies import Registration
from singlewindow.registration.domain import (
    CARDLESS,
    account_taken,
    check_claim,
    check_resubmission,
    check_unclaimed,
    claim_digest,
    new_application_id,
    new_claim_secret,
    outcome_of,
)
from singlewindow.registration.repository import Applications
from singlewindow.runtime.db import IntegrityError
from singlewindow.runtime.passwords import policy_problem
from singlewindow.runtime.routes import Routes
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

routes = Routes[Registration](
    contract.SERVICE, asks=(accounts.ONBOARDING_CHECK,), publishes=(review.REQUESTED,)
)


@routes.serve(contract.SUBMIT_CARDLESS)
async def submit_cardless(
    application: CardlessApplication, deps: Registration
) -> SubmittedApplication:
    """Submit a cardless application for review; the reply alone has its claim secret."""
    _check_password(deps, application)
    uscc, account = application.enterprise.uscc, application.admin.account
    holders = await deps.service.db.read(repository.holders_of, uscc, account)
    check_unclaimed(holders, uscc, account, holder=None)
    password_hash = await _cleared(deps, application)
    claim_secret = new_claim_secret()
    try:
        view = await deps.service.db.run(
            _store_submission,
            deps,
            new_application_id(),
            application,
            password_hash,
            claim_digest(claim_secret),
        )
    except IntegrityError as exc:
        raise await _lost_race(deps, application, holder=None) from exc
    return SubmittedApplication(**view.model_dump(), claim_secret=claim_secret)


@routes.serve(contract.RESUBMIT_CARDLESS)
async def resubmit_cardless(request: ResubmitCardless, deps: Registration) -> ApplicationView:
    """Resubmit an application that was returned for correction (its applicant only)."""
    application = CardlessApplication(enterprise=request.enterprise, admin=request.admin)
    application_id = request.application_id
    uscc, account = application.enterprise.uscc, application.admin.account
    async with deps.service.db.reading() as connection:
        applications = Applications(connection, deps.service.clock)
        _claimed(application_id, await applications.claimed(application_id), request.claim_secret)
        holders = await applications.holders_of(uscc, account, including=application_id)
    current = next((a for a in holders if a.application_id == application_id), None)
    if current is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no application {application_id}")
    check_resubmission(current.state, current.uscc, uscc)
    _check_password(deps, application)
    check_unclaimed(holders, uscc, account, holder=application_id)
    password_hash = await _cleared(deps, application)
    try:
        async with deps.service.db.transaction() as connection:
            applications = Applications(connection, deps.service.clock)
            view = await applications.resubmit(application_id, application, password_hash)
            if view is None:  # decided or resubmitted meanwhile: say what it is now
                latest = await applications.get(application_id)
                assert latest is not None
                check_resubmission(latest.state, latest.uscc, uscc)
                raise DomainError(ErrorCode.CONFLICT, "application changed; show it and retry")
            await _announce(deps, connection, contract.RESUBMITTED, view, application)
    except IntegrityError as exc:
        raise await _lost_race(deps, application, holder=application_id) from exc
    return view


@routes.serve(contract.SHOW_APPLICATION)
async def show_application(request: ShowApplication, deps: Registration) -> ApplicationView:
    """Show an application's state and, if rejected or returned, the reason (its applicant only)."""
    found = await deps.service.db.read(repository.claimed, request.application_id)
    return _claimed(request.application_id, found, request.claim_secret)


@routes.serve(contract.ONBOARDING_DETAILS)
async def onboarding_details(request: OnboardingDetails, deps: Registration) -> Onboarding:
    """Hand an approved application's full details and credential to the accounts service."""
    async with deps.service.db.reading() as connection:
        found = await Applications(connection, deps.service.clock).details(request.application_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no application {request.application_id}")
    view, details, password_hash = found
    if view.state is not ApplicationState.APPROVED:
        raise DomainError(ErrorCode.CONFLICT, f"application is {view.state.value}, not approved")
    stored = json.loads(details)
    admin = stored["admin"]
    return Onboarding(
        application_id=view.application_id,
        enterprise=stored["enterprise"],
        admin_account=admin["account"],
        admin_name=admin["name"],
        admin_id_type=admin["id_type"],
        admin_id_number=admin["id_number"],
        admin_mobile=admin["mobile"],
        admin_email=admin["email"],
        password_hash=password_hash,
    )


@routes.consume(contract.REVIEW_DECISIONS)
async def apply_review_decision(
    decided: ReviewDecided, event: CloudEvent, connection: AsyncConnection, deps: Registration
) -> None:
    """Record a reviewer's decision on a cardless application and announce the outcome."""
    if decided.kind != CARDLESS:
        return
    view = await Applications(connection, deps.service.clock).decide(
        decided.reference, decided.attempt, outcome_of(decided.decision), decided.reason
    )
    if view is None:
        return  # a decision on an earlier attempt, or one already applied
    spec = {
        ApplicationState.APPROVED: contract.APPROVED,
        ApplicationState.REJECTED: contract.REJECTED,
        ApplicationState.RETURNED: contract.RETURNED,
    }[view.state]
    await deps.service.emit(
        connection,
        spec,
        contract.ApplicationDecided(
            application_id=view.application_id,
            uscc=view.uscc,
            enterprise_name=view.enterprise_name,
            admin_account=view.admin_account,
            reason=view.reason,
        ),
        subject=view.uscc,
    )


@routes.consume(contract.WITHDRAWALS)
async def withdraw_approved_application(
    withdrawn: ApplicationWithdrawn,
    event: CloudEvent,
    connection: AsyncConnection,
    deps: Registration,
) -> None:
    """Mark an approved application withdrawn, with accounts' reason, for its applicant to see."""
    await Applications(connection, deps.service.clock).withdraw(
        withdrawn.application_id, withdrawn.reason
    )


def _claimed(
    application_id: str, found: tuple[ApplicationView, str | None] | None, claim_secret: str
) -> ApplicationView:
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no application {application_id}")
    view, stored_digest = found
    check_claim(application_id, stored_digest, claim_secret)
    return view


def _check_password(deps: Registration, application: CardlessApplication) -> None:
    admin = application.admin
    problem = policy_problem(
        admin.password, account=admin.account, min_length=deps.settings.password_min_length
    )
    if problem:
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: admin.password {problem}",
            (FieldError(path="admin.password", message=f"password {problem}"),),
        )


async def _cleared(deps: Registration, application: CardlessApplication) -> str:
    """Refuse an application accounts would refuse at onboarding; return its password hash."""
    uscc, admin = application.enterprise.uscc, application.admin
    check = await _onboarding_check(deps, uscc, admin.account)
    if check.uscc_registered:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"enterprise {uscc} already has an administrator; log in, or ask the administrator",
            (FieldError(path="enterprise.uscc", message="already has an administrator"),),
        )
    if check.account_taken:
        raise account_taken(admin.account)
    return await deps.passwords.hash(admin.password)


async def _onboarding_check(
    deps: Registration, uscc: str, account: str
) -> accounts.OnboardingCheckView:
    try:
        return await deps.service.ask(
            accounts.ONBOARDING_CHECK,
            accounts.OnboardingCheck(uscc=uscc, account=account),
            wait=deps.settings.accounts_timeout_seconds,
        )
    except DomainError as exc:
        raise DomainError(
            exc.code, f"{exc.message}; nothing was stored, try again shortly"
        ) from exc


async def _lost_race(
    deps: Registration, application: CardlessApplication, *, holder: str | None
) -> DomainError:
    """Which unique rule a concurrent application won: its USCC, or its account name."""
    uscc, account = application.enterprise.uscc, application.admin.account
    async with deps.service.db.reading() as connection:
        holders = await Applications(connection, deps.service.clock).holders_of(uscc, account)
    try:
        check_unclaimed(holders, uscc, account, holder=holder)
    except DomainError as refusal:
        return refusal
    return account_taken(account)


def _store_submission(
    connection: Connection,
    deps: Registration,
    application_id: str,
    application: CardlessApplication,
    password_hash: str,
    claim: str,
) -> ApplicationView:
    """A cardless submission's one write transaction: the application and its two events."""
    view = repository.add(
        connection, deps.service.clock, application_id, CARDLESS, application, password_hash, claim
    )
    submitted, requested = _announcements(view, application)
    deps.service.emit_sync(connection, contract.SUBMITTED, submitted, subject=view.uscc)
    deps.service.emit_sync(connection, review.REQUESTED, requested, subject=view.uscc)
    return view


def _announcements(
    view: ApplicationView,
    application: CardlessApplication,
) -> tuple[ApplicationSubmitted, ReviewRequested]:
    """The events announcing a (re)submission: to anyone, and to review."""
    admin = application.admin
    data = ApplicationSubmitted(
        application_id=view.application_id,
        kind=view.kind,
        attempt=view.attempt,
        enterprise=MaskedEnterprise.of(application.enterprise),
        admin=MaskedAdmin(account=admin.account, **MaskedPerson.of(admin).model_dump()),
    )
    requested = ReviewRequested(
        kind=view.kind,
        reference=view.application_id,
        attempt=view.attempt,
        uscc=view.uscc,
        title=view.enterprise_name,
        details=data.model_dump(mode="json"),
    )
    return data, requested


async def _announce(
    deps: Registration,
    connection: AsyncConnection,
    spec: EventSpec[ApplicationSubmitted],
    view: ApplicationView,
    application: CardlessApplication,
) -> None:
    data, requested = _announcements(view, application)
    await deps.service.emit(connection, spec, data, subject=view.uscc)
    await deps.service.emit(connection, review.REQUESTED, requested, subject=view.uscc)
