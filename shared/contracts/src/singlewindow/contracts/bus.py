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
