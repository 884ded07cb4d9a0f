"""The gateway in process: routes derived from the declarations, problems, limits, cookies.

A small fake stands in for NATS (it records what was forwarded and answers as a service would);
the real stack is in tests/integration/test_gateway.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from prometheus_client import generate_latest
from singlewindow.contracts import accounts, card_gateway, registration
from singlewindow.contracts.endpoints import Audience, endpoints_of
from singlewindow.contracts.errors import ErrorCode
from singlewindow.gateway.app import Operation, create_app, exposed_endpoints, http_path
from singlewindow.gateway.bus import NoReply, NoResponder
from singlewindow.gateway.problems import STATUS
from singlewindow.gateway.settings import Settings
from singlewindow.runtime.clock import ManualClock

LOGIN = "/api/v1/accounts/login/password"
Answer = Callable[[str, dict[str, Any]], bytes]

SESSION: dict[str, Any] = {
    "token": "tok-alice",
    "account": "alice",
    "role": "admin",
    "uscc": None,
    "enterprise_name": None,
    "required_actions": [],
    "expires_at": "2026-12-01T21:00:00Z",
    "idle_expires_at": "2026-12-01T09:30:00Z",
    "method": "password",
    "card_number": None,
    "operator_level": None,
}


class FakeBus:
    """Records each forwarded request; answers with `answer(subject, body)`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.answer: Answer = lambda subject, body: b'{"result":null}'
        self.ready = True

    async def request(self, subject: str, body: bytes, headers: dict[str, str]) -> bytes:
        data = json.loads(body)
        self.sent.append((subject, data, headers))
        return self.answer(subject, data)


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def gateway_client(bus: FakeBus, clock: ManualClock, **settings: Any) -> httpx.AsyncClient:
    app = create_app(Settings(**settings), forwarder=bus, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


@pytest.fixture
async def client(bus: FakeBus, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(bus, clock) as client:
        yield client


def test_every_error_code_has_an_http_status() -> None:
    assert set(STATUS) == set(ErrorCode)
    assert STATUS[ErrorCode.INVALID] == 422
    assert STATUS[ErrorCode.MALFORMED] == 400
    assert STATUS[ErrorCode.UNAUTHENTICATED] == 401
    assert STATUS[ErrorCode.WRONG_SESSION] == 403
    assert STATUS[ErrorCode.IN_PROGRESS] == 409
    assert STATUS[ErrorCode.THROTTLED] == 429


async def test_openapi_document_validates_and_lists_only_peoples_endpoints(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    paths = set(document["paths"])
    assert "/api/v1/accounts/login/password" in paths
    assert "/api/v1/review/tasks/decide" in paths
    for endpoint in (
        endpoints_of(accounts) + endpoints_of(registration) + endpoints_of(card_gateway)
    ):
        exposed = endpoint.audience in (Audience.PUBLIC, Audience.SESSION, Audience.BACK_OFFICE)
        assert (http_path(endpoint) in paths) is exposed, endpoint.subject
    body = document["components"]["schemas"]["ShowAccountBody"]
    assert "token" not in body.get("properties", {})
    assert (await client.get("/docs")).status_code == 200


async def test_a_session_request_takes_the_bearer_token_and_keeps_the_request_id(
    client: httpx.AsyncClient, bus: FakeBus
) -> None:
    bus.answer = lambda subject, body: b'{"result":' + json.dumps(SESSION).encode() + b"}"
    reply = await client.post(
        "/api/v1/accounts/session/show",
        json={},
        headers={"Authorization": "Bearer tok-alice", "X-Request-Id": "req-12345678"},
    )
    assert reply.status_code == 200
    assert reply.json()["account"] == "alice"
    assert reply.headers["X-Request-Id"] == "req-12345678"
    [(subject, body, headers)] = bus.sent
    assert subject == accounts.SHOW_SESSION.subject
    assert body == {"token": "tok-alice"}
    assert headers["correlation_id"] == "req-12345678"


async def test_a_bad_request_id_is_replaced(client: httpx.AsyncClient, bus: FakeBus) -> None:
    reply = await client.post(
        "/api/v1/accounts/logout", headers={"Authorization": "Bearer t", "X-Request-Id": "a b"}
    )
    assert reply.status_code == 204
    assert reply.headers["X-Request-Id"] != "a b"
    assert bus.sent[0][2]["correlation_id"] == reply.headers["X-Request-Id"]


async def test_no_token_is_401_and_nothing_is_forwarded(
    client: httpx.AsyncClient, bus: FakeBus
) -> None:
    reply = await client.post("/api/v1/accounts/account/show", json={})
    assert reply.status_code == 401
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert reply.json()["code"] == "unauthenticated"
    assert bus.sent == []


async def test_a_token_in_the_body_is_an_unknown_field(
    client: httpx.AsyncClient, bus: FakeBus
) -> None:
    reply = await client.post(
        "/api/v1/accounts/account/show",
        json={"token": "x"},
        headers={"Authorization": "Bearer t"},
    )
    assert reply.status_code == 422
    problem = reply.json()
    assert problem["code"] == "invalid"
    assert problem["errors"] == [{"path": "token", "message": "unknown field"}]
    assert bus.sent == []


async def test_malformed_json_is_400_and_invalid_fields_422(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/api/v1/accounts/login/password",
        content=b'{"account": ',
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 400
    assert reply.json()["code"] == "malformed"
    reply = await client.post("/api/v1/accounts/login/password", json={"account": "alice"})
    assert reply.status_code == 422
    problem = reply.json()
    assert problem["type"].endswith("/invalid")
    assert problem["title"].startswith("Unprocessable")
    assert problem["status"] == 422
    assert {"path": "password", "message": "Field required"} in problem["errors"]


async def test_a_body_over_the_limit_is_refused_unread(
    client: httpx.AsyncClient, bus: FakeBus
) -> None:
    reply = await client.post(
        "/api/v1/accounts/login/password",
        content=b'{"account": "' + b"a" * 70_000 + b'", "password": "x"}',
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 413
    assert reply.json()["code"] == "too_large"
    assert bus.sent == []


async def test_a_services_refusal_keeps_its_code_and_field_paths(
    client: httpx.AsyncClient, bus: FakeBus
) -> None:
    refusal = {
        "error": {
            "code": "wrong_session",
            "message": "a staff session cannot do this",
            "fields": [{"path": "token", "message": "a staff token"}],
        }
    }
    bus.answer = lambda subject, body: json.dumps(refusal).encode()
    reply = await client.post(
        "/api/v1/accounts/account/show", json={}, headers={"Authorization": "Bearer t"}
    )
    assert reply.status_code == 403
    assert reply.json() == {
        "type": "https://singlewindow.example/problems/wrong_session",
        "title": "Forbidden",
        "status": 403,
        "detail": "a staff session cannot do this",
        "code": "wrong_session",
        "errors": [{"path": "token", "message": "a staff token"}],
        "request_id": reply.headers["X-Request-Id"],
    }


async def test_no_service_is_503_and_no_reply_504(client: httpx.AsyncClient, bus: FakeBus) -> None:
    def absent(subject: str, body: dict[str, Any]) -> bytes:
        raise NoResponder(subject)

    def silent(subject: str, body: dict[str, Any]) -> bytes:
        raise NoReply(subject)

    bus.answer = absent
    reply = await client.post(LOGIN, json={"account": "alice", "password": "secret-password"})
    assert (reply.status_code, reply.json()["code"]) == (503, "unavailable")
    bus.answer = silent
    reply = await client.post(LOGIN, json={"account": "alice", "password": "secret-password"})
    assert (reply.status_code, reply.json()["code"]) == (504, "unavailable")


async def test_idempotency_key_goes_through_on_state_changing_endpoints(
    client: httpx.AsyncClient, bus: FakeBus
) -> None:
    await client.post(
        "/api/v1/accounts/logout",
        headers={"Authorization": "Bearer t", "Idempotency-Key": "key-12345678"},
    )
    assert bus.sent[-1][2]["Idempotency-Key"] == "key-12345678"
    reply = await client.post(
        "/api/v1/accounts/logout", headers={"Authorization": "Bearer t", "Idempotency-Key": "x"}
    )
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["path"] == "Idempotency-Key"


async def test_a_burst_of_logins_from_one_address_is_limited_until_the_window_refills(
    bus: FakeBus, clock: ManualClock
) -> None:
    bus.answer = lambda subject, body: (
        b'{"error":{"code":"unauthenticated","message":"wrong account or password"}}'
    )
    async with gateway_client(
        bus, clock, rate_address_limit=3, rate_account_limit=100, rate_window_seconds=60
    ) as client:
        statuses = []
        for n in range(5):
            reply = await client.post(
                "/api/v1/accounts/login/password",
                json={"account": f"user{n}", "password": "wrong-password"},
            )
            statuses.append(reply.status_code)
        assert statuses == [401, 401, 401, 429, 429]
        assert reply.headers["Retry-After"] == "20"
        assert reply.json()["code"] == "throttled"
        assert len(bus.sent) == 3
        # Other endpoints are not limited.
        reply = await client.post(
            "/api/v1/accounts/session/show", json={}, headers={"Authorization": "Bearer t"}
        )
        assert reply.status_code != 429
        clock.advance(20)
        reply = await client.post(
            "/api/v1/accounts/login/password", json={"account": "u", "password": "p"}
        )
        assert reply.status_code == 401


async def test_one_account_is_limited_from_every_address(bus: FakeBus, clock: ManualClock) -> None:
    async with gateway_client(
        bus,
        clock,
        rate_address_limit=100,
        rate_account_limit=2,
        trusted_proxies=("192.0.2.10",),
    ) as client:
        statuses = []
        for n in range(3):
            reply = await client.post(
                "/api/v1/accounts/staff/login",
                json={"account": "Admin", "password": "guess"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            )
            statuses.append(reply.status_code)
        assert statuses == [200, 200, 429]
        assert len(bus.sent) == 2


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    bus: FakeBus, clock: ManualClock
) -> None:
    async with gateway_client(bus, clock, rate_address_limit=1) as client:
        first = await client.post(
            "/api/v1/accounts/login/password",
            json={"account": "a", "password": "p"},
            headers={"X-Forwarded-For": "198.51.100.1"},
        )
        spoofed = await client.post(
            "/api/v1/accounts/login/password",
            json={"account": "b", "password": "p"},
            headers={"X-Forwarded-For": "198.51.100.2"},
        )
        assert first.status_code != 429
        assert spoofed.status_code == 429
    async with gateway_client(
        bus, clock, rate_address_limit=1, trusted_proxies=("192.0.2.0/24",)
    ) as client:
        for address in ("198.51.100.1", "198.51.100.2"):
            reply = await client.post(
                "/api/v1/accounts/login/password",
                json={"account": address, "password": "p"},
                headers={"X-Forwarded-For": f"{address}, 192.0.2.99"},
            )
            assert reply.status_code != 429


async def test_a_cookie_login_keeps_the_token_out_of_scripts_and_needs_csrf(
    client: httpx.AsyncClient, bus: FakeBus
) -> None:
    bus.answer = lambda subject, body: b'{"result":' + json.dumps(SESSION).encode() + b"}"
    reply = await client.post(
        "/api/v1/accounts/login/password",
        json={"account": "alice", "password": "secret-password"},
        headers={"X-Session-Cookie": "1"},
    )
    assert reply.status_code == 200
    assert reply.json()["token"] == ""
    cookies = reply.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("sw_session="))
    assert "tok-alice" in session
    for attribute in ("HttpOnly", "Secure", "SameSite=strict"):
        assert attribute.lower() in session.lower()
    csrf = reply.cookies["sw_csrf"]
    cookie_jar = {"sw_session": "tok-alice", "sw_csrf": csrf}
    client.cookies.update(cookie_jar)
    refused = await client.post("/api/v1/accounts/session/show", json={})
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    allowed = await client.post(
        "/api/v1/accounts/session/show", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert allowed.status_code == 200
    assert bus.sent[-1][1] == {"token": "tok-alice"}
    client.cookies.clear()


def test_every_exposed_endpoint_is_routed() -> None:
    app = create_app(Settings(), forwarder=FakeBus(), clock=ManualClock())
    paths = {getattr(route, "path", None) for route in app.routes}
    assert {http_path(endpoint) for endpoint in exposed_endpoints()} <= paths


async def test_a_null_body_of_an_endpoint_without_fields_is_an_empty_request(
    client: httpx.AsyncClient, bus: FakeBus
) -> None:
    reply = await client.post(
        "/api/v1/review/tasks/list",
        content=b"null",
        headers={"Authorization": "Bearer t", "content-type": "application/json"},
    )
    assert reply.status_code == 200
    assert bus.sent[-1][1] == {"token": "t"}


def test_swctl_finds_each_endpoint_where_the_gateway_serves_it() -> None:
    from singlewindow.swctl import client

    for endpoint in exposed_endpoints():
        assert client.http_path(endpoint) == http_path(endpoint)
    assert set(client.HTTP_AUDIENCES) == {e.audience for e in exposed_endpoints()}


def test_swctl_uses_the_gateway_unless_only_a_nats_url_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from singlewindow.swctl.client import DEFAULT_SERVER, server_of

    monkeypatch.delenv("SW_SERVER", raising=False)
    assert server_of(argparse.Namespace(server=None, nats_url_given=False)) == DEFAULT_SERVER
    assert server_of(argparse.Namespace(server=None, nats_url_given=True)) is None
    given = argparse.Namespace(server="https://sw.example/", nats_url_given=True)
    assert server_of(given) == "https://sw.example"
    monkeypatch.setenv("SW_SERVER", "http://127.0.0.1:9090")
    assert server_of(argparse.Namespace(server=None, nats_url_given=True)) == (
        "http://127.0.0.1:9090"
    )


def test_endpoints_checking_a_password_or_code_are_limited_whatever_their_name() -> None:
    from singlewindow.contracts.endpoints import Endpoint
    from singlewindow.contracts.wire import AuthenticatedRequest
    from singlewindow.gateway.app import Gateway

    class VerifySomething(AuthenticatedRequest):
        """Verify a one-time code."""

        code: str

    class ShowSomething(AuthenticatedRequest):
        """Show something."""

    gateway = Gateway(Settings(), FakeBus(), ManualClock())
    verify: Endpoint[VerifySomething, None] = Endpoint(
        "accounts", "thing.verify", VerifySomething, None, Audience.SESSION
    )
    show: Endpoint[ShowSomething, None] = Endpoint(
        "accounts", "thing.show", ShowSomething, None, Audience.SESSION
    )
    assert gateway.rate_limited(verify)
    assert not gateway.rate_limited(show)
    assert gateway.rate_limited(accounts.STAFF_PASSWORD)
    assert gateway.rate_limited(accounts.LOGIN_PASSWORD)
    assert not gateway.rate_limited(accounts.SHOW_SESSION)


NO_TYPE = "(none)"
BODIES: list[tuple[str, bytes | None, dict[str, str]]] = [
    (LOGIN, b'{"account": "alice", "password": "secret-password"}', {}),
    (LOGIN, b'{"account": "alice", "password": "secret-password", "extra": 1}', {}),
    (LOGIN, b'{"account": "alice"}', {}),
    (LOGIN, b'{"account": "alice", "password": 5}', {}),
    (LOGIN, b"[1, 2]", {}),
    (LOGIN, b'"text"', {}),
    (LOGIN, b"null", {}),
    (LOGIN, b"", {}),
    (LOGIN, b" ", {}),
    (LOGIN, b'{"account": ', {}),
    (LOGIN, b'{"account": "alice", "password": "p"}', {"content-type": "text/plain"}),
    (LOGIN, b'{"account": "alice", "password": "p"}', {"content-type": ""}),
    (LOGIN, b'{"account": "alice", "password": "p"}', {"content-type": NO_TYPE}),
    ("/api/v1/review/tasks/list", b"", {"Authorization": "Bearer t", "content-type": NO_TYPE}),
    (
        LOGIN,
        b'{"account": "a", "password": "p"}',
        {"content-type": "application/json; charset=utf-8"},
    ),
    (LOGIN, b'{"account": "a", "password": "p"}', {"content-type": "application/problem+json"}),
    (LOGIN, b'{"account": "a", "password": "p"}', {"content-type": "APPLICATION/JSON"}),
    (LOGIN, b'{"account": "a", "password": "p"}', {"content-type": "application/jsonx"}),
    ("/api/v1/accounts/session/show", b"{}", {"Authorization": "Bearer t"}),
    ("/api/v1/accounts/session/show", b"", {"Authorization": "Bearer t"}),
    ("/api/v1/accounts/session/show", b'{"token": "x"}', {"Authorization": "Bearer t"}),
    ("/api/v1/accounts/session/show", b"{}", {}),
    ("/api/v1/review/tasks/list", b"null", {"Authorization": "Bearer t"}),
    ("/api/v1/review/tasks/list", b"[]", {"Authorization": "Bearer t"}),
    ("/api/v1/accounts/nothing/here", b"{}", {}),
]
"""Bodies well formed and not, under each content type FastAPI treats differently (JSON unless
the case says otherwise)."""


async def _answers(bus: FakeBus, clock: ManualClock) -> list[tuple[int, Any, list[Any]]]:
    """(status, body without its request id, what was forwarded) for each of `BODIES`."""
    bus.answer = lambda subject, body: b'{"result":' + json.dumps(SESSION).encode() + b"}"
    found = []
    async with gateway_client(bus, clock) as client:
        for path, content, headers in BODIES:
            bus.sent.clear()
            sent = {"content-type": "application/json"} | headers
            if sent["content-type"] == NO_TYPE:
                del sent["content-type"]
            reply = await client.post(path, content=content, headers=sent)
            body = reply.json() if reply.content else None
            if isinstance(body, dict):
                body.pop("request_id", None)
            found.append((reply.status_code, body, [sent[1] for sent in bus.sent]))
    return found


async def test_the_fast_path_answers_every_body_as_fastapi_alone_does(
    bus: FakeBus, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Front` answers a valid body itself and leaves the rest to FastAPI; with `accept`
    declining everything, FastAPI answers all of it: the outcomes must be the same."""
    accepted: list[bool] = []
    accept = Operation.accept

    def spied(self: Operation, raw: bytes, content_type: str | None) -> dict[str, Any] | None:
        data = accept(self, raw, content_type)
        accepted.append(data is not None)
        return data

    monkeypatch.setattr(Operation, "accept", spied)
    fast = await _answers(bus, clock)
    monkeypatch.setattr(Operation, "accept", lambda self, raw, content_type: None)
    slow = await _answers(bus, clock)
    for case, fast_answer, slow_answer in zip(BODIES, fast, slow, strict=True):
        assert fast_answer == slow_answer, case
    assert {200, 400, 401, 404, 422} <= {status for status, _, _ in fast}
    # Each body that FastAPI accepts (then answered 200 or 401) took the fast path; each it
    # refuses (400, 422) was declined; the unknown path never reached an operation.
    valid = sum(1 for status, _, _ in fast if status in (200, 401))
    assert valid >= 8
    assert accepted == [status in (200, 401) for status, _, _ in fast if status != 404]


async def test_a_gateway_failure_is_a_500_problem(bus: FakeBus, clock: ManualClock) -> None:
    def broken(subject: str, body: dict[str, Any]) -> bytes:
        raise RuntimeError("bug")

    bus.answer = broken
    app = create_app(Settings(), forwarder=bus, clock=clock)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        reply = await client.post(LOGIN, json={"account": "alice", "password": "p"})
    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "internal"


async def test_every_response_carries_the_request_id(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        reply = await client.get(path, headers={"X-Request-Id": "req-health-1"})
        assert reply.headers["X-Request-Id"] == "req-health-1"


async def test_metrics_count_requests_by_operation_never_by_a_made_up_path(
    client: httpx.AsyncClient,
) -> None:
    for n in range(3):
        await client.post(f"/api/v1/nothing/here/{n}", json={})
    await client.post("/api/v1/accounts/logout", headers={"Authorization": "Bearer t"}, json={})
    exposition = generate_latest().decode()
    assert "/api/v1/nothing" not in exposition
    assert 'sw_gateway_requests_total{operation="unknown",status="404"}' in exposition
    assert 'operation="accounts.logout",status="204"' in exposition
