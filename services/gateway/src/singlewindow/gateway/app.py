"""The HTTP gateway: settings → routes derived from the endpoint declarations → FastAPI app.

Every endpoint a person may call (audience public, session or back office) becomes
`POST /api/v1/<service>/<name, dots as slashes>`; its body is the request model without `token`,
which comes from `Authorization: Bearer` (or a browser's session cookie). The request goes to the
endpoint's NATS subject as the `portal` user; the reply's `result` comes back as 200 (204 when it
is always null), a refusal as RFC 9457 problem+json.

FastAPI declares the routes (the OpenAPI document) and refuses bad bodies; a request with a good
body is answered by `Front`, a pure ASGI layer, without FastAPI's per-request pipeline.
"""

# First, before anything imports structlog, which then leaves rich out (see observability).
import singlewindow.runtime.observability  # noqa: F401

# isort: split
import functools
import inspect
import json
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated, Any

import structlog
from fastapi import Body, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ValidationError, create_model
from singlewindow.contracts import service_contracts
from singlewindow.contracts.endpoints import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY,
    Audience,
    Endpoint,
    endpoints_of,
)
from singlewindow.contracts.errors import ErrorBody, ErrorCode, FieldError
from singlewindow.contracts.wire import MAX_REQUEST_BYTES
from singlewindow.gateway.bus import (
    CORRELATION_HEADER,
    Forwarder,
    NatsForwarder,
    NoReply,
    NoResponder,
)
from singlewindow.gateway.problems import PROBLEM_JSON, STATUS, Problem, problem
from singlewindow.gateway.ratelimit import RateLimiter, client_address, networks
from singlewindow.gateway.settings import Settings
from singlewindow.runtime.clock import Clock, SystemClock
from singlewindow.runtime.observability import configure_logging
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("singlewindow.gateway")

API_ROOT = "/api/v1"
EXPOSED = (Audience.PUBLIC, Audience.SESSION, Audience.BACK_OFFICE)
"""The audiences people belong to; service-to-service and card-reader endpoints stay off HTTP."""

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
"""A client's request id is kept when it looks like one (a UUID fits); otherwise one is made."""
SESSION_COOKIE = "sw_session"
STAFF_SESSION_COOKIE = "sw_staff_session"
CSRF_COOKIE = "sw_csrf"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_HEADER = "X-Session-Cookie"
"""`X-Session-Cookie: 1` (or `?cookie=1`) on a login: the session goes into an HttpOnly cookie."""

REQUESTS = Counter(
    "sw_gateway_requests_total",
    "HTTP requests answered, by operation and status",
    ["operation", "status"],
)
REQUEST_SECONDS = Histogram(
    "sw_gateway_request_seconds", "Time to answer an HTTP request", ["operation"]
)
RATE_LIMITED = Counter(
    "sw_gateway_rate_limited_total", "Requests refused by a rate limit", ["operation"]
)


def http_path(endpoint: Endpoint[Any, Any]) -> str:
    """Where an endpoint is on HTTP: `/api/v1/accounts/login/password`."""
    return f"{API_ROOT}/{endpoint.service}/{endpoint.name.replace('.', '/')}"


def operation_id(endpoint: Endpoint[Any, Any]) -> str:
    """The endpoint's OpenAPI operationId and its key in the rate-limit patterns."""
    return f"{endpoint.service}.{endpoint.name}"


def exposed_endpoints() -> tuple[Endpoint[Any, Any], ...]:
    """Every endpoint of every contract module that people may call."""
    return tuple(
        endpoint
        for module in service_contracts()
        for endpoint in endpoints_of(module)
        if endpoint.audience in EXPOSED
    )


def takes_token(endpoint: Endpoint[Any, Any]) -> bool:
    """Whether the endpoint's request carries a session token."""
    return "token" in endpoint.request.model_fields


def body_model(endpoint: Endpoint[Any, Any]) -> type[BaseModel]:
    """The HTTP body of an endpoint: its request model without `token`."""
    if not takes_token(endpoint):
        return endpoint.request
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in endpoint.request.model_fields.items()
        if name != "token"
    }
    model: type[BaseModel] = create_model(
        f"{endpoint.request.__name__}Body",
        __config__=endpoint.request.model_config,
        __doc__=endpoint.request.__doc__,
        __module__=endpoint.request.__module__,
        **fields,
    )
    return model


def returns_token(endpoint: Endpoint[Any, Any]) -> bool:
    """Whether the endpoint's reply opens a session (a `token` in it)."""
    return endpoint.reply is not None and "token" in endpoint.reply.model_fields


def staff_session_replies(endpoints: tuple[Endpoint[Any, Any], ...]) -> set[type[BaseModel]]:
    """The reply models of back-office endpoints that carry a token: staff sessions."""
    return {
        e.reply
        for e in endpoints
        if e.audience is Audience.BACK_OFFICE and returns_token(e) and e.reply
    }


@dataclass
class Gateway:
    """What the routes share: settings, the forwarder to NATS, the clock and the limiters."""

    settings: Settings
    forwarder: Forwarder
    clock: Clock

    def __post_init__(self) -> None:
        s = self.settings
        self.by_address = RateLimiter(
            s.rate_address_limit, s.rate_window_seconds, self.clock, max_keys=s.rate_max_keys
        )
        self.by_account = RateLimiter(
            s.rate_account_limit, s.rate_window_seconds, self.clock, max_keys=s.rate_max_keys
        )
        self.trusted = networks(s.trusted_proxies)

    def rate_limited(self, endpoint: Endpoint[Any, Any]) -> bool:
        """Whether the settings' patterns name the endpoint, or its request has a field that
        is checked against a secret (a password, a one-time code)."""
        name = operation_id(endpoint)
        if any(fnmatchcase(name, pattern) for pattern in self.settings.rate_endpoints):
            return True
        return not set(endpoint.request.model_fields).isdisjoint(self.settings.rate_fields)

    def address_of(self, request: Request) -> str:
        """The client's address (behind trusted proxies, the one they forwarded)."""
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.get("x-forwarded-for"), self.trusted)


def account_named(data: dict[str, Any]) -> str | None:
    """The account a request names: its `account`, or its administrator's (`admin.account`)."""
    for holder in (data, data.get("admin")):
        if isinstance(holder, dict) and isinstance(holder.get("account"), str):
            return str(holder["account"]).strip().casefold()
    return None


def request_id_of(request: Request) -> str:
    """The request's correlation id (set by the middleware)."""
    rid: str = request.state.request_id
    return rid


def _problem_responses(endpoint: Endpoint[Any, Any]) -> dict[int | str, dict[str, Any]]:
    ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
    statuses = {400, 401, 403, 404, 409, 411, 413, 422, 429, 500, 503, 504}
    return {
        status: {"description": "Refused: see `code`", "content": {PROBLEM_JSON: ref}}
        for status in sorted(statuses)
    }


def _result_bytes(reply: bytes) -> bytes | None:
    """The `result` part of a success reply, without decoding it; None for an error reply."""
    if reply.startswith(b'{"result":') and reply.endswith(b"}"):
        return reply[len(b'{"result":') : -1]
    data = json.loads(reply)
    if "error" in data:
        return None
    return json.dumps(data.get("result"), ensure_ascii=False).encode()


class Operation:
    """One endpoint on HTTP: authenticate, limit, forward, translate the reply.

    `answer` is the whole of it once the body is known good. FastAPI's handler (`handler`) calls
    it after FastAPI has validated the body; `Front` calls it straight away when `accept` finds
    the body good, which skips FastAPI's per-request pipeline but changes no outcome, since every
    body `accept` declines goes to FastAPI as it came.
    """

    def __init__(
        self, gateway: Gateway, endpoint: Endpoint[Any, Any], staff_replies: set[type[BaseModel]]
    ) -> None:
        self.gateway = gateway
        self.endpoint = endpoint
        self.name = operation_id(endpoint)
        self.needs_token = takes_token(endpoint)
        self.limited = gateway.rate_limited(endpoint)
        self.cookie = (
            STAFF_SESSION_COOKIE if endpoint.audience is Audience.BACK_OFFICE else SESSION_COOKIE
        )
        self.login_cookie = (
            (STAFF_SESSION_COOKIE if endpoint.reply in staff_replies else SESSION_COOKIE)
            if returns_token(endpoint)
            else None
        )
        self.model = body_model(endpoint)
        self.required = any(info.is_required() for info in self.model.model_fields.values())

    def accept(self, raw: bytes, content_type: str | None) -> dict[str, Any] | None:
        """The body as FastAPI would pass it to the handler, or None to leave the request to
        FastAPI, whose refusal (problem+json from `_validation_problem`) is the one to send.

        It mirrors FastAPI's reading: JSON only with a JSON content type, an empty or `null`
        body standing for no body, and the model validated as FastAPI validates it.
        """
        if raw:
            if content_type is None or not _is_json(content_type):
                return None
            try:
                parsed = json.loads(raw)
            except ValueError:
                return None
        else:
            parsed = None
        if parsed is None:
            return None if self.required else {}
        if not isinstance(parsed, dict):
            return None
        try:
            self.model.model_validate(parsed, from_attributes=True)
        except ValidationError:
            return None
        return parsed

    async def answer(self, request: Request, data: dict[str, Any]) -> Response:
        """The response to a request whose body (`data`, forwarded as it is) is valid."""
        gateway, endpoint, cookie = self.gateway, self.endpoint, self.cookie
        rid = request_id_of(request)
        from_cookie = False
        if self.needs_token:
            token = _bearer(request)
            if token is None and request.cookies.get(cookie):
                token, from_cookie = request.cookies[cookie], True
                sent = request.headers.get(CSRF_HEADER, "")
                expected = request.cookies.get(CSRF_COOKIE, "")
                if not (expected and secrets.compare_digest(sent, expected)):
                    return problem(
                        ErrorCode.FORBIDDEN,
                        f"a request with the session cookie needs the {CSRF_HEADER} header"
                        f" holding the {CSRF_COOKIE} cookie's value",
                        request_id=rid,
                    )
            if token is None:
                return problem(
                    ErrorCode.UNAUTHENTICATED,
                    "no session: send Authorization: Bearer <token> (log in first)",
                    request_id=rid,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            data["token"] = token
        if self.limited:
            account = account_named(data)
            waits = [gateway.by_address.check("address:" + gateway.address_of(request))]
            if account is not None:
                waits.append(gateway.by_account.check("account:" + account))
            wait = max((w for w in waits if w is not None), default=None)
            if wait is not None:
                RATE_LIMITED.labels(self.name).inc()
                log.info("rate limited", operation=self.name, retry_after=wait)
                return problem(
                    ErrorCode.THROTTLED,
                    f"too many requests; try again in {wait} s",
                    request_id=rid,
                    headers={"Retry-After": str(wait)},
                )
        headers = {CORRELATION_HEADER: rid}
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and endpoint.changes_state:
            if not IDEMPOTENCY_KEY.fullmatch(key):
                return problem(
                    ErrorCode.INVALID,
                    "the Idempotency-Key header is not 8 to 128 letters, digits or . _ : -",
                    (FieldError(path=IDEMPOTENCY_HEADER, message="not a valid key"),),
                    request_id=rid,
                )
            headers[IDEMPOTENCY_HEADER] = key
        try:
            reply = await gateway.forwarder.request(
                endpoint.subject, json.dumps(data, ensure_ascii=False).encode(), headers
            )
        except NoResponder:
            return problem(
                ErrorCode.UNAVAILABLE,
                f"no service answers {endpoint.subject}; is the platform running?",
                request_id=rid,
                unreachable=True,
            )
        except NoReply:
            return problem(
                ErrorCode.UNAVAILABLE,
                f"the {endpoint.service} service did not answer in time",
                status=504,
                request_id=rid,
            )
        result = _result_bytes(reply)
        if result is None:
            error = ErrorBody.model_validate(json.loads(reply)["error"])
            return problem(error.code, error.message, error.fields, request_id=rid)
        if endpoint.reply is None:
            response: Response = Response(status_code=204)
            if from_cookie and endpoint.name.endswith("logout"):
                response.delete_cookie(cookie, path="/")
                response.delete_cookie(CSRF_COOKIE, path="/")
            return response
        if self.login_cookie is not None and (from_cookie or _wants_cookie(request)):
            session = json.loads(result)
            response = JSONResponse(session | {"token": ""})
            _set_session_cookie(response, self.login_cookie, session["token"], gateway.settings)
            return response
        return Response(result, media_type="application/json")

    def handler(self) -> Callable[..., Awaitable[Response]]:
        """The FastAPI endpoint: its signature gives FastAPI the body model (the OpenAPI
        document's request schema and FastAPI's validation of the requests `Front` leaves it)."""

        async def handle(request: Request, body: Any = None) -> Response:
            raw = await request.body()
            parsed = json.loads(raw) if raw.strip() else None
            # FastAPI has checked it against the model: an object, or null where no field is needed.
            return await self.answer(request, parsed if isinstance(parsed, dict) else {})

        model, required = self.model, self.required
        handle.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(
                    "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
                ),
                inspect.Parameter(
                    "body",
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    annotation=Annotated[model, Body()]
                    if required
                    else Annotated[model | None, Body()],
                    default=inspect.Parameter.empty if required else None,
                ),
            ]
        )
        return handle


def _is_json(content_type: str) -> bool:
    """Whether FastAPI reads a body of this type as JSON (`application/json`, `…/…+json`)."""
    main, _, subtype = content_type.partition(";")[0].strip().lower().partition("/")
    return main == "application" and (subtype == "json" or subtype.endswith("+json"))


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _wants_cookie(request: Request) -> bool:
    if request.headers.get(COOKIE_HEADER) == "1":
        return True
    # Most requests have no query string: skip parsing one.
    return bool(request.scope.get("query_string")) and request.query_params.get("cookie") == "1"


def _set_session_cookie(response: Response, name: str, token: str, settings: Settings) -> None:
    secure = settings.cookie_secure
    response.set_cookie(name, token, httponly=True, secure=secure, samesite="strict", path="/")
    response.set_cookie(
        CSRF_COOKIE,
        secrets.token_urlsafe(32),
        httponly=False,
        secure=secure,
        samesite="strict",
        path="/",
    )


def _validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    rid = getattr(request.state, "request_id", None)
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        return problem(ErrorCode.MALFORMED, "request is not valid JSON", request_id=rid)
    fields: list[FieldError] = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc[:1] == ["body"]:
            loc = loc[1:]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "unknown field"
        if error.get("type") == "model_attributes_type" and not loc:
            return problem(ErrorCode.MALFORMED, "request must be a JSON object", request_id=rid)
        fields.append(FieldError(path=".".join(loc) or "(body)", message=message))
    names = ", ".join(f.path for f in fields)
    return problem(ErrorCode.INVALID, f"invalid fields: {names}", tuple(fields), request_id=rid)


def create_app(
    settings: Settings | None = None,
    *,
    forwarder: Forwarder | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The gateway app; a test passes its own forwarder and clock."""
    settings = settings or Settings()
    nats_forwarder = NatsForwarder(settings) if forwarder is None else None
    gateway = Gateway(settings, forwarder or nats_forwarder, clock or SystemClock())  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if nats_forwarder is not None:
            configure_logging("gateway", settings.log_level)
            await nats_forwarder.connect()
        try:
            yield
        finally:
            if nats_forwarder is not None:
                await nats_forwarder.close()

    endpoints = exposed_endpoints()
    staff_replies = staff_session_replies(endpoints)
    operations = {http_path(e): Operation(gateway, e, staff_replies) for e in endpoints}
    app = FrontedApp(
        operations,
        title="Single Window platform API",
        version="1.0.0",
        summary="Every request a person makes, derived from the platform's endpoint declarations.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gateway = gateway
    for endpoint in endpoints:
        app.add_api_route(
            http_path(endpoint),
            operations[http_path(endpoint)].handler(),
            methods=["POST"],
            operation_id=operation_id(endpoint),
            summary=endpoint.summary,
            description=(endpoint.request.__doc__ or "").strip(),
            tags=[endpoint.service],
            response_model=endpoint.reply,
            status_code=204 if endpoint.reply is None else 200,
            response_class=Response if endpoint.reply is None else JSONResponse,
            responses=_problem_responses(endpoint),
            openapi_extra={"security": [{"bearer": []}, {"cookie": []}]}
            if takes_token(endpoint)
            else None,
        )

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(request, exc)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return _crashed(getattr(request.state, "request_id", None))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready = gateway.forwarder.ready
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "nats": ready},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
            openapi_version="3.1.0",
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        problem_defs = components["schemas"]["Problem"].pop("$defs", {})
        components["schemas"].update(problem_defs)
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
        }
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


# A metric's child per label values, looked up once (as `runtime.rpc` does): `labels()` takes
# its keywords apart and a lock on every call.
@functools.cache
def _requests(operation: str, status: int) -> Counter:
    return REQUESTS.labels(operation, str(status))


@functools.cache
def _request_seconds(operation: str) -> Histogram:
    return REQUEST_SECONDS.labels(operation)


def _crashed(request_id: str | None) -> JSONResponse:
    return problem(
        ErrorCode.INTERNAL,
        "the gateway failed; the request id says where in its log",
        request_id=request_id,
    )


class FrontedApp(FastAPI):
    """FastAPI behind `Front`: the routes, the OpenAPI document and the docs are FastAPI's, and
    every request goes through `Front` before FastAPI's own stack (its per-request telemetry
    check, error and body-limit middlewares), which sees only what `Front` passes on."""

    def __init__(self, operations: dict[str, Operation], **options: Any) -> None:
        super().__init__(**options)
        self._front = Front(super().__call__, operations)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._front(scope, receive, send)


class Front:
    """The gateway's outer layer, pure ASGI: the request id, the body size limit, metrics and
    the log line of every request, and each valid API request answered by its `Operation`.

    A Starlette `BaseHTTPMiddleware` runs the app in a task of its own and passes every message
    through memory streams; FastAPI's routing scans every route's pattern and solves each
    endpoint's dependencies. Here a request to an endpoint is one dictionary lookup, and FastAPI
    sees only what `Operation.accept` declines (so its refusals stay its own) and other paths.
    A failure answering one is the same 500 problem FastAPI's handler gives (`on_crash`).
    """

    def __init__(self, app: ASGIApp, operations: dict[str, Operation]) -> None:
        self.app = app
        self.operations = operations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get(REQUEST_ID_HEADER, "")
        rid = given if REQUEST_ID.fullmatch(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode("latin-1"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        route: str = scope["path"]
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(correlation_id=rid):
            await self._answer(scope, receive, send_with_id, headers, rid)
        if route.startswith(API_ROOT):
            # By operation, not path: a scan of made-up paths must not grow the metrics' series.
            known = self.operations.get(route)
            operation = known.name if known is not None else "unknown"
            _requests(operation, status).inc()
            _request_seconds(operation).observe(time.perf_counter() - started)
            log.info(
                "request",
                method=scope["method"],
                path=route,
                status=status,
                correlation_id=rid,
            )

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, rid: str
    ) -> None:
        path: str = scope["path"]
        if scope["method"] != "POST" or not path.startswith(API_ROOT):
            await self.app(scope, receive, send)
            return
        too_large = _too_large(headers, rid)
        if too_large is not None:
            await too_large(scope, receive, send)
            return
        operation = self.operations.get(path)
        if operation is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await _body(receive)
        except ClientDisconnect:
            return  # nobody to answer
        data = operation.accept(body, headers.get("content-type"))
        if data is None:
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            response = await operation.answer(Request(scope, receive), data)
        except Exception:
            log.exception("request failed")
            response = _crashed(rid)
        await response(scope, receive, send)


def _too_large(headers: Headers, rid: str) -> Response | None:
    """Refuse a body over the platform's request limit before reading it."""
    length = headers.get("content-length")
    if length is None and headers.get("transfer-encoding"):
        return problem(
            ErrorCode.TOO_LARGE,
            "send the body with a Content-Length",
            status=411,
            request_id=rid,
        )
    if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_BYTES):
        return problem(
            ErrorCode.TOO_LARGE,
            f"request is {length} bytes; the limit is {MAX_REQUEST_BYTES} bytes",
            request_id=rid,
        )
    return None


async def _body(receive: Receive) -> bytes:
    """The whole request body (bounded by the Content-Length `_too_large` checked)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then whatever the connection sends."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


__all__ = ["STATUS", "create_app"]
