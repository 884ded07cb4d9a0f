"""Names on the bus that clients and services share, importable without the service runtime."""

from __future__ import annotations

from singlewindow.contracts.events import StreamSpec

DEAD_LETTER_STREAM = StreamSpec(
    name="SW_DEADLETTER",
    subjects=("sw.deadletter.>",),
    description="Events a consumer could not apply after every redelivery, kept for replay",
)


def inbox_prefix(user: str) -> str:
    """Where `user`'s replies arrive: a prefix of its own, so NATS can forbid others to read them."""
    return f"_INBOX_{user}"
