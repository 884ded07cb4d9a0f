"""Contracts of the registration service: applications for an enterprise administrator."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from singlewindow.contracts import review
from singlewindow.contracts.common import (
    AccountHolder,
    EnterpriseInfo,
    MaskedEnterprise,
    MaskedPerson,
)
from singlewindow.contracts.endpoints import Audience, Endpoint, Subscription
from singlewindow.contracts.events import DAY, MIB, Discard, EventData, EventSpec, StreamSpec
from singlewindow.contracts.wire import Request

SERVICE = "registration"
QUEUE = "registration"
STREAM = StreamSpec(
    name="SW_REGISTRATION",
    subjects=("sw.events.registration.>",),
    description=(
        "Registration applications: submitted, resubmitted, approved, rejected, returned,"
        " withdrawn. Kept 365 days; a full stream refuses new events rather than dropping old"
        " ones, since an approval accounts has not applied yet is an enterprise not yet created"
    ),
    max_age_seconds=365 * DAY,
    max_bytes=512 * MIB,
    discard=Discard.NEW,
)


ApplicationId = Annotated[str, Field(strict=True, pattern=r"^app_[A-Za-z0-9_-]{8,40}$")]
ClaimSecret = Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9_-]{22,100}$")]
"""The applicant's secret for one application: given once, in the submit reply."""


class AdminInfo(AccountHolder):
    """The administrator account a cardless application asks for."""


class CardlessApplication(Request):
    """A cardless registration: enterprise basic information and the administrator's account."""

    enterprise: EnterpriseInfo
    admin: AdminInfo


class ResubmitCardless(CardlessApplication):
    """A returned application, corrected, with the claim secret its submission gave."""

    application_id: ApplicationId
    claim_secret: ClaimSecret


class ShowApplication(Request):
    """Ask for an application's state, with the claim secret its submission gave."""

    application_id: ApplicationId
    claim_secret: ClaimSecret


class ApplicationState(StrEnum):
    """Where an application stands."""

    PENDING = "pending"
    RETURNED = "returned"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    """Approved, but the enterprise could not be registered (`reason` says why)."""


class ApplicationView(BaseModel):
    """An application as its applicant sees it."""

    model_config = ConfigDict(frozen=True)

    application_id: str
    kind: str
    uscc: str
    enterprise_name: str
    admin_account: str
    state: ApplicationState
    reason: str | None
    attempt: int
    submitted_at: datetime
    decided_at: datetime | None


class SubmittedApplication(ApplicationView):
    """A new application, and the claim secret that alone shows or resubmits it.

    The platform keeps only a digest of the secret: it is in this reply and nowhere else."""

    claim_secret: str


class OnboardingDetails(Request):
    """Ask for an approved application's full details."""

    application_id: ApplicationId


class Onboarding(BaseModel):
    """Everything accounts needs to create the enterprise and its administrator."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    application_id: str
    enterprise: EnterpriseInfo
    admin_account: str
    admin_name: str
    admin_id_type: str
    admin_id_number: str
    admin_mobile: str
    admin_email: str | None
    password_hash: str


class MaskedAdmin(MaskedPerson):
    """The requested administrator as events show them."""

    account: str


class ApplicationSubmitted(EventData):
    """A cardless application was submitted (or corrected and resubmitted) for review."""

    application_id: str
    kind: str
    attempt: int
    enterprise: MaskedEnterprise
    admin: MaskedAdmin


class ApplicationDecided(EventData):
    """The review outcome of an application, as the applicant will see it."""

    application_id: str
    uscc: str
    enterprise_name: str
    admin_account: str
    reason: str | None


class ApplicationWithdrawn(EventData):
    """An approved application accounts could not apply, and why, in plain words."""

    application_id: str
    uscc: str
    admin_account: str
    reason: str


SUBMITTED = EventSpec(SERVICE, "submitted", 1, ApplicationSubmitted)
RESUBMITTED = EventSpec(SERVICE, "resubmitted", 1, ApplicationSubmitted)
APPROVED = EventSpec(SERVICE, "approved", 1, ApplicationDecided)
REJECTED = EventSpec(SERVICE, "rejected", 1, ApplicationDecided)
RETURNED = EventSpec(SERVICE, "returned", 1, ApplicationDecided)
WITHDRAWN = EventSpec(SERVICE, "withdrawn", 1, ApplicationWithdrawn)
"""Published by accounts, whose business it is to apply an approval, when it cannot (the USCC
or the account name was taken meanwhile); registration owns it, as review owns the requests
other services publish to it, so that contracts depend one way (accounts on registration)."""


SUBMIT_CARDLESS = Endpoint(
    SERVICE,
    "cardless.submit",
    CardlessApplication,
    SubmittedApplication,
    Audience.PUBLIC,
    changes_state=True,
)
RESUBMIT_CARDLESS = Endpoint(
    SERVICE,
    "cardless.resubmit",
    ResubmitCardless,
    ApplicationView,
    Audience.PUBLIC,
    changes_state=True,
)
SHOW_APPLICATION = Endpoint(
    SERVICE, "application.show", ShowApplication, ApplicationView, Audience.PUBLIC
)
ONBOARDING_DETAILS = Endpoint(
    SERVICE, "onboarding.details", OnboardingDetails, Onboarding, Audience.SERVICE
)

REVIEW_DECISIONS = Subscription(
    SERVICE,
    review.STREAM,
    review.DECIDED,
    "registration-review-decisions",
    "Apply reviewers' decisions on cardless applications",
)
WITHDRAWALS = Subscription(
    SERVICE,
    STREAM,
    WITHDRAWN,
    "registration-withdrawals",
    "Mark an approved application withdrawn when accounts could not register its enterprise",
)
