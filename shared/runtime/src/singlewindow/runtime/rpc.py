"""Answering a request: parse it, run the handler, reply with its result or typed refusal, and
count and log what happened. The envelope itself is `singlewindow.contracts.wire`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.errors import DomainError, ErrorBody, ErrorCode
from singlewindow.contracts.wire import encode_error, encode_result, parse_request
from singlewindow.runtime.observability import REQUEST_SECONDS, REQUESTS, bind_correlation_id

log = structlog.get_logger("singlewindow.rpc")

RequestT = TypeVar("RequestT", bound=BaseModel)


async def respond(
    endpoint: Endpoint[RequestT, Any],
    body: bytes,
    correlation_id: str | None,
    handle: Callable[[RequestT], Awaitable[BaseModel | None]],
) -> bytes:
    """Parse `body` as the endpoint's request, run `handle`, and encode its result or refusal."""
    bind_correlation_id(correlation_id)
    started = time.perf_counter()
    outcome = "ok"
    subject = endpoint.subject
    try:
        request = parse_request(body, endpoint.request)
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
