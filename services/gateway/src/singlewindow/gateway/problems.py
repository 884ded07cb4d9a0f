"""Refusals as RFC 9457 `application/problem+json`, each platform code at a fitting status."""

from __future__ import annotations

from http import HTTPStatus

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from singlewindow.contracts.errors import ErrorCode, FieldError

PROBLEM_TYPE_ROOT = "https://singlewindow.example/problems/"
"""Where each code's `type` URI points: the code is its last segment."""
PROBLEM_JSON = "application/problem+json"

STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID: 422,
    ErrorCode.MALFORMED: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.CONFLICT: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.ACTION_REQUIRED: 403,
    ErrorCode.THROTTLED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
    ErrorCode.IN_PROGRESS: 409,
    ErrorCode.WRONG_SESSION: 403,
    ErrorCode.NO_READER: 503,
    ErrorCode.NO_CARD: 409,
    ErrorCode.CARD_REMOVED: 409,
    ErrorCode.CARD_BUSY: 409,
    ErrorCode.NOT_AN_EPORT_CARD: 422,
    ErrorCode.PIN_INCORRECT: 401,
    ErrorCode.CARD_BLOCKED: 403,
    ErrorCode.CARD_REFUSED: 401,
}
"""The HTTP status of each platform error code (a test pins that every code has one)."""


class ProblemField(BaseModel):
    """One offending field of the request, by its dotted path."""

    path: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem: `code` is the platform's stable error code, `errors` its fields."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[ProblemField] = []
    request_id: str | None = None
    unreachable: bool | None = None
    """True when the gateway itself found no service behind the endpoint (not a refusal)."""


def problem(
    code: ErrorCode,
    detail: str,
    fields: tuple[FieldError, ...] = (),
    *,
    status: int | None = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    unreachable: bool | None = None,
) -> JSONResponse:
    """The problem response of a refusal with `code` (at its mapped status unless told)."""
    status = status or STATUS.get(code, 500)
    body = Problem(
        type=PROBLEM_TYPE_ROOT + code.value,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        code=code.value,
        errors=[ProblemField(path=f.path, message=f.message) for f in fields],
        request_id=request_id,
        unreachable=unreachable,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )
