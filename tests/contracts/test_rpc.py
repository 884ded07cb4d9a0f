"""The request/reply plumbing, in memory: one JSON reply per request, a result or a typed error."""

from __future__ import annotations

import json

import pytest
from faststream.nats import NatsBroker, NatsMessage, TestNatsBroker
from pydantic import BaseModel
from singlewindow.contracts.endpoints import Audience, Endpoint
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.wire import MAX_REQUEST_BYTES, Request, parse_request
from singlewindow.runtime.rpc import respond

broker = NatsBroker()


class Greet(Request):
    name: str


class Greeting(BaseModel):
    text: str


async def greet(request: Greet) -> Greeting:
    if request.name == "nobody":
        raise DomainError(
            ErrorCode.NOT_FOUND, "no such person", (FieldError(path="name", message="unknown"),)
        )
    if request.name == "boom":
        raise RuntimeError("secret internals")
    return Greeting(text=f"hello {request.name}")


GREET = Endpoint("test", "greet", Greet, Greeting, Audience.PUBLIC)


@broker.subscriber(GREET.subject)
async def greet_handler(msg: NatsMessage) -> bytes:
    return await respond(GREET, msg.body, msg.correlation_id, greet)


async def ask(body: bytes) -> dict[str, object]:
    async with TestNatsBroker(broker) as test_broker:
        reply = await test_broker.request(body, GREET.subject)
        answer: dict[str, object] = json.loads(reply.body)
        return answer


async def test_a_valid_request_gets_its_result() -> None:
    assert await ask(b'{"name": "Li"}') == {"result": {"text": "hello Li"}}


async def test_a_refusal_is_a_typed_error_with_fields() -> None:
    assert await ask(b'{"name": "nobody"}') == {
        "error": {
            "code": "not_found",
            "message": "no such person",
            "fields": [{"path": "name", "message": "unknown"}],
        }
    }


async def test_malformed_and_oversized_bodies_are_refused_unread() -> None:
    malformed = await ask(b"{oops")
    assert malformed["error"]["code"] == "malformed"  # type: ignore[index]
    oversized = await ask(b'{"name": "' + b"x" * MAX_REQUEST_BYTES + b'"}')
    assert oversized["error"]["code"] == "too_large"  # type: ignore[index]


async def test_wrong_types_and_unknown_fields_are_named() -> None:
    answer = await ask(b'{"name": 5, "age": 3}')
    fields = answer["error"]["fields"]  # type: ignore[index]
    assert [f["path"] for f in fields] == ["name", "age"]


async def test_an_unexpected_failure_says_nothing_of_its_internals() -> None:
    answer = await ask(b'{"name": "boom"}')
    assert answer == {
        "error": {
            "code": "internal",
            "message": "internal error; the request was not applied",
            "fields": [],
        }
    }


async def test_a_lone_surrogate_is_refused_as_malformed_not_an_internal_error() -> None:
    # A plain `str` field would let it through, and the reply could not encode it: pydantic's
    # JSON parser refuses it before any field is read.
    for body in (
        b'{"name": "\\ud800"}',
        b'{"name": "\\udfff"}',
        b'{"name": "Li\\ud83d"}',
        b'{"name": "Li", "\\udc00": 1}',
    ):
        answer = await ask(body)
        error = answer["error"]
        assert isinstance(error, dict)
        assert error["code"] == "malformed", body
        assert error["message"].startswith("request is not valid JSON: "), body
        assert "line 1 column" in error["message"]


async def test_a_surrogate_pair_is_an_ordinary_character() -> None:
    assert await ask(b'{"name": "Li \\ud83d\\ude00"}') == {
        "result": {"text": "hello Li \U0001f600"}
    }


class Party(Request):
    names: list[str]
    leader: Greet


def test_a_lone_surrogate_deep_in_a_request_is_refused_too() -> None:
    body = b'{"names": ["Li", "\\ud800"], "leader": {"name": "Wang\\udc00"}}'
    with pytest.raises(DomainError) as refused:
        parse_request(body, Party)
    assert refused.value.code is ErrorCode.MALFORMED


def test_json_nested_far_too_deep_is_refused_at_once() -> None:
    with pytest.raises(DomainError) as refused:
        parse_request(b"[" * 60_000, Party)
    assert refused.value.code is ErrorCode.MALFORMED


def test_a_nul_character_anywhere_is_refused_by_its_field() -> None:
    # No field takes one, and PostgreSQL's text cannot store one: found by schemathesis as a 500.
    body = b'{"names": ["Li"], "leader": {"name": "Wang\\u0000"}}'
    with pytest.raises(DomainError) as refused:
        parse_request(body, Party)
    assert refused.value.code is ErrorCode.INVALID
    assert [field.path for field in refused.value.fields] == ["leader.name"]


def test_a_literal_backslash_u0000_is_ordinary_text() -> None:
    request = parse_request(b'{"names": ["\\\\u0000"], "leader": {"name": "Li"}}', Party)
    assert request.names == ["\\u0000"]
