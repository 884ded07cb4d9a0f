"""Names on the bus that clients and services share, importable without the service runtime."""

from __future__ import annotations

from singlewindow.contracts.events import MIB, Discard, StreamSpec

DEAD_LETTER_STREAM = StreamSpec(
    name="SW_DEADLETTER",
    subjects=("sw.deadletter.>",),
    description=(
        "Events a consumer could not apply after every redelivery, and outbox events no stream"
        " accepted, kept until replayed: no age limit, and a full stream refuses new dead"
        " letters rather than dropping old ones (the failing consumer is redelivered meanwhile,"
        " and a parked outbox row stays in its service's outbox)"
    ),
    max_age_seconds=0,
    max_bytes=256 * MIB,
    discard=Discard.NEW,
)


def inbox_prefix(user: str) -> str:
    """Where `user`'s replies arrive: a prefix of its own, so NATS can forbid others to read them."""
    return f"_INBOX_{user}"


REPLAY_ROOT = "sw.replay"


def replay_subject(service: str, durable: str) -> str:
    """Where an operator asks `service` to apply dead letter of its consumer `durable` again.

    The request carries only the dead letter's sequence: the service reads the event from the
    dead-letter stream itself, so replaying never means publishing an event one does not own.
    """
    return f"{REPLAY_ROOT}.{service}.{durable}"


SUBSCRIBER_DURABLE = "subscriber"
"""The durable consumer name the `subscriber` user may create on each public stream."""
