"""A service's handlers, each bound to the endpoint or subscription of a contract it serves.

    routes = Routes[Registration](contract.SERVICE)

    @routes.serve(contract.SUBMIT_CARDLESS)
    async def submit_cardless(application: CardlessApplication, deps: Registration) -> ApplicationView:
        ...

    @routes.consume(contract.REVIEW_DECISIONS)
    async def apply_review_decision(
        decided: ReviewDecided, event: CloudEvent, connection: AsyncConnection, deps: Registration
    ) -> None:
        ...

A request handler takes the typed request and returns the typed reply, raising `DomainError`
for a refusal; an event handler applies the typed event inside the transaction that records it
in the inbox. `Service.include` wires them to the broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from singlewindow.contracts.endpoints import Endpoint, Subscription
from singlewindow.contracts.events import CloudEvent, EventSpec
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

DepsT = TypeVar("DepsT")
RequestT = TypeVar("RequestT", bound=BaseModel)
ReplyT = TypeVar("ReplyT", bound=BaseModel | None)
DataT = TypeVar("DataT", bound=BaseModel)
PreparedT = TypeVar("PreparedT")
AppliedT = TypeVar("AppliedT")

RequestHandler = Callable[[RequestT, DepsT], Awaitable[ReplyT]]
EventHandler = Callable[[AppliedT, CloudEvent, AsyncConnection, DepsT], Awaitable[None]]
"""Applies an event (its typed data, or what `prepare` made of it) in the inbox's transaction."""
SyncEventHandler = Callable[[AppliedT, CloudEvent, Connection, DepsT], None]
"""The same as a synchronous function: the inbox's record and it are one trip to the database."""


@dataclass(frozen=True)
class Served(Generic[DepsT]):
    """An endpoint and the handler that answers it."""

    endpoint: Endpoint[Any, Any]
    handler: RequestHandler[Any, DepsT, Any]


@dataclass(frozen=True)
class Consumed(Generic[DepsT]):
    """A subscription and the handler that applies its events."""

    subscription: Subscription[Any]
    handler: EventHandler[Any, DepsT]
    prepare: Callable[[Any, DepsT], Awaitable[Any]] | None = None
    """Runs before the transaction; its result, not the event's data, goes to the handler."""
    sync_handler: SyncEventHandler[Any, DepsT] | None = None
    """The handler as written, when it is synchronous (`consume_sync`); `handler` then runs it
    in an async transaction (`AsyncConnection.run_sync`)."""


class Routes(Generic[DepsT]):
    """A service's whole surface on the bus: what it answers, consumes, asks and publishes.

    `asks` are other services' endpoints it may request; `publishes` are events of other
    services' contracts it may publish (a review requested of the review service, say). Its own
    contract's events it may always publish. The NATS permissions are derived from this.
    """

    def __init__(
        self,
        service: str,
        *,
        asks: tuple[Endpoint[Any, Any], ...] = (),
        publishes: tuple[EventSpec[Any], ...] = (),
    ) -> None:
        self.service = service
        self.asks = asks
        self.publishes = publishes
        self.served: list[Served[DepsT]] = []
        self.consumed: list[Consumed[DepsT]] = []

    def serve(
        self, endpoint: Endpoint[RequestT, ReplyT]
    ) -> Callable[
        [RequestHandler[RequestT, DepsT, ReplyT]], RequestHandler[RequestT, DepsT, ReplyT]
    ]:
        """Answer `endpoint` with the decorated handler."""
        if endpoint.service != self.service:
            raise ValueError(f"{self.service} cannot serve {endpoint.subject}: not its contract")
        if any(s.endpoint == endpoint for s in self.served):
            raise ValueError(f"{endpoint.subject} is served twice")

        def register(
            handler: RequestHandler[RequestT, DepsT, ReplyT],
        ) -> RequestHandler[RequestT, DepsT, ReplyT]:
            self.served.append(Served(endpoint, handler))
            return handler

        return register

    def consume(
        self, subscription: Subscription[DataT]
    ) -> Callable[[EventHandler[DataT, DepsT]], EventHandler[DataT, DepsT]]:
        """Apply each event of `subscription` once with the decorated handler."""
        return self._consume(subscription, None)

    def consume_sync(
        self, subscription: Subscription[DataT]
    ) -> Callable[[SyncEventHandler[DataT, DepsT]], SyncEventHandler[DataT, DepsT]]:
        """Like `consume`, with a synchronous handler: its statements and the inbox's record
        run as one transaction in one trip to the database (`Database.run`)."""
        if subscription.service != self.service:
            raise ValueError(f"{self.service} cannot consume as {subscription.durable}")

        def register(handler: SyncEventHandler[DataT, DepsT]) -> SyncEventHandler[DataT, DepsT]:
            async def in_async_transaction(
                data: DataT, event: CloudEvent, connection: AsyncConnection, deps: DepsT
            ) -> None:
                await connection.run_sync(lambda sync: handler(data, event, sync, deps))

            self.consumed.append(
                Consumed(subscription, in_async_transaction, None, sync_handler=handler)
            )
            return handler

        return register

    def consume_prepared(
        self,
        subscription: Subscription[DataT],
        prepare: Callable[[DataT, DepsT], Awaitable[PreparedT]],
    ) -> Callable[[EventHandler[PreparedT, DepsT]], EventHandler[PreparedT, DepsT]]:
        """Like `consume`, but `prepare` first turns the event's data into what the handler
        applies, outside the transaction: where that takes a request to another service."""
        return self._consume(subscription, prepare)

    def _consume(
        self,
        subscription: Subscription[Any],
        prepare: Callable[[Any, DepsT], Awaitable[Any]] | None,
    ) -> Callable[[EventHandler[Any, DepsT]], EventHandler[Any, DepsT]]:
        if subscription.service != self.service:
            raise ValueError(f"{self.service} cannot consume as {subscription.durable}")

        def register(handler: EventHandler[Any, DepsT]) -> EventHandler[Any, DepsT]:
            self.consumed.append(Consumed(subscription, handler, prepare))
            return handler

        return register
