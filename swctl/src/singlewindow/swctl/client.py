"""How swctl reaches the platform: NATS requests with typed replies, and the saved session.

Every connection authenticates with a credential file (`{"url", "user", "password"}`, as `swctl
up` writes them under `<data-dir>/credentials/`): `--credentials FILE` (or $SW_CREDENTIALS) for
everything, else the data directory's file of the user the command needs (`portal` for requests,
`workstation` for the card readers, `subscriber` to tail events, `operator` for the audit trail
and dead letters). `--nats-url` still names the server; a URL with `user:password@` works
without a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
from singlewindow.contracts.endpoints import Audience, Endpoint
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


async def _quiet(error: Exception) -> None:
    """Connection errors become one plain `unreachable` message, not tracebacks."""


class Unreachable(Exception):
    """The platform (NATS, or the service behind a subject) did not answer."""


class CredentialsError(Unreachable):
    """A credential file that cannot be read or is not `{"url", "user", "password"}`."""


@dataclass(frozen=True)
class Credential:
    """A NATS user's credential, as `swctl up` writes it."""

    url: str
    user: str
    password: str

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
        return cls(url=str(fields[0]), user=str(fields[1]), password=str(password))


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
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.credentials = credentials
        self.url_given = url_given
        """Whether `url` was asked for: otherwise the credential's URL wins."""
        self._connections: dict[str, NatsClient] = {}

    @classmethod
    def of(cls, args: argparse.Namespace) -> Client:
        """The client of a parsed command line."""
        return cls(
            args.nats_url,
            args.timeout,
            Credentials.of(args),
            url_given=getattr(args, "nats_url_given", True),
        )

    async def connect(self, user: str = PORTAL) -> NatsClient:
        """Connect as `user`, once; fail fast when NATS is not there or refuses the user."""
        connection = self._connections.get(user)
        if connection is not None:
            return connection
        url, options = self.url, {}
        explicit = self.credentials is not None and self.credentials.explicit is not None
        path = self.credentials.path(user) if self.credentials else None
        if path is not None and (explicit or path.exists()):
            credential = Credential.load(path)
            url = self.url if self.url_given else credential.url
            options = {"user": credential.user, "password": credential.password}
            prefix = inbox_prefix(credential.user)
        else:
            prefix = inbox_prefix(urlsplit(self.url).username or user)
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
                    error_cb=_quiet,
                    inbox_prefix=prefix,
                    **options,
                ),
                timeout=CONNECT_SECONDS,
            )
        except (NoServersError, NatsError, OSError, TimeoutError, ValueError) as exc:
            # ValueError: a URL nats-py cannot parse (e.g. a port that is not a number).
            hint = "" if options or path is None else f" (no credentials in {path})"
            raise Unreachable(f"cannot reach NATS at {url} as {user}{hint}") from exc
        self._connections[user] = connection
        return connection

    async def call(
        self, endpoint: Endpoint[Any, ReplyT], request: BaseModel | dict[str, object]
    ) -> ReplyT:
        """Send a request to `endpoint` and return its typed result; a refusal is raised as
        DomainError."""
        return decode_result(
            endpoint, await self._request(endpoint.subject, request, user_for(endpoint))
        )

    async def _request(
        self, subject: str, request: BaseModel | dict[str, object], user: str = PORTAL
    ) -> bytes:
        nc = await self.connect(user)
        body = (
            request.model_dump_json().encode()
            if isinstance(request, BaseModel)
            else json.dumps(request, ensure_ascii=False).encode()
        )
        try:
            message = await nc.request(
                subject, body, timeout=self.timeout, headers={"correlation_id": str(uuid.uuid4())}
            )
        except NoRespondersError as exc:
            raise Unreachable(f"no service answers {subject}; is the platform running?") from exc
        except (NatsTimeoutError, TimeoutError) as exc:
            raise Unreachable(f"no reply on {subject} within {self.timeout:g}s") from exc
        data: bytes = message.data
        return data

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


def save_session(session: dict[str, object]) -> None:
    """Keep a session, readable by its owner only."""
    path = session_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(session, handle, ensure_ascii=False, default=str)
    except OSError as exc:
        raise SessionFileError(f"cannot save the session in {path}: {exc.strerror}") from exc


def load_token() -> str | None:
    """The saved session's token; None without a session file, SessionFileError if damaged."""
    path = session_file()
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
            f"the session file {path} is damaged; `swctl logout` removes it, then log in again"
        )
    return token


def forget_session() -> None:
    """Remove the saved session."""
    path = session_file()
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise SessionFileError(f"cannot remove the session file {path}: {exc.strerror}") from exc
