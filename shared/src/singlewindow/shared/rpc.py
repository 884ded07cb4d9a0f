"""Request/reply plumbing: every request gets exactly one JSON reply, a result or a typed error."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, overload

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError
from singlewindow.shared.errors import DomainError, ErrorBody, ErrorCode, FieldError, invalid
from singlewindow.shared.observability import REQUEST_SECONDS, REQUESTS, bind_correlation_id

MAX_REQUEST_BYTES = 64 * 1024
"""No command of the platform needs more; anything larger is refused unread."""

log = structlog.get_logger("singlewindow.rpc")

RequestT = TypeVar("RequestT", bound=BaseModel)
ModelT = TypeVar("ModelT", bound=BaseModel)


class Request(BaseModel):
    """Base of request bodies: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class AuthenticatedRequest(Request):
    """A request made inside a session."""

    token: str


def encode_result(result: BaseModel | None) -> bytes:
    """The JSON reply of a request that succeeded."""
    payload = None if result is None else result.model_dump(mode="json")
    return json.dumps({"result": payload}, ensure_ascii=False).encode()


def encode_error(error: ErrorBody) -> bytes:
    """The JSON reply of a request that was refused."""
    return json.dumps({"error": error.model_dump(mode="json")}, ensure_ascii=False).encode()


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
    surrogates = tuple(
        FieldError(path=path, message="contains a lone surrogate (\\ud800-\\udfff), not text")
        for path in _lone_surrogate_paths(raw, "")
    )
    if surrogates:
        names = ", ".join(field.path for field in surrogates)
        raise DomainError(ErrorCode.INVALID, f"invalid fields: {names}", surrogates)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc) from exc


def _lone_surrogate_paths(value: object, path: str) -> Iterator[str]:
    # json.loads turns an unpaired \ud800 escape into a str that pydantic passes through plain
    # `str` fields and that fails later, as an internal error, wherever it is encoded (hashing a
    # token, SQLite, the reply). Paths are spelt as pydantic's errors spell them.
    if isinstance(value, str):
        if not _encodes(value):
            yield path or "(body)"
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _encodes(key):
                yield path or "(body)"
                continue
            yield from _lone_surrogate_paths(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _lone_surrogate_paths(item, f"{path}.{index}" if path else str(index))


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


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
