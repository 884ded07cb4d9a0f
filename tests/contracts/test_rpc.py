"""The request/reply plumbing, in memory: one JSON reply per request, a result or a typed error."""

from __future__ import annotations

import json

import pytest
from faststream.nats import NatsBroker, NatsMessage, TestNatsBroker
from pydantic import BaseModel
from singlewindow.shared.errors import DomainError, ErrorCode, FieldError
from singlewindow.shared.rpc import MAX_REQUEST_BYTES, Request, parse_request, respond

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


@broker.subscriber("test.greet")
async def greet_handler(msg: NatsMessage) -> bytes:
    return await respond("test.greet", msg.body, msg.correlation_id, Greet, greet)


async def ask(body: bytes) -> dict[str, object]:
    async with TestNatsBroker(broker) as test_broker:
        reply = await test_broker.request(body, "test.greet")
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


async def test_a_lone_surrogate_is_a_field_error_not_an_internal_error() -> None:
    # A plain `str` field: pydantic lets the surrogate through, and the reply could not encode it.
    for escape in ("\\ud800", "\\udfff", "Li\\ud83d"):
        answer = await ask(b'{"name": "' + escape.encode() + b'"}')
        assert answer == {
            "error": {
                "code": "invalid",
                "message": "invalid fields: name",
                "fields": [
                    {
                        "path": "name",
                        "message": "contains a lone surrogate (\\ud800-\\udfff), not text",
                    }
                ],
            }
        }


async def test_a_lone_surrogate_in_a_key_names_the_object_that_holds_it() -> None:
    answer = await ask(b'{"name": "Li", "\\udc00": 1}')
    assert answer["error"] == {
        "code": "invalid",
        "message": "invalid fields: (body)",
        "fields": [
            {"path": "(body)", "message": "contains a lone surrogate (\\ud800-\\udfff), not text"}
        ],
    }


async def test_a_surrogate_pair_is_an_ordinary_character() -> None:
    assert await ask(b'{"name": "Li \\ud83d\\ude00"}') == {
        "result": {"text": "hello Li \U0001f600"}
    }


class Party(Request):
    names: list[str]
    leader: Greet


def test_every_lone_surrogate_is_named_by_its_path() -> None:
    body = b'{"names": ["Li", "\\ud800"], "leader": {"name": "Wang\\udc00"}}'
    with pytest.raises(DomainError) as refused:
        parse_request(body, Party)
    assert refused.value.code is ErrorCode.INVALID
    assert [field.path for field in refused.value.fields] == ["names.1", "leader.name"]
