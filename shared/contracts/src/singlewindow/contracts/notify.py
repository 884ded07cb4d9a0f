"""The notification stream: messages to people (SMS), apart from every other event.

A service that has to tell a person something (a one-time code, a one-time password) stages a
`MessageRequested` event through its outbox on `sw.notify.<service>.message-requested.v1`. Only
the `notifier` NATS user reads `SW_NOTIFY` (an SMS gateway in production, `swctl up`'s
development notifier at home): the public streams, the audit trail and the operator never see
it, and nothing else carries the codes. Messages are kept a day, long enough for a notifier
that was down to catch up, short enough that old codes do not pile up.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from singlewindow.contracts.events import DAY, MIB, Discard, EventData, EventSpec, StreamSpec

NOTIFY_ROOT = "sw.notify"
NOTIFIER_DURABLE = "notifier"
"""The durable consumer the `notifier` user reads the stream with."""

STREAM = StreamSpec(
    name="SW_NOTIFY",
    subjects=(f"{NOTIFY_ROOT}.>",),
    description=(
        "Messages to people (one-time codes and passwords by SMS), read only by the notifier."
        " Kept one day; a full stream drops the oldest (a code older than that has expired)"
    ),
    max_age_seconds=DAY,
    max_bytes=64 * MIB,
    discard=Discard.OLD,
)


class MessageRequested(EventData):
    """Send `text` to the mobile number `to`: the only event that may carry a code."""

    to: Annotated[str, Field(description="the mobile number, E.164 or the mainland's 11 digits")]
    kind: Annotated[
        str, Field(description="what the message is for: `mobile_change`, `activation`, ...")
    ]
    text: str
    account: str | None = None
    """The account the message concerns, if any."""


def message_requested(service: str) -> EventSpec[MessageRequested]:
    """The `MessageRequested` event type of `service` (on `sw.notify.<service>.>`)."""
    return EventSpec(service, "message-requested", 1, MessageRequested, notify=True)
