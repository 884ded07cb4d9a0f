"""Registration rules, pure: which state an application may move to, and why not."""

from __future__ import annotations

import secrets

from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.registration import ApplicationState
from singlewindow.contracts.review import Decision

CARDLESS = "registration.cardless"
"""The review kind of a cardless registration."""

OPEN_STATES = (ApplicationState.PENDING, ApplicationState.RETURNED)
"""An application in these states holds its USCC: no other may be submitted for it."""

OUTCOMES = {
    Decision.APPROVE: ApplicationState.APPROVED,
    Decision.REJECT: ApplicationState.REJECTED,
    Decision.RETURN: ApplicationState.RETURNED,
}


def new_application_id() -> str:
    """An unguessable application id: it is the applicant's claim ticket."""
    return f"app_{secrets.token_urlsafe(12)}"


def check_resubmission(state: ApplicationState, uscc: str, new_uscc: str) -> None:
    """Refuse a resubmission unless the application was returned and keeps its USCC."""
    if state is not ApplicationState.RETURNED:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"application is {state.value}; only an application returned for correction "
            "can be resubmitted",
        )
    if new_uscc != uscc:
        raise DomainError(
            ErrorCode.INVALID,
            "the USCC cannot change on resubmission; submit a new application instead",
            (FieldError(path="enterprise.uscc", message=f"must stay {uscc}"),),
        )


def outcome_of(decision: Decision) -> ApplicationState:
    """The application state a review decision leads to."""
    return OUTCOMES[decision]
