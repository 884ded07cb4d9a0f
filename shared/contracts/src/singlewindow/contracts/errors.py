"""The typed error reply every request handler sends instead of a stack trace or a hang."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError


class ErrorCode(StrEnum):
    """Stable error codes: clients branch on these, never on the message text."""

    INVALID = "invalid"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    CONFLICT = "conflict"
    NOT_FOUND = "not_found"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    ACTION_REQUIRED = "action_required"
    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    """The request's idempotency key was already used for a different request."""
    IN_PROGRESS = "in_progress"
    """A request with the same idempotency key is still running: send it again in a moment."""
    WRONG_SESSION = "wrong_session"
    """A staff session on an enterprise subject, or an enterprise session on a staff subject."""
    # Card errors, each its own so a client can tell the user exactly what to do.
    NO_READER = "no_reader"
    NO_CARD = "no_card"
    CARD_REMOVED = "card_removed"
    CARD_BUSY = "card_busy"
    NOT_AN_EPORT_CARD = "not_an_eport_card"
    PIN_INCORRECT = "pin_incorrect"
    CARD_BLOCKED = "card_blocked"
    CARD_REFUSED = "card_refused"
    """The card's certificate or signature did not pass the platform's checks."""


class FieldError(BaseModel):
    """One offending field, named by its dotted path in the request (e.g. `enterprise.uscc`)."""

    model_config = ConfigDict(frozen=True)

    path: str
    message: str


class ErrorBody(BaseModel):
    """The error part of a reply."""

    model_config = ConfigDict(frozen=True)

    code: ErrorCode
    message: str
    fields: tuple[FieldError, ...] = ()


class DomainError(Exception):
    """A refusal the caller can act on; handlers turn it into an error reply."""

    def __init__(self, code: ErrorCode, message: str, fields: tuple[FieldError, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields

    def body(self) -> ErrorBody:
        """The error reply body for this refusal."""
        return ErrorBody(code=self.code, message=self.message, fields=self.fields)


def field_errors(exc: ValidationError, *, prefix: str = "") -> tuple[FieldError, ...]:
    """Turn pydantic's errors into path-named field errors in plain words."""
    errors: list[FieldError] = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "(body)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append(FieldError(path=prefix + path, message=message))
    return tuple(errors)


def invalid(exc: ValidationError, *, prefix: str = "") -> DomainError:
    """A DomainError naming every field pydantic refused."""
    fields = field_errors(exc, prefix=prefix)
    names = ", ".join(f.path for f in fields)
    return DomainError(ErrorCode.INVALID, f"invalid fields: {names}", fields)
