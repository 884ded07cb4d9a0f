"""A service's AsyncAPI 3.0 document, derived from its declarations alone.

The endpoints it serves and the subscriptions it consumes come from its `Routes`, the events it
publishes from the contracts (its own, and the others' it declares it publishes); every
payload is the JSON schema of the declared pydantic model. Nothing reads handler source.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode
from singlewindow import contracts
from singlewindow.contracts.endpoints import Endpoint, Subscription
from singlewindow.contracts.errors import ErrorBody
from singlewindow.contracts.events import CloudEvent, EventSpec, StreamSpec
from singlewindow.runtime.idempotency import HEADER, KEY_PATTERN
from singlewindow.runtime.routes import Routes

JSON = dict[str, Any]
SCHEMAS = "#/components/schemas/"
SERVER = "production"
NATS_HOST = "nats.nats:4222"
"""Where the platform's NATS is on Kubernetes (deploy/nats): the server the documents name."""


def contract_modules() -> tuple[ModuleType, ...]:
    """Every service's contract module."""
    return contracts.service_contracts()


def event_specs() -> list[EventSpec[Any]]:
    """Every EventSpec of the contracts, in the order the contracts define them."""
    found: dict[str, EventSpec[Any]] = {}
    for module in contract_modules():
        for value in vars(module).values():
            if isinstance(value, EventSpec):
                found.setdefault(value.type, value)
    return list(found.values())


def stream_of(subject: str) -> StreamSpec:
    """The StreamSpec whose subjects capture `subject`."""
    for module in contract_modules():
        for value in vars(module).values():
            if isinstance(value, StreamSpec) and any(
                matches(pattern, subject) for pattern in value.subjects
            ):
                return value
    raise LookupError(f"no stream captures {subject}")


def matches(pattern: str, subject: str) -> bool:
    """Whether a NATS subject matches a filter with `*` and `>` wildcards."""
    parts, tokens = pattern.split("."), subject.split(".")
    for index, part in enumerate(parts):
        if part == ">":
            return len(tokens) > index
        if index >= len(tokens) or part not in ("*", tokens[index]):
            return False
    return len(parts) == len(tokens)


def first_line(doc: str | None) -> str:
    """The first line of a docstring, or nothing."""
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


class Schemas:
    """JSON schemas of pydantic models, their definitions gathered for components.schemas."""

    def __init__(self) -> None:
        self.components: dict[str, JSON] = {}

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode = "validation") -> JSON:
        """A $ref to `model`'s schema, adding it and what it uses to the components."""
        schema = model.model_json_schema(ref_template=SCHEMAS + "{model}", mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            self.add(name, definition)
        self.add(model.__name__, schema)
        return {"$ref": SCHEMAS + model.__name__}

    def add(self, name: str, schema: JSON) -> None:
        known = self.components.setdefault(name, schema)
        if known != schema:
            raise ValueError(f"two different schemas are both named {name}")

    def cloud_event(self, spec: EventSpec[Any]) -> JSON:
        """The CloudEvent envelope of an event type, its `data` the event's payload model."""
        return {
            "allOf": [
                self.ref(CloudEvent, "serialization"),
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": spec.type},
                        "dataschema": {"const": spec.dataschema},
                        "data": self.ref(spec.data_model, "serialization"),
                    },
                },
            ]
        }

    def reply(self, result: type[BaseModel] | None) -> JSON:
        """A request's reply: its result, or a typed error (shared/rpc.py)."""
        outcome = {"type": "null"} if result is None else self.ref(result, "serialization")
        return {
            "oneOf": [
                {
                    "type": "object",
                    "title": "Result",
                    "properties": {"result": outcome},
                    "required": ["result"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "title": "Error",
                    "properties": {"error": self.ref(ErrorBody, "serialization")},
                    "required": ["error"],
                    "additionalProperties": False,
                },
            ]
        }


def document(routes: Routes[Any], *, title: str, version: str = "0.1.0") -> JSON:
    """The AsyncAPI 3.0 document of the service whose routes are given."""
    schemas = Schemas()
    doc: JSON = {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                f"Requests the {routes.service} service answers and events it publishes and "
                "consumes, over NATS. Generated from the service's declarations (its contract "
                "and its routes); see docs/events.md for the event catalogue."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            SERVER: {
                "host": NATS_HOST,
                "protocol": "nats",
                "description": "The platform's NATS cluster with JetStream (deploy/nats); each "
                "client connects as its own user.",
            }
        },
        "channels": {},
        "operations": {},
        "components": {"messages": {}, "schemas": {}},
    }
    for served in routes.served:
        _add_endpoint(doc, served.endpoint, schemas)
    for consumed in routes.consumed:
        _add_subscription(doc, consumed.subscription, schemas)
    own = [spec for spec in event_specs() if spec.service == routes.service]
    for spec in [*own, *routes.publishes]:
        _add_published_event(doc, spec, schemas)
    for section in ("channels", "operations"):
        doc[section] = dict(sorted(doc[section].items()))
    doc["components"]["messages"] = dict(sorted(doc["components"]["messages"].items()))
    doc["components"]["schemas"] = dict(sorted(schemas.components.items()))
    return doc


def _server() -> list[JSON]:
    return [{"$ref": f"#/servers/{SERVER}"}]


def _add_endpoint(doc: JSON, endpoint: Endpoint[Any, Any], schemas: Schemas) -> None:
    channel_id, model = endpoint.subject, endpoint.request
    message_id, reply_id = f"{channel_id}:Request", f"{channel_id}:Reply"
    messages = doc["components"]["messages"]
    messages[message_id] = {
        "name": model.__name__,
        "title": message_id,
        "summary": endpoint.summary,
        "correlationId": {"location": "$message.header#/correlation_id"},
        **({"headers": _idempotency_header()} if endpoint.changes_state else {}),
        "payload": schemas.ref(model),
    }
    messages[f"{reply_id}:Message"] = {
        "name": f"{model.__name__}Reply",
        "title": f"{reply_id}:Message",
        "summary": "The result, or a typed error: never a stack trace, never silence.",
        "correlationId": {"location": "$message.header#/correlation_id"},
        "payload": schemas.reply(endpoint.reply),
    }
    doc["channels"][channel_id] = {
        "address": endpoint.subject,
        "description": f"{endpoint.summary} Who may call: {endpoint.audience.value}.",
        "servers": _server(),
        "messages": {"Request": {"$ref": f"#/components/messages/{message_id}"}},
        "bindings": {
            "nats": {
                "subject": endpoint.subject,
                "queue": endpoint.queue,
                "bindingVersion": "custom",
            }
        },
    }
    doc["channels"][reply_id] = {
        "address": None,
        "description": "The requester's inbox: the reply subject of the request.",
        "messages": {"Reply": {"$ref": f"#/components/messages/{reply_id}:Message"}},
    }
    doc["operations"][f"{channel_id}:Answer"] = {
        "action": "receive",
        "summary": endpoint.summary,
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/Request"}],
        "reply": {
            "channel": {"$ref": f"#/channels/{reply_id}"},
            "messages": [{"$ref": f"#/channels/{reply_id}/messages/Reply"}],
        },
    }


def _idempotency_header() -> JSON:
    return {
        "type": "object",
        "properties": {
            HEADER: {
                "type": "string",
                "pattern": f"^{KEY_PATTERN.pattern}$",
                "description": (
                    "Optional. A retry with the same key (and the same body) within 24 hours"
                    " gets the first answer and has no second effect; the same key with another"
                    " body is refused (idempotency_key_reused). Scoped by endpoint and caller."
                ),
            }
        },
    }


def _add_subscription(doc: JSON, subscription: Subscription[Any], schemas: Schemas) -> None:
    spec = subscription.event
    channel_id = f"{spec.subject}:{subscription.durable}"
    message_id = f"{channel_id}:Message"
    doc["components"]["messages"][message_id] = {
        "name": spec.data_model.__name__,
        "title": spec.type,
        "summary": first_line(spec.data_model.__doc__),
        "contentType": "application/cloudevents+json",
        "correlationId": {"location": "$message.payload#/correlationid"},
        "payload": schemas.cloud_event(spec),
    }
    doc["channels"][channel_id] = {
        "address": spec.subject,
        "description": subscription.summary,
        "servers": _server(),
        "messages": {"Message": {"$ref": f"#/components/messages/{message_id}"}},
        "bindings": {
            "nats": {
                "subject": spec.subject,
                "stream": subscription.stream.name,
                "durable": subscription.durable,
                "bindingVersion": "custom",
            }
        },
    }
    doc["operations"][f"{channel_id}:Consume"] = {
        "action": "receive",
        "summary": subscription.summary,
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/Message"}],
    }


def _add_published_event(doc: JSON, spec: EventSpec[Any], schemas: Schemas) -> None:
    channel_id = f"{spec.subject}:{spec.data_model.__name__}:Publish"
    message_id = f"{channel_id}:Message"
    stream = stream_of(spec.subject)
    doc["components"]["messages"][message_id] = {
        "name": spec.data_model.__name__,
        "title": spec.type,
        "summary": first_line(spec.data_model.__doc__),
        "contentType": "application/cloudevents+json",
        "correlationId": {"location": "$message.payload#/correlationid"},
        "headers": {
            "type": "object",
            "properties": {
                "Nats-Msg-Id": {
                    "type": "string",
                    "description": "The event's id: JetStream drops a second publish of it.",
                }
            },
        },
        "payload": schemas.cloud_event(spec),
    }
    doc["channels"][channel_id] = {
        "address": spec.subject,
        "description": f"{first_line(spec.data_model.__doc__)} Kept in stream {stream.name}.",
        "servers": _server(),
        "messages": {"Message": {"$ref": f"#/components/messages/{message_id}"}},
        "bindings": {
            "nats": {"subject": spec.subject, "stream": stream.name, "bindingVersion": "custom"}
        },
    }
    doc["operations"][channel_id] = {
        "action": "send",
        "summary": f"Publish {spec.type}",
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/Message"}],
    }
