"""The CloudEvents 1.0 envelope of every platform event, and how an event type is declared."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

EVENT_TYPE_PREFIX = "cn.singlewindow"
SCHEMA_BASE = "urn:singlewindow:schema"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"

DataT = TypeVar("DataT", bound=BaseModel)


class EventData(BaseModel):
    """Base of event payloads: frozen, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    correlationid: str | None = Field(default=None, description="CloudEvents extension")
    data: dict[str, Any]


@dataclass(frozen=True)
class EventSpec(Generic[DataT]):
    """An event type: its owning service, name, version, NATS subject and payload model."""

    service: str
    name: str
    version: int
    data_model: type[DataT]
    audit: bool = False
    """An audit event: kept in the audit trail (`sw.audit.>`), apart from the public events."""
    internal: bool = False
    """Work between services (`sw.internal.>`), in a stream no integrator is offered."""
    notify: bool = False
    """A message to a person (`sw.notify.>`): read by the notifier alone (`contracts.notify`)."""

    @property
    def type(self) -> str:
        """The CloudEvents `type`, reverse-DNS and versioned."""
        return f"{EVENT_TYPE_PREFIX}.{self.service}.{self.name}.v{self.version}"

    @property
    def root(self) -> str:
        """The subject root: public events, the audit trail, work between services, messages."""
        if self.notify:
            return "sw.notify"
        return "sw.audit" if self.audit else "sw.internal" if self.internal else "sw.events"

    @property
    def subject(self) -> str:
        """The NATS subject the event is published on."""
        return f"{self.root}.{self.service}.{self.name}.v{self.version}"

    @property
    def dataschema(self) -> str:
        """Where the payload's JSON schema is named."""
        return f"{SCHEMA_BASE}:{self.service}.{self.name}.v{self.version}"

    def make(
        self,
        data: DataT,
        *,
        subject: str | None,
        source: str,
        correlation_id: str | None = None,
        now: datetime | None = None,
    ) -> CloudEvent:
        """Wrap `data` in a new CloudEvent with a fresh id."""
        return CloudEvent(
            id=str(uuid.uuid4()),
            source=source,
            type=self.type,
            subject=subject,
            time=now or datetime.now(UTC),
            dataschema=self.dataschema,
            correlationid=correlation_id,
            data=data.model_dump(mode="json"),
        )

    def parse(self, event: CloudEvent) -> DataT:
        """The typed payload of an event of this type."""
        return self.data_model.model_validate(event.data)


DAY = 24 * 3600
MIB = 1024 * 1024


class Discard(StrEnum):
    """What a full stream does with a new message (JetStream's discard policy)."""

    OLD = "old"
    """Drop the oldest messages to make room: for events every consumer reads through its own
    durable within the stream's age, where an old event is history, not pending work."""
    NEW = "new"
    """Refuse the new message: where dropping an old one could lose work not yet applied, or the
    record. The publisher's outbox keeps a refused event (and parks it for an operator)."""


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream owned by one service, with the limits chosen for what it keeps."""

    name: str
    subjects: tuple[str, ...]
    description: str
    max_age_seconds: float
    """How long a message is kept; 0 keeps it until the byte limit decides."""
    max_bytes: int
    """The most the stream stores; what happens at the limit is `discard`'s."""
    discard: Discard
    deny_delete: bool = False
    """Whether single messages may not be deleted (the audit trail)."""
    deny_purge: bool = False
    """Whether the stream may not be purged (the audit trail)."""
