"""How swctl reaches the platform: NATS requests with typed replies, and the saved session.

Every connection authenticates with a credential file (`{"url", "user", "password"}` and an
optional `"ca"`, as `swctl up` writes them under `<data-dir>/credentials/`): `--credentials FILE`
(or $SW_CREDENTIALS) for everything, else the data directory's file of the user the command
needs (`portal` for requests, `workstation` for the card readers, `subscriber` to tail events,
`operator` for the audit trail and dead letters). `--nats-url` still names the server; a URL
with `user:password@` works without a file. A NATS whose certificate a private CA signed
(Kubernetes: cert-manager's) is trusted with `--nats-ca FILE` (or $SW_NATS_CA, or the
credential's `"ca"`, relative to the credential file); otherwise the system's CAs.

People's requests (public, in a session, back office) go over HTTP to the platform's gateway
(`--server URL`, $SW_SERVER, by default the embedded one at http://127.0.0.1:8080), which alone
holds the `portal` NATS credential; the session token travels as `Authorization: Bearer`. Only
an explicit `--nats-url`/$SW_NATS_URL without a server sends them straight to NATS (platform
operators and the test suite). The card readers' requests (workstation), `events tail` and
`deadletter` always use NATS with their own credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel
from singlewindow.contracts.bus import inbox_prefix
from singlewindow.contracts.endpoints import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY,
    Audience,
    Endpoint,
)
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.wire import decode_result
from singlewindow.swctl.errors import SessionFileError

ReplyT = TypeVar("ReplyT", bound=BaseModel | None)


CONNECT_SECONDS = 3.0

PORTAL = "portal"
"""Requests people make (public, in a session, back office)."""
WORKSTATION = "workstation"
"""Requests to the card readers of this machine (card-gateway's `Audience.LOCAL`)."""
SUBSCRIBER = "subscriber"
"""Reading the public event streams (`swctl events tail`)."""
OPERATOR = "operator"
"""The audit trail and dead letters (`swctl events tail --audit`, `swctl deadletter`)."""


# --- gateway (issue 8): people's requests over HTTP ---
DEFAULT_SERVER = "http://127.0.0.1:8080"
"""The embedded platform's HTTP gateway (`swctl up`)."""
HTTP_AUDIENCES = (Audience.PUBLIC, Audience.SESSION, Audience.BACK_OFFICE)
"""The endpoints the gateway serves: the ones people call."""


def http_path(endpoint: Endpoint[Any, Any]) -> str:
    """Where the gateway serves `endpoint`: `/api/v1/<service>/<name, dots as slashes>`."""
    return f"/api/v1/{endpoint.service}/{endpoint.name.replace('.', '/')}"


def server_of(args: argparse.Namespace) -> str | None:
    """The gateway to send people's requests to: `--server`/$SW_SERVER, else the embedded one
    unless a NATS URL was asked for (then requests go to NATS itself)."""
    given = getattr(args, "server", None) or os.environ.get("SW_SERVER")
    if given:
        return str(given).rstrip("/")
    return None if getattr(args, "nats_url_given", False) else DEFAULT_SERVER


# --- end gateway ---


class Unreachable(Exception):
    """The platform (NATS, or the service behind a subject) did not answer."""

    def __init__(self, message: str, *, idempotency_key: str | None = None) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key
        """The key of a state-changing request that may have been applied: retry with it."""


RETRIES = 1
"""Times a state-changing request is sent again, with the same key, after a timeout."""
IN_PROGRESS_PAUSE = 0.25
"""Seconds before a request whose key is in use is sent again; it doubles, up to the timeout."""


class InProgress(DomainError):
    """The platform still runs the first request with this command's key."""

    def __init__(self, refusal: DomainError, idempotency_key: str) -> None:
        super().__init__(
            refusal.code,
            f"{refusal.message} (with --idempotency-key {idempotency_key})",
            refusal.fields,
        )
        self.idempotency_key = idempotency_key


def _in_progress(reply: bytes) -> bool:
    if b'"in_progress"' not in reply:
        return False
    error = json.loads(reply).get("error")
    return isinstance(error, dict) and error.get("code") == ErrorCode.IN_PROGRESS.value


class CredentialsError(Unreachable):
    """A credential file that cannot be read or is not `{"url", "user", "password"}`."""


class CertificateError(CredentialsError):
    """A CA file (`--nats-ca`, $SW_NATS_CA, a credential's `"ca"`) that is missing or not PEM."""


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """A client context trusting `ca_file` (PEM); CertificateError says what is wrong with it."""
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except FileNotFoundError as exc:
        raise CertificateError(f"the NATS CA file {ca_file} does not exist") from exc
    except ssl.SSLError as exc:
        raise CertificateError(f"the NATS CA file {ca_file} holds no PEM certificate") from exc
    except OSError as exc:
        raise CertificateError(f"cannot read the NATS CA file {ca_file}: {exc.strerror}") from exc


def nats_ca(args: argparse.Namespace) -> Path | None:
    """The CA file of `--nats-ca` or $SW_NATS_CA, if any."""
    given = getattr(args, "nats_ca", None) or os.environ.get("SW_NATS_CA")
    return Path(given) if given else None


@dataclass(frozen=True)
class Credential:
    """A NATS user's credential, as `swctl up` writes it."""

    url: str
    user: str
    password: str
    ca: Path | None = None
    """The CA that signed the server's certificate (`"ca"`, relative to the file)."""

    @classmethod
    def load(cls, path: Path) -> Credential:
        """Read a credential file; CredentialsError says what is wrong with it."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CredentialsError(f"cannot read the credentials {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CredentialsError(f"the credentials {path} are not JSON") from exc
        fields = [data.get(key) if isinstance(data, dict) else None for key in ("url", "user")]
        password = data.get("password") if isinstance(data, dict) else None
        if not all(isinstance(value, str) and value for value in (*fields, password)):
            raise CredentialsError(f'the credentials {path} are not {{"url", "user", "password"}}')
        ca = data.get("ca")
        if ca is not None and not (isinstance(ca, str) and ca):
            raise CredentialsError(f'the credentials {path} have a "ca" that is not a file name')
        return cls(
            url=str(fields[0]),
            user=str(fields[1]),
            password=str(password),
            ca=path.parent / ca if ca else None,
        )


@dataclass(frozen=True)
class Credentials:
    """Where swctl finds the credential of each user it connects as."""

    directory: Path
    """The embedded platform's `<data-dir>/credentials`."""
    explicit: Path | None = None
    """`--credentials FILE`: this one for every connection."""

    def path(self, user: str) -> Path:
        """The file of `user` (or the one given)."""
        return self.explicit or self.directory / f"{user}.json"

    @classmethod
    def of(cls, args: argparse.Namespace) -> Credentials:
        """From `--credentials`/$SW_CREDENTIALS and `--data-dir`/$SW_DATA_DIR."""
        explicit = getattr(args, "credentials", None) or os.environ.get("SW_CREDENTIALS")
        data_dir = Path(getattr(args, "data_dir", None) or os.environ.get("SW_DATA_DIR", "var"))
        return cls(
            directory=data_dir / "credentials", explicit=Path(explicit) if explicit else None
        )


def user_for(endpoint: Endpoint[Any, Any]) -> str:
    """Who sends requests to `endpoint`: the workstation for the card readers, else the portal."""
    return WORKSTATION if endpoint.audience is Audience.LOCAL else PORTAL


class Client:
    """NATS connections (one per user needed) that send commands and decode their replies."""

    def __init__(
        self,
        url: str,
        timeout: float,
        credentials: Credentials | None = None,
        *,
        url_given: bool = True,
        idempotency_key: str | None = None,
        ca_file: Path | None = None,
        server: str | None = None,
    ) -> None:
        """`server` is the HTTP gateway people's requests go to (None: straight to NATS).
        `ca_file` (else a credential's `"ca"`) is the CA NATS's certificate is checked against.
        `idempotency_key` (else a fresh one) goes with the command's first state-changing
        request; its later ones get `KEY.1`, `KEY.2`, … so a whole command can be retried."""
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise ValueError("an idempotency key is 8 to 128 letters, digits or . _ : -")
        self.url = url
        self.timeout = timeout
        self.credentials = credentials
        self.url_given = url_given
        """Whether `url` was asked for: otherwise the credential's URL wins."""
        self.ca_file = ca_file
        self.server = server
        self._key = idempotency_key or str(uuid.uuid4())
        self._keyed = 0
        self._connections: dict[str, NatsClient] = {}

    @classmethod
    def of(cls, args: argparse.Namespace) -> Client:
        """The client of a parsed command line."""
        return cls(
            args.nats_url,
            args.timeout,
            Credentials.of(args),
            url_given=getattr(args, "nats_url_given", True),
            idempotency_key=getattr(args, "idempotency_key", None),
            ca_file=nats_ca(args),
            server=server_of(args),
        )

    async def connect(self, user: str = PORTAL) -> NatsClient:
        """Connect as `user`, once; fail fast when NATS is not there or refuses the user."""
        connection = self._connections.get(user)
        if connection is not None:
            return connection
        url, options, ca_file = self.url, {}, self.ca_file
        explicit = self.credentials is not None and self.credentials.explicit is not None
        path = self.credentials.path(user) if self.credentials else None
        if path is not None and (explicit or path.exists()):
            credential = Credential.load(path)
            url = self.url if self.url_given else credential.url
            options = {"user": credential.user, "password": credential.password}
            prefix = inbox_prefix(credential.user)
            ca_file = ca_file or credential.ca
        else:
            prefix = inbox_prefix(urlsplit(self.url).username or user)
        tls = {"tls": tls_context(ca_file)} if ca_file is not None else {}
        # asyncio warns on stderr when nats-py's TLS connection is closed; say nothing of it.
        logging.getLogger("asyncio").setLevel(logging.ERROR)
        errors: list[Exception] = []

        async def remember(error: Exception) -> None:
            errors.append(error)

        try:
            connection = await asyncio.wait_for(
                nats.connect(
                    url,
                    name="swctl",
                    connect_timeout=2,
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    # Else nats-py waits its 2 s between attempts before saying it failed.
                    reconnect_time_wait=0,
                    error_cb=remember,
                    inbox_prefix=prefix,
                    **options,
                    **tls,
                ),
                timeout=CONNECT_SECONDS,
            )
        except (NoServersError, NatsError, OSError, TimeoutError, ValueError) as exc:
            # ValueError: a URL nats-py cannot parse (e.g. a port that is not a number).
            hint = "" if options or path is None else f" (no credentials in {path})"
            if any(isinstance(error, ssl.SSLCertVerificationError) for error in (exc, *errors)):
                hint = (
                    f"; its certificate is not signed by the CA in {ca_file}"
                    if ca_file
                    else "; its certificate is not signed by a trusted CA (--nats-ca FILE)"
                )
            raise Unreachable(f"cannot reach NATS at {url} as {user}{hint}") from exc
        self._connections[user] = connection
        return connection

    async def call(
        self, endpoint: Endpoint[Any, ReplyT], request: BaseModel | dict[str, object]
    ) -> ReplyT:
        """Send a request to `endpoint` and return its typed result; a refusal is raised as
        DomainError."""
        key = self._next_key() if endpoint.changes_state else None
        over_http = self.server is not None and endpoint.audience in HTTP_AUDIENCES
        try:
            reply = await self._request(
                endpoint.subject,
                request,
                key,
                user_for(endpoint),
                path=http_path(endpoint) if over_http else None,
            )
            return decode_result(endpoint, reply)
        except DomainError as exc:
            if key is not None and exc.code is ErrorCode.IN_PROGRESS:
                raise InProgress(exc, self._key) from None
            raise

    def _next_key(self) -> str:
        key = self._key if self._keyed == 0 else f"{self._key}.{self._keyed}"
        self._keyed += 1
        return key

    async def _request(
        self,
        subject: str,
        request: BaseModel | dict[str, object],
        key: str | None,
        user: str = PORTAL,
        *,
        path: str | None = None,
    ) -> bytes:
        body = (
            request.model_dump_json().encode()
            if isinstance(request, BaseModel)
            else json.dumps(request, ensure_ascii=False).encode()
        )
        correlation_id = str(uuid.uuid4())
        headers = {"correlation_id": correlation_id}
        if key is not None:
            headers[IDEMPOTENCY_HEADER] = key
        if path is not None:
            return await self._http_request(path, subject, body, key, correlation_id)
        nc = await self.connect(user)
        sent, waited = 0, 0.0
        while True:
            sent += 1
            try:
                message = await nc.request(subject, body, timeout=self.timeout, headers=headers)
            except NoRespondersError as exc:
                raise Unreachable(
                    f"no service answers {subject}; is the platform running?"
                ) from exc
            except (NatsTimeoutError, TimeoutError) as exc:
                # Only a request with a key is sent again: its retry cannot apply twice.
                if key is not None and sent <= RETRIES:
                    continue
                raise self._timed_out(subject, sent, keyed=key is not None) from exc
            data: bytes = message.data
            if key is not None and waited < self.timeout and _in_progress(data):
                # The first request with this key still runs: its answer comes in a moment.
                pause = min(IN_PROGRESS_PAUSE * 2 ** (sent - 1), self.timeout - waited)
                await asyncio.sleep(pause)
                waited += pause
                continue
            return data

    async def _http_request(
        self, path: str, subject: str, body: bytes, key: str | None, correlation_id: str
    ) -> bytes:
        """POST the request to the gateway, the token as a bearer; return the reply as the bus
        would have (`{"result": ...}` or `{"error": ...}`), with the bus's retries."""
        data = json.loads(body)
        token = data.pop("token", None) if isinstance(data, dict) else None
        payload = json.dumps(data, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, application/problem+json",
            "X-Request-Id": correlation_id,
        }
        if isinstance(token, str):
            headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            headers[IDEMPOTENCY_HEADER] = key
        sent, waited = 0, 0.0
        while True:
            sent += 1
            try:
                reply = await asyncio.to_thread(self._post, path, payload, headers)
            except TimeoutError as exc:
                if key is not None and sent <= RETRIES:
                    continue
                raise self._timed_out(subject, sent, keyed=key is not None) from exc
            if key is not None and waited < self.timeout and _in_progress(reply):
                pause = min(IN_PROGRESS_PAUSE * 2 ** (sent - 1), self.timeout - waited)
                await asyncio.sleep(pause)
                waited += pause
                continue
            return reply

    def _post(self, path: str, payload: bytes, headers: dict[str, str]) -> bytes:
        """One HTTP request to the gateway (in a thread): the reply in the bus's envelope."""
        assert self.server is not None
        parts = urlsplit(self.server)
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = kind(parts.netloc, timeout=self.timeout)
        try:
            connection.request("POST", parts.path.rstrip("/") + path, payload, headers)
            response = connection.getresponse()
            content = response.read()
        except (TimeoutError, http.client.RemoteDisconnected) as exc:
            raise TimeoutError(str(exc)) from exc
        except OSError as exc:
            raise Unreachable(
                f"cannot reach the gateway at {self.server}: {exc.strerror or exc}"
            ) from exc
        finally:
            connection.close()
        status = response.status
        if status == 204:
            return b'{"result":null}'
        if status == 200:
            return b'{"result":' + content + b"}"
        if status == 504:
            raise TimeoutError(f"the gateway at {self.server} had no reply in time")
        try:
            problem = (
                json.loads(content)
                if response.getheader("content-type", "").startswith("application/problem+json")
                else None
            )
        except ValueError:
            problem = None
        if not isinstance(problem, dict) or "code" not in problem:
            raise Unreachable(
                f"the gateway at {self.server} answered {status} {response.reason} for {path}"
            )
        if problem.get("unreachable"):
            raise Unreachable(str(problem.get("detail")))
        error = {
            "code": problem["code"],
            "message": problem.get("detail", ""),
            "fields": problem.get("errors", []),
        }
        return json.dumps({"error": error}, ensure_ascii=False).encode()

    def _timed_out(self, subject: str, sent: int, *, keyed: bool) -> Unreachable:
        times = "" if sent == 1 else f" (sent {sent} times)"
        message = f"no reply on {subject} within {self.timeout:g}s{times}"
        if not keyed:
            return Unreachable(message)
        return Unreachable(
            f"{message}; it may have been applied: the same command with"
            f" --idempotency-key {self._key} gets its answer",
            idempotency_key=self._key,
        )

    async def close(self) -> None:
        """Close every connection."""
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            await connection.close()


def config_dir() -> Path:
    """swctl's own directory, as kubectl has ~/.kube: $SWCTL_CONFIG_DIR or $XDG_CONFIG_HOME/swctl."""
    explicit = os.environ.get("SWCTL_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "swctl"


def session_file() -> Path:
    """Where the current session's token is kept."""
    return config_dir() / "session.json"


def staff_session_file() -> Path:
    """Where the current staff session's token is kept, beside the enterprise session."""
    return config_dir() / "staff-session.json"


def save_session(session: dict[str, object], *, path: Path | None = None) -> None:
    """Keep a session (in `path`, by default the enterprise session's), readable by its owner."""
    path = path or session_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(session, handle, ensure_ascii=False, default=str)
    except OSError as exc:
        raise SessionFileError(f"cannot save the session in {path}: {exc.strerror}") from exc


def load_token(*, path: Path | None = None, logout: str = "swctl logout") -> str | None:
    """The saved session's token; None without a session file, SessionFileError if damaged
    (`logout` is the command that removes it)."""
    path = path or session_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SessionFileError(f"cannot read the session file {path}: {exc.strerror}") from exc
    except ValueError:  # not UTF-8, or not JSON
        data = None
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise SessionFileError(
            f"the session file {path} is damaged; `{logout}` removes it, then log in again"
        )
    return token


def forget_session(*, path: Path | None = None) -> None:
    """Remove the saved session (in `path`, by default the enterprise session's)."""
    path = path or session_file()
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise SessionFileError(f"cannot remove the session file {path}: {exc.strerror}") from exc
