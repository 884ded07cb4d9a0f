"""Registration rules, pure: which state an application may move to, and why not."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.registration import ApplicationState, ApplicationView
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


def new_claim_secret() -> str:
    """The applicant's secret for one application: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def claim_digest(claim_secret: str) -> str:
    """What is stored of a claim secret: its SHA-256 (the secret is random, no salt needed)."""
    return hashlib.sha256(claim_secret.encode("ascii")).hexdigest()


def check_claim(application_id: str, stored_digest: str | None, claim_secret: str) -> None:
    """Refuse a request whose claim secret is not the one the application's submission gave."""
    if stored_digest is None or not hmac.compare_digest(stored_digest, claim_digest(claim_secret)):
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"the claim secret is not the one the submission of {application_id} gave",
            (FieldError(path="claim_secret", message="does not match this application"),),
        )


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


def check_unclaimed(
    applications: Iterable[ApplicationView], uscc: str, account: str, *, holder: str | None
) -> None:
    """Refuse an application whose USCC or account name (in any case) an open application holds,
    other than `holder`, the one being resubmitted."""
    others = [a for a in applications if a.state in OPEN_STATES and a.application_id != holder]
    if any(a.uscc == uscc for a in others):
        raise uscc_taken(uscc)
    if any(a.admin_account.casefold() == account.casefold() for a in others):
        raise account_taken(account)


def account_taken(account: str) -> DomainError:
    """The refusal of an account name in use, or asked for by an open application."""
    return DomainError(
        ErrorCode.CONFLICT,
        f"account name {account} is taken; choose another",
        (FieldError(path="admin.account", message="is taken"),),
    )


def uscc_taken(uscc: str) -> DomainError:
    """The refusal of a USCC an open application holds."""
    return DomainError(
        ErrorCode.CONFLICT,
        f"enterprise {uscc} already has a pending application; wait for its review",
        (FieldError(path="enterprise.uscc", message="already has a pending application"),),
    )
