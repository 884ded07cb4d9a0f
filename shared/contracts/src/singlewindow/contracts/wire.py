"""The reply envelope and request bodies every client and service shares: a request is a JSON
object of its endpoint's model; its reply is `{"result": ...}` or `{"error": ErrorBody}`."""

from __future__ import annotations

import json
from typing import Any, TypeVar, cast, overload

from pydantic import BaseModel, ConfigDict, ValidationError
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.errors import DomainError, ErrorBody, ErrorCode, FieldError, invalid

MAX_REQUEST_BYTES = 64 * 1024
"""No command of the platform needs more; anything larger is refused unread."""

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
        request = model.model_validate_json(body)
    except ValidationError as exc:
        [first, *_] = exc.errors(include_url=False)
        if first["type"] == "json_invalid":
            detail = first["msg"].removeprefix("Invalid JSON: ")
            raise DomainError(ErrorCode.MALFORMED, f"request is not valid JSON: {detail}") from exc
        if first["type"] == "model_type" and not first["loc"]:
            raise DomainError(ErrorCode.MALFORMED, "request must be a JSON object") from exc
        raise invalid(exc) from exc
    if b"u0000" in body:  # JSON writes NUL only as the escape \u0000
        _refuse_nul(json.loads(body), "")
    return request


def _refuse_nul(value: Any, path: str) -> None:
    """Refuse a NUL character anywhere in a request: no field takes one, and PostgreSQL's text
    cannot store one (it would surface as an internal error, not as the caller's mistake)."""
    if isinstance(value, str):
        if "\x00" in value:
            where = path or "request"
            raise DomainError(
                ErrorCode.INVALID,
                f"invalid fields: {where} holds a NUL character (U+0000), which no field takes",
                (FieldError(path=where, message="holds a NUL character (U+0000)"),),
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, path)
            _refuse_nul(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{path}.{index}" if path else str(index))


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
