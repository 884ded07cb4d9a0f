"""Write each service's AsyncAPI 3.0 document and the platform's event catalogue, from the code.

    uv run python scripts/asyncapi.py           # docs/asyncapi/<service>.json, docs/events.md
    uv run python scripts/asyncapi.py --check   # exit 1 if a committed file is stale

Each document starts as FastStream makes it from the service's app (its subscribers, with the
handlers' docstrings), which knows neither what a request holds (handlers parse the raw message,
so FastStream sees an empty payload) nor the events the service publishes (they leave through
the outbox, not a FastStream publisher). So this script adds, from the same code:

- each request's payload (the model the handler parses, in its `answer(msg, Model, handle)`) and
  its reply (`{"result": ...}` with the model `handle` returns, or `{"error": ErrorBody}`);
- each consumed event's CloudEvent envelope with its data model (the `EventSpec` of the subject);
- a `send` operation for every event of the service's contracts.

Importing an app needs neither NATS nor a database: both are reached in its lifespan only.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import os
import pkgutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ASYNCAPI = DOCS / "asyncapi"
CATALOGUE = DOCS / "events.md"
SCHEMAS = "#/components/schemas/"
SERVER = "production"
NATS_HOST = "nats.nats:4222"
"""Where the platform's NATS is on Kubernetes (deploy/nats): the server the documents name."""

JSON = dict[str, Any]


def service_names() -> list[str]:
    """Every service in `services/`."""
    return sorted(path.parent.name for path in (ROOT / "services").glob("*/pyproject.toml"))


def module_of(service: str) -> str:
    return service.replace("-", "_")


def import_app(service: str) -> Any:
    """The service's ASGI app, imported as it is at start, but with a throwaway database."""
    prefix = f"SW_{module_of(service).upper()}_"
    # In memory: importing must not create files, and the documents must not depend on the
    # environment they were generated in.
    os.environ[prefix + "DATABASE_URL"] = "sqlite+aiosqlite:///:memory:"
    os.environ[prefix + "NATS_URL"] = f"nats://{NATS_HOST}"
    return importlib.import_module(f"singlewindow.{module_of(service)}.app").app


# Contracts


def contract_modules() -> Iterator[Any]:
    from singlewindow.shared import contracts

    for info in pkgutil.iter_modules(contracts.__path__, f"{contracts.__name__}."):
        yield importlib.import_module(info.name)


def event_specs() -> list[Any]:
    """Every EventSpec of the contracts, in the order the contracts define them."""
    from singlewindow.shared.events import EventSpec

    return [
        value
        for module in contract_modules()
        for value in vars(module).values()
        if isinstance(value, EventSpec)
    ]


def stream_of(subject: str) -> Any:
    """The StreamSpec whose subjects capture `subject`."""
    from singlewindow.shared.events import StreamSpec

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


# JSON schemas


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

    def cloud_event(self, spec: Any) -> JSON:
        """The CloudEvent envelope of an event type, its `data` the event's payload model."""
        from singlewindow.shared.events import CloudEvent

        envelope = self.ref(CloudEvent, "serialization")
        return {
            "allOf": [
                envelope,
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
        from singlewindow.shared.errors import ErrorBody

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


# What the handlers parse and return


def request_models(
    handler: Callable[..., Any],
) -> tuple[type[BaseModel], type[BaseModel] | None]:
    """The model a request handler parses and the one it answers with.

    Handlers read `return await deps.service.answer(msg, Model, handle)`, with `handle` an inner
    function whose return annotation is the result; both names resolve in the handler's module.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(handler)))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "answer"
        and len(node.args) == 3
    ]
    if len(calls) != 1:
        raise LookupError(f"{handler.__qualname__} does not answer through Service.answer once")
    model_arg, handle_arg = calls[0].args[1], calls[0].args[2]
    if not isinstance(model_arg, ast.Name) or not isinstance(handle_arg, ast.Name):
        raise LookupError(f"{handler.__qualname__}: answer(msg, Model, handle) expected")
    namespace = handler.__globals__
    model = namespace[model_arg.id]
    [handle] = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncFunctionDef) and node.name == handle_arg.id
    ]
    result: type[BaseModel] | None = None
    if isinstance(handle.returns, ast.Name):
        result = namespace[handle.returns.id]
    elif not (isinstance(handle.returns, ast.Constant) and handle.returns.value is None):
        raise LookupError(f"{handler.__qualname__}: `handle` must return a model or None")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise LookupError(f"{handler.__qualname__}: {model_arg.id} is not a pydantic model")
    return model, result


# The documents


def specification(service: str, schemas: Schemas) -> JSON:
    """The service's AsyncAPI 3.0 document."""
    from faststream.nats.subscriber.usecases.core_subscriber import CoreSubscriber
    from faststream.nats.subscriber.usecases.stream_pull_subscriber import PullStreamSubscriber

    app = import_app(service)
    document: JSON = json.loads(app.schema.to_specification().to_json())
    document = rename_server(document)
    components = document.setdefault("components", {})
    messages: JSON = components.setdefault("messages", {})
    specs = {spec.subject: spec for spec in event_specs()}

    for subscriber in app.broker.subscribers:
        [call] = subscriber.calls
        handler = call.handler._original_call
        [channel_id] = [
            name
            for name, channel in document["channels"].items()
            if channel["address"] == subscriber.subject.broker_address
        ]
        channel = document["channels"][channel_id]
        [message_ref] = channel["messages"].values()
        message = messages[message_ref["$ref"].rsplit("/", 1)[1]]
        if isinstance(subscriber, CoreSubscriber):
            model, result = request_models(handler)
            message["payload"] = schemas.ref(model)
            message["name"] = model.__name__
            message["summary"] = first_line(model.__doc__)
            reply_id = f"{channel_id}:Reply"
            reply_message = f"{reply_id}:Message"
            messages[reply_message] = {
                "name": f"{model.__name__}Reply",
                "title": reply_message,
                "summary": "The result, or a typed error: never a stack trace, never silence.",
                "correlationId": {"location": "$message.header#/correlation_id"},
                "payload": schemas.reply(result),
            }
            document["channels"][reply_id] = {
                "address": None,
                "description": "The requester's inbox: the reply subject of the request.",
                "messages": {"Reply": {"$ref": f"#/components/messages/{reply_message}"}},
            }
            operation = document["operations"][f"{channel_id}Subscribe"]
            operation["reply"] = {
                "channel": {"$ref": f"#/channels/{reply_id}"},
                "messages": [{"$ref": f"#/channels/{reply_id}/messages/Reply"}],
            }
        elif isinstance(subscriber, PullStreamSubscriber):
            spec = specs[subscriber.config.filter_subject]
            message["payload"] = schemas.cloud_event(spec)
            message["name"] = spec.data_model.__name__
            message["summary"] = first_line(spec.data_model.__doc__)
            channel["bindings"]["nats"]["durable"] = subscriber.extra_options["durable"]
            channel["bindings"]["nats"]["stream"] = subscriber.extra_options["stream"]

    for spec in (spec for spec in event_specs() if spec.service == service):
        add_published_event(document, spec, schemas)

    # FastStream orders channels as its sets happen to iterate (string hashing varies from run
    # to run): sorted, the documents only change when the code does.
    for section in ("channels", "operations"):
        document[section] = dict(sorted(document[section].items()))
    components["schemas"] = dict(sorted(schemas.components.items()))
    components["messages"] = dict(sorted(messages.items()))
    document["info"]["description"] = (
        f"Requests the {service} service answers and events it publishes and consumes, over "
        "NATS. Generated by scripts/asyncapi.py from the code; see docs/events.md for the "
        "event catalogue."
    )
    return document


def rename_server(document: JSON) -> JSON:
    """FastStream names the server `development`; the documents describe the platform's NATS."""
    text = json.dumps(document).replace("#/servers/development", f"#/servers/{SERVER}")
    renamed: JSON = json.loads(text)
    renamed["servers"] = {
        SERVER: {
            "host": NATS_HOST,
            "protocol": "nats",
            "description": "The platform's NATS cluster with JetStream (deploy/nats); each "
            "client connects as its own user.",
        }
    }
    return renamed


def add_published_event(document: JSON, spec: Any, schemas: Schemas) -> None:
    """A channel and a send operation for one event the service publishes through its outbox."""
    channel_id = f"{spec.subject}:{spec.data_model.__name__}:Publish"
    message_id = f"{channel_id}:Message"
    stream = stream_of(spec.subject)
    document["components"]["messages"][message_id] = {
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
    document["channels"][channel_id] = {
        "address": spec.subject,
        "description": f"{first_line(spec.data_model.__doc__)} Kept in stream {stream.name}.",
        "servers": [{"$ref": f"#/servers/{SERVER}"}],
        "messages": {"Message": {"$ref": f"#/components/messages/{message_id}"}},
        "bindings": {
            "nats": {"subject": spec.subject, "stream": stream.name, "bindingVersion": "custom"}
        },
    }
    document["operations"][channel_id] = {
        "action": "send",
        "summary": f"Publish {spec.type}",
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/Message"}],
    }


def first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""


# The catalogue

ENVELOPE = """\
Every event is a [CloudEvents 1.0](https://cloudevents.io) event in structured JSON mode
(`content-type: application/cloudevents+json`), published to JetStream by the owning service's
outbox relay after the transaction that caused it committed:

| attribute | value |
| --- | --- |
| `specversion` | `1.0` |
| `id` | a UUID; also the `Nats-Msg-Id` header, so JetStream drops a repeated publish, and the key consumers de-duplicate on |
| `source` | `urn:singlewindow:service:<service>` |
| `type` | versioned, reverse-DNS: `cn.singlewindow.<service>.<event>.v<version>` (below) |
| `subject` | the enterprise's USCC (统一社会信用代码), where the event concerns one |
| `time` | when it happened (RFC 3339, UTC) |
| `datacontenttype` | `application/json` |
| `dataschema` | `urn:singlewindow:schema:<service>.<event>.v<version>` |
| `correlationid` | extension: the correlation id of the request that caused it, for tracing across services |
| `data` | the payload below; it never carries a secret, a PIN, a password or a full ID number |

Consumers should ignore fields they do not know (producers add fields without a new version) and
treat a new `v<version>` as a new type.
"""


def catalogue() -> str:
    """docs/events.md: every event type, its subject, stream and payload."""
    lines = [
        "# Event catalogue",
        "",
        "Generated by `scripts/asyncapi.py` from the `EventSpec`s of `shared/contracts`; do not",
        "edit by hand. The AsyncAPI 3.0 documents of each service are in `docs/asyncapi/`.",
        "",
        "## The envelope",
        "",
        ENVELOPE,
        "## Events",
        "",
        "| type | NATS subject | stream |",
        "| --- | --- | --- |",
    ]
    specs = event_specs()
    for spec in specs:
        anchor = spec.type.replace(".", "")
        lines.append(
            f"| [`{spec.type}`](#{anchor}) | `{spec.subject}` | `{stream_of(spec.subject).name}` |"
        )
    for spec in specs:
        stream = stream_of(spec.subject)
        schema = spec.data_model.model_json_schema(mode="serialization")
        definitions = schema.get("$defs", {})
        lines += [
            "",
            f"### {spec.type}",
            "",
            first_line(spec.data_model.__doc__),
            "",
            f"- NATS subject: `{spec.subject}`",
            f"- stream: `{stream.name}` ({stream.description})",
            f"- published by: {spec.service}",
            f"- `dataschema`: `{spec.dataschema}`",
            "",
            f"`data` ({spec.data_model.__name__}):",
            "",
            *field_table(schema),
        ]
        for name in sorted(referenced(schema, definitions)):
            definition = definitions[name]
            lines += ["", describe_definition(name, definition)]
            if "properties" in definition:
                lines += ["", *field_table(definition)]
    return "\n".join(lines) + "\n"


def field_table(schema: JSON) -> list[str]:
    required = set(schema.get("required", ()))
    rows = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for name, field in schema.get("properties", {}).items():
        description = field.get("description", "").replace("\n", " ").replace("|", "\\|")
        rows.append(
            f"| `{name}` | {type_of(field)} | {'yes' if name in required else 'no'} | {description} |"
        )
    return rows


def type_of(field: JSON) -> str:
    """A JSON schema type, readably."""
    if "$ref" in field:
        return f"`{field['$ref'].rsplit('/', 1)[1]}`"
    if "anyOf" in field:
        return " or ".join(type_of(option) for option in field["anyOf"])
    if "enum" in field:
        return "one of " + ", ".join(f"`{value}`" for value in field["enum"])
    kind = field.get("type", "any")
    if kind == "array":
        items = field.get("items", {})
        return f"array of {type_of(items) if items else 'any'}"
    if kind == "string" and "format" in field:
        return f"string ({field['format']})"
    return str(kind)


def referenced(schema: JSON, definitions: JSON) -> set[str]:
    """Names of the definitions a schema uses, directly or through another definition."""
    found: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        text = json.dumps(node)
        for name in definitions:
            if f'"#/$defs/{name}"' in text and name not in found:
                found.add(name)
                pending.append(definitions[name])
    return found


def describe_definition(name: str, definition: JSON) -> str:
    """One line naming a nested model or enumeration and saying what it is."""
    summary = first_line(definition.get("description"))
    if "enum" in definition:
        values = ", ".join(f"`{value}`" for value in definition["enum"])
        return (
            f"**`{name}`**"
            + (f" ({summary.rstrip('.')})" if summary else "")
            + f": one of {values}."
        )
    return f"**`{name}`**: {summary or 'an object.'}"


# Writing


def rendered() -> dict[Path, str]:
    """Every generated file and its content."""
    files: dict[Path, str] = {}
    for service in service_names():
        document = specification(service, Schemas())
        files[ASYNCAPI / f"{service}.json"] = (
            json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        )
    files[CATALOGUE] = catalogue()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the AsyncAPI documents and event catalogue")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    files = rendered()
    if args.check:
        stale = [p for p, text in files.items() if not p.exists() or p.read_text("utf-8") != text]
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run scripts/asyncapi.py")
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
