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
from singlewindow.contracts.events import EventData, EventSpec, StreamSpec
from singlewindow.contracts.wire import Request

SERVICE = "registration"
QUEUE = "registration"
STREAM = StreamSpec(
    name="SW_REGISTRATION",
    subjects=("sw.events.registration.>",),
    description="Registration applications: submitted, resubmitted, approved, rejected, returned",
)


ApplicationId = Annotated[str, Field(strict=True, pattern=r"^app_[A-Za-z0-9_-]{8,40}$")]


class AdminInfo(AccountHolder):
    """The administrator account a cardless application asks for."""


class CardlessApplication(Request):
    """A cardless registration: enterprise basic information and the administrator's account."""

    enterprise: EnterpriseInfo
    admin: AdminInfo


class ResubmitCardless(CardlessApplication):
    """A returned application, corrected."""

    application_id: ApplicationId


class ShowApplication(Request):
    """Ask for an application's state."""

    application_id: ApplicationId


class ApplicationState(StrEnum):
    """Where an application stands."""

    PENDING = "pending"
    RETURNED = "returned"
    APPROVED = "approved"
    REJECTED = "rejected"


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


SUBMITTED = EventSpec(SERVICE, "submitted", 1, ApplicationSubmitted)
RESUBMITTED = EventSpec(SERVICE, "resubmitted", 1, ApplicationSubmitted)
APPROVED = EventSpec(SERVICE, "approved", 1, ApplicationDecided)
REJECTED = EventSpec(SERVICE, "rejected", 1, ApplicationDecided)
RETURNED = EventSpec(SERVICE, "returned", 1, ApplicationDecided)


SUBMIT_CARDLESS = Endpoint(
    SERVICE,
    "cardless.submit",
    CardlessApplication,
    ApplicationView,
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
