"""How a contract declares what its service answers and what other services consume.

An `Endpoint` binds a request subject to its request model, its reply model and who may call it;
a `Subscription` binds a consumer's durable name to the stream and event type it reads. Both are
plain data: the services serve them, and the AsyncAPI documents, the NATS permissions and swctl's
client are derived from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from singlewindow.contracts.events import EventSpec, StreamSpec

RequestT = TypeVar("RequestT", bound=BaseModel)
ReplyT = TypeVar("ReplyT", bound=BaseModel | None)
DataT = TypeVar("DataT", bound=BaseModel)

RPC_ROOT = "sw.rpc"

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The optional NATS header of a request to a `changes_state` endpoint: its idempotency key."""
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{8,128}")
"""What an idempotency key may be: 8 to 128 letters, digits and `. _ : -` (a UUID fits)."""


class Audience(StrEnum):
    """Who may send a request: it decides the NATS permissions of each kind of caller."""

    PUBLIC = "public"
    """Anyone with a client (swctl, later the gateway): logins, registrations."""
    SESSION = "session"
    """A client inside a session: the request carries its token, and the handler checks it."""
    BACK_OFFICE = "back-office"
    """The back office's reviewers."""
    SERVICE = "service"
    """Another service of the platform only: never a client."""
    LOCAL = "local"
    """The front end on the machine with the card readers only (the `workstation` user)."""


@dataclass(frozen=True)
class Endpoint(Generic[RequestT, ReplyT]):
    """A request/reply endpoint: `sw.rpc.<service>.<name>`, its request and reply models."""

    service: str
    name: str
    request: type[RequestT]
    reply: type[ReplyT] | None
    """The model of the reply's `result`; None when the result is always `null`."""
    audience: Audience
    changes_state: bool = False
    """Whether a request changes the service's state: then it may carry an `Idempotency-Key`
    header, and a retry with the same key gets the first answer instead of a second effect."""

    @property
    def summary(self) -> str:
        """What the endpoint does: the first line of its request model's docstring."""
        return (self.request.__doc__ or "").strip().split("\n")[0]

    @property
    def subject(self) -> str:
        """The NATS subject requests are sent to."""
        return f"{RPC_ROOT}.{self.service}.{self.name}"

    @property
    def queue(self) -> str:
        """The queue group the service's replicas share the requests in."""
        return self.service


@dataclass(frozen=True)
class Subscription(Generic[DataT]):
    """A durable JetStream consumer of one event type, owned by the consuming service."""

    service: str
    """The consuming service."""
    stream: StreamSpec
    event: EventSpec[DataT]
    durable: str
    summary: str


def endpoints_of(module: Any) -> tuple[Endpoint[Any, Any], ...]:
    """The endpoints a contract module declares, in the order it declares them."""
    return tuple(value for value in vars(module).values() if isinstance(value, Endpoint))


def subscriptions_of(module: Any) -> tuple[Subscription[Any], ...]:
    """The subscriptions a contract module declares, in the order it declares them."""
    return tuple(value for value in vars(module).values() if isinstance(value, Subscription))
