"""Answering a request: parse it, run the handler, reply with its result or typed refusal, and
count and log what happened. The envelope itself is `singlewindow.contracts.wire`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.errors import DomainError, ErrorBody, ErrorCode
from singlewindow.contracts.wire import encode_error, encode_result, parse_request
from singlewindow.runtime.idempotency import Idempotency, idempotency_key
from singlewindow.runtime.observability import REQUEST_SECONDS, REQUESTS, bind_correlation_id

log = structlog.get_logger("singlewindow.rpc")

RequestT = TypeVar("RequestT", bound=BaseModel)


async def respond(
    endpoint: Endpoint[RequestT, Any],
    body: bytes,
    correlation_id: str | None,
    handle: Callable[[RequestT], Awaitable[BaseModel | None]],
    *,
    headers: Mapping[str, str] | None = None,
    idempotency: Idempotency | None = None,
) -> bytes:
    """Parse `body` as the endpoint's request, run `handle`, and encode its result or refusal.

    With `idempotency` and an `Idempotency-Key` header on a state-changing endpoint, a retry
    gets the first answer (`idempotency.py`)."""
    bind_correlation_id(correlation_id)
    started = time.perf_counter()
    outcome = "ok"
    subject = endpoint.subject
    try:
        key = idempotency_key(endpoint, headers) if idempotency is not None else None
        request = parse_request(body, endpoint.request)
        if key is None or idempotency is None:
            return encode_result(await handle(request))

        async def run() -> bytes:
            return encode_result(await handle(request))

        caller = getattr(request, "token", None)
        return await idempotency.answer(endpoint, key, caller, body, run)
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
