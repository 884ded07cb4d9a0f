"""Request/reply plumbing: every request gets exactly one JSON reply, a result or a typed error."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, overload

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError
from singlewindow.shared.endpoints import Endpoint
from singlewindow.shared.errors import DomainError, ErrorBody, ErrorCode, invalid
from singlewindow.shared.observability import REQUEST_SECONDS, REQUESTS, bind_correlation_id

MAX_REQUEST_BYTES = 64 * 1024
"""No command of the platform needs more; anything larger is refused unread."""

log = structlog.get_logger("singlewindow.rpc")

RequestT = TypeVar("RequestT", bound=BaseModel)
ModelT = TypeVar("ModelT", bound=BaseModel)
ReplyT = TypeVar("ReplyT", bound=BaseModel | None)


class Request(BaseModel):
    """Base of request bodies: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class AuthenticatedRequest(Request):
    """A request made inside a session."""

    token: str


def encode_result(result: BaseModel | None) -> bytes:
    """The JSON reply of a request that succeeded."""
    if result is None:
        return b'{"result":null}'
    return b'{"result":' + result.model_dump_json().encode() + b"}"


def encode_error(error: ErrorBody) -> bytes:
    """The JSON reply of a request that was refused."""
    return b'{"error":' + error.model_dump_json().encode() + b"}"


def parse_request(body: bytes, model: type[RequestT]) -> RequestT:
    """Parse a request body, refusing oversized, malformed or invalid input with field errors.

    pydantic's own JSON parser reads the body: it refuses nesting too deep to be a request and
    lone surrogates as malformed JSON, where `json.loads` would recurse or let them through.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise DomainError(
            ErrorCode.TOO_LARGE,
            f"request is {len(body)} bytes; the limit is {MAX_REQUEST_BYTES} bytes",
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        [first, *_] = exc.errors(include_url=False)
        if first["type"] == "json_invalid":
            detail = first["msg"].removeprefix("Invalid JSON: ")
            raise DomainError(ErrorCode.MALFORMED, f"request is not valid JSON: {detail}") from exc
        if first["type"] == "model_type" and not first["loc"]:
            raise DomainError(ErrorCode.MALFORMED, "request must be a JSON object") from exc
        raise invalid(exc) from exc


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


@overload
def decode_reply(data: bytes, model: type[ModelT]) -> ModelT: ...
@overload
def decode_reply(data: bytes, model: None) -> None: ...
def decode_reply(data: bytes, model: type[ModelT] | None) -> ModelT | None:
    """Read a reply made by `encode_result`, raising DomainError for an error reply."""
    reply: dict[str, Any] = json.loads(data)
    if "error" in reply:
        error = ErrorBody.model_validate(reply["error"])
        raise DomainError(error.code, error.message, error.fields)
    return None if model is None else model.model_validate(reply["result"])


def decode_result(endpoint: Endpoint[Any, ReplyT], data: bytes) -> ReplyT:
    """The typed result of a reply to a request sent to `endpoint`; a refusal is raised."""
    model = cast("type[BaseModel] | None", endpoint.reply)
    return cast(ReplyT, decode_reply(data, model))
