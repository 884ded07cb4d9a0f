"""Request/reply plumbing: every request gets exactly one JSON reply, a result or a typed error."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from singlewindow.shared.errors import DomainError, ErrorBody, ErrorCode, invalid
from singlewindow.shared.observability import REQUEST_SECONDS, REQUESTS, bind_correlation_id
from singlewindow.shared.wire import (
    MAX_REQUEST_BYTES,
    AuthenticatedRequest,
    Request,
    decode_reply,
    encode_error,
    encode_result,
)

__all__ = [
    "MAX_REQUEST_BYTES",
    "AuthenticatedRequest",
    "Request",
    "decode_reply",
    "encode_error",
    "encode_result",
    "parse_request",
    "respond",
]

log = structlog.get_logger("singlewindow.rpc")

RequestT = TypeVar("RequestT", bound=BaseModel)


def parse_request(body: bytes, model: type[RequestT]) -> RequestT:
    """Parse a request body, refusing oversized, malformed or invalid input with field errors."""
    if len(body) > MAX_REQUEST_BYTES:
        raise DomainError(
            ErrorCode.TOO_LARGE,
            f"request is {len(body)} bytes; the limit is {MAX_REQUEST_BYTES} bytes",
        )
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DomainError(ErrorCode.MALFORMED, f"request is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DomainError(ErrorCode.MALFORMED, "request must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc) from exc


async def respond(
    subject: str,
    body: bytes,
    correlation_id: str | None,
    model: type[RequestT],
    handle: Callable[[RequestT], Awaitable[BaseModel | None]],
) -> bytes:
    """Parse `body` as `model`, run `handle`, and encode its result or its refusal."""
    bind_correlation_id(correlation_id)
    started = time.perf_counter()
    outcome = "ok"
    try:
        request = parse_request(body, model)
        return encode_result(await handle(request))
    except DomainError as exc:
        outcome = exc.code.value
        log.info("request refused", subject=subject, code=exc.code.value, reason=exc.message)
        return encode_error(exc.body())
    except Exception:
        outcome = ErrorCode.INTERNAL.value
        log.exception("request failed", subject=subject)
        return encode_error(
            ErrorBody(
                code=ErrorCode.INTERNAL, message="internal error; the request was not applied"
            )
        )
    finally:
        REQUESTS.labels(subject=subject, outcome=outcome).inc()
        REQUEST_SECONDS.labels(subject=subject).observe(time.perf_counter() - started)
