"""The wire format of requests and replies, importable without the service runtime.

Clients (swctl) and services share it: request bodies are frozen pydantic models, replies are
`{"result": ...}` or `{"error": {"code", "message", "fields"}}`. Only pydantic and
`singlewindow.shared.errors` are imported here, so a client starts without the server stack.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict
from singlewindow.shared.errors import DomainError, ErrorBody

MAX_REQUEST_BYTES = 64 * 1024
"""No command of the platform needs more; anything larger is refused unread."""

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
