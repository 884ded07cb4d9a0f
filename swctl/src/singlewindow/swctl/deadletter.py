"""`swctl deadletter list|replay`: see the events a consumer gave up on, and send them again.

Two kinds of dead letter share the stream: an event a service's consumer could not apply after
every redelivery (`consumer` names the consumer), and an event a service's outbox relay could not
get into any stream (`consumer` is `outbox`, `parked_outbox_seq` the row kept, marked parked, in
that service's outbox). Replaying either publishes the event to its original subject again.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict
from singlewindow.contracts.bus import DEAD_LETTER_STREAM
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.swctl.client import Client


class DeadLetter(BaseModel):
    """An event a consumer could not apply, and why."""

    model_config = ConfigDict(frozen=True)

    sequence: int
    service: str
    """The service that gave up on the event."""
    consumer: str
    reason: str
    original_subject: str
    original_stream: str
    original_sequence: int
    dead_lettered_at: datetime
    body: str
    parked_outbox_seq: int | None = None
    """For an event no stream accepted: its row in the service's outbox, kept and marked parked."""


class DeadLetterList(BaseModel):
    """Dead letters, oldest first."""

    model_config = ConfigDict(frozen=True)

    dead_letters: tuple[DeadLetter, ...]


class Replayed(BaseModel):
    """A dead letter sent back to its consumer."""

    model_config = ConfigDict(frozen=True)

    sequence: int
    republished_to: str


async def list_dead_letters(args: argparse.Namespace, client: Client) -> DeadLetterList:
    """Every dead letter still kept."""
    nc = await client.connect()
    js = nc.jetstream()
    subscription = await js.subscribe(
        DEAD_LETTER_STREAM.subjects[0],
        stream=DEAD_LETTER_STREAM.name,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    letters = []
    try:
        while True:
            try:
                message = await subscription.next_msg(timeout=0.5)
            except TimeoutError:
                break
            headers = message.headers or {}
            parked = headers.get("Sw-Outbox-Seq")
            letters.append(
                DeadLetter(
                    sequence=message.metadata.sequence.stream,
                    service=_service_of(message.subject),
                    consumer=headers.get("Sw-Consumer", "?"),
                    reason=headers.get("Sw-Dead-Letter-Reason", "?"),
                    original_subject=headers.get("Sw-Original-Subject", "?"),
                    original_stream=headers.get("Sw-Original-Stream", "?"),
                    original_sequence=int(headers.get("Sw-Original-Sequence", "0")),
                    dead_lettered_at=message.metadata.timestamp,
                    body=message.data.decode("utf-8", errors="replace"),
                    parked_outbox_seq=int(parked) if parked and parked.isdigit() else None,
                )
            )
    finally:
        await subscription.unsubscribe()
    return DeadLetterList(dead_letters=tuple(letters))


def _service_of(subject: str) -> str:
    """`sw.deadletter.<service>.<consumer>` → the service."""
    parts = subject.split(".")
    return parts[2] if len(parts) > 3 else "?"


async def replay(args: argparse.Namespace, client: Client) -> Replayed:
    """Publish a dead letter to its original subject again, then drop it from the dead letters."""
    nc = await client.connect()
    js = nc.jetstream()
    try:
        message = await js.get_msg(DEAD_LETTER_STREAM.name, args.sequence)
    except NotFoundError as exc:
        raise DomainError(ErrorCode.NOT_FOUND, f"no dead letter {args.sequence}") from exc
    headers = message.headers or {}
    subject = headers.get("Sw-Original-Subject")
    if not subject:
        raise DomainError(
            ErrorCode.CONFLICT, f"dead letter {args.sequence} has no original subject"
        )
    # A fresh message id: the original one is still inside JetStream's de-duplication window.
    await js.publish(
        subject,
        message.data or b"",
        headers={"Nats-Msg-Id": f"replay-{args.sequence}-{message.seq}"},
    )
    await js.delete_msg(DEAD_LETTER_STREAM.name, args.sequence)
    return Replayed(sequence=args.sequence, republished_to=subject)
