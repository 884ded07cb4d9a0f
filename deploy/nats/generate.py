"""Derive the platform's NATS permission table from the code, and write it where NATS reads it.

One NATS user per service, allowed exactly what that service's code does on the bus:

- its request subscribers (``sw.rpc.<service>.>``, in its own queue group) and their replies;
- the requests it makes to other services (found in its source, e.g. registration's
  ``service.ask(accounts.ONBOARDING_CHECK, ...)``);
- its own events (``sw.events.<service>.>``, ``sw.audit.<service>.>``) and dead letters;
- the JetStream API for the streams it declares at start (those it writes and those it reads,
  plus the dead-letter stream: what ``ensure_streams`` is given) and for its own durable pull
  consumers, with acknowledgements on those consumers only.

Plus two users for ``swctl``: ``swctl``, for people and scripts, may send any request but the
internal ones (a subject whose docstring in ``shared/contracts`` starts with ``Internal:``) and
read the public streams (``singlewindow.swctl.events.PUBLIC_STREAMS``) with ordered consumers;
``operator`` may besides read the audit trail and the dead letters, and replay a dead letter to
the subject its consumer reads (``swctl deadletter``).

Run ``uv run python deploy/nats/generate.py`` after changing a subject, stream or consumer, and
commit what it writes; ``--check`` fails when the committed files are stale (the deploy tests run
the same comparison).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import itertools
import json
import pkgutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from faststream.nats import NatsRouter
from faststream.nats.subscriber.usecases.core_subscriber import CoreSubscriber
from faststream.nats.subscriber.usecases.stream_pull_subscriber import PullStreamSubscriber
from singlewindow.shared import contracts
from singlewindow.shared.bus import DEAD_LETTER_STREAM, inbox_prefix
from singlewindow.shared.events import EventSpec, StreamSpec
from singlewindow.swctl.events import PUBLIC_STREAMS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PERMISSIONS_CONF = HERE / "permissions.conf"
HELM_VALUES = HERE / "values-permissions.yaml"

ACCOUNT = "SINGLEWINDOW"


def inbox(user: str) -> str:
    """Where `user` receives replies (requests, JetStream API answers, deliveries): its own only."""
    return inbox_prefix(user) + ".>"


PASSWORD_SECRET = "nats-user-passwords"
"""The Secret, in NATS's namespace, that holds each user's password under the user's name."""
SWCTL = "swctl"
OPERATOR = "operator"


class GenerationError(Exception):
    """The code does something the permission scheme cannot express; fix the code or the scheme."""


@dataclass(frozen=True)
class Consumer:
    """A durable pull consumer a service binds at start."""

    stream: str
    durable: str
    filter_subject: str


@dataclass(frozen=True)
class ServiceFacts:
    """What one service does on the bus, read from its code."""

    name: str
    queue: str | None
    requests: tuple[str, ...]
    publishes: tuple[str, ...]
    own_streams: tuple[str, ...]
    streams: tuple[str, ...]
    consumers: tuple[Consumer, ...]

    @property
    def rpc_root(self) -> str:
        """The subjects its request subscribers may take."""
        return f"sw.rpc.{self.name}.>"


@dataclass(frozen=True)
class Rule:
    """Subjects allowed or denied, with why (a comment in the generated files)."""

    why: str
    subjects: tuple[str, ...]


@dataclass(frozen=True)
class User:
    """One NATS user and its permissions."""

    name: str
    description: str
    publish: tuple[Rule, ...]
    subscribe: tuple[Rule, ...]
    publish_deny: tuple[Rule, ...] = ()
    allow_responses: bool = False

    @property
    def password_variable(self) -> str:
        """The environment variable that holds the password, for nats-server and the service."""
        return f"SW_{self.name.upper().replace('-', '_')}_NATS_PASSWORD"


def module_name(service: str) -> str:
    """The Python module name of a service (the hyphen stays in folder and subject names only)."""
    return service.replace("-", "_")


def service_names() -> tuple[str, ...]:
    """Every service in ``services/``."""
    return tuple(sorted(path.parent.name for path in (ROOT / "services").glob("*/pyproject.toml")))


def contract_of(service: str) -> ModuleType | None:
    """The service's contracts module, if it has one yet."""
    try:
        return importlib.import_module(f"{contracts.__name__}.{module_name(service)}")
    except ModuleNotFoundError:
        return None


def service_facts(service: str) -> ServiceFacts:
    """Read what a service subscribes to, requests, publishes and declares, from its code."""
    handlers = importlib.import_module(f"singlewindow.{module_name(service)}.handlers")
    router = getattr(handlers, "router", None)
    if not isinstance(router, NatsRouter):
        raise GenerationError(f"{handlers.__name__} has no NatsRouter named `router`")
    contract = contract_of(service)
    if contract is None:
        raise GenerationError(f"{service} has handlers but no shared/contracts module")

    queues: set[str | None] = set()
    consumers: list[Consumer] = []
    rpc_root = f"sw.rpc.{service}."
    for subscriber in router.subscribers:
        if isinstance(subscriber, PullStreamSubscriber):
            options = subscriber.extra_options
            durable = options.get("durable")
            stream = options.get("stream")
            filter_subject = subscriber.config.filter_subject
            if not (isinstance(durable, str) and isinstance(stream, str) and filter_subject):
                raise GenerationError(
                    f"{service}: pull subscriber {subscriber.subject} needs a durable name, "
                    "a stream and a filter subject to be given least privilege"
                )
            consumers.append(Consumer(stream, durable, filter_subject))
        elif isinstance(subscriber, CoreSubscriber):
            subject = subscriber.subject.broker_address
            if not subject.startswith(rpc_root):
                raise GenerationError(
                    f"{service} subscribes to {subject}, outside its own {rpc_root}>"
                )
            queues.add(subscriber.queue or None)
        else:
            raise GenerationError(
                f"{service}: a {type(subscriber).__name__} is not a kind "
                "of subscriber the permission scheme knows (core request or durable pull)"
            )
    if len(queues) > 1:
        raise GenerationError(f"{service} subscribes in several queue groups: {queues!r}")

    own_streams = [value for value in vars(contract).values() if isinstance(value, StreamSpec)]
    events = [value for value in vars(contract).values() if isinstance(value, EventSpec)]
    publishes = sorted({f"sw.{'audit' if spec.audit else 'events'}.{service}.>" for spec in events})
    for spec in events:
        if not any(spec.subject.startswith(root[:-1]) for root in publishes):
            raise GenerationError(f"{spec.type} is published outside the service's own subjects")
        if not any(_covers(stream.subjects, spec.subject) for stream in own_streams):
            raise GenerationError(f"{spec.subject} falls in none of {service}'s own streams")
    publishes.append(f"sw.deadletter.{service}.>")
    streams = [stream.name for stream in own_streams]
    streams += [c.stream for c in consumers]
    streams.append(DEAD_LETTER_STREAM.name)
    return ServiceFacts(
        name=service,
        queue=next(iter(queues), None) if queues else getattr(contract, "QUEUE", None),
        requests=tuple(sorted(set(requested_subjects(service)))),
        publishes=tuple(publishes),
        own_streams=tuple(stream.name for stream in own_streams),
        streams=tuple(dict.fromkeys(streams)),
        consumers=tuple(sorted(consumers, key=lambda c: (c.stream, c.durable))),
    )


def _covers(filters: Iterable[str], subject: str) -> bool:
    """Whether a NATS subject matches any of the filters (with `*` and `>` wildcards)."""
    tokens = subject.split(".")
    for pattern in filters:
        parts = pattern.split(".")
        for index, part in enumerate(parts):
            if part == ">":
                if len(tokens) > index:
                    return True
                break
            if index >= len(tokens) or (part != "*" and part != tokens[index]):
                break
        else:
            if len(parts) == len(tokens):
                return True
    return False


REQUEST_CALLS = frozenset({"request", "ask"})
"""Calls that send a request: nats-py's and FastStream's `request`, and `Service.ask`."""


def requested_subjects(service: str) -> Iterator[str]:
    """Other services' request subjects the service's code names in a call: those it requests.

    The source is read, not imported (importing `app` or `__main__` would start the service).
    A `request(...)` or `ask(...)` whose subject is not a constant of shared/contracts stops the
    generator: a subject computed at run time cannot be given least privilege.
    """
    package = importlib.import_module(f"singlewindow.{module_name(service)}")
    own = f"sw.rpc.{service}."
    for directory in package.__path__:
        for path in sorted(Path(directory).rglob("*.py")):
            if "migrations" in path.relative_to(directory).parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            names = _imported_names(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
                subjects = [s for s in (_constant(names, arg) for arg in arguments) if s]
                requests = [
                    s for s in subjects if s.startswith("sw.rpc.") and not s.startswith(own)
                ]
                yield from requests
                called = node.func.attr if isinstance(node.func, ast.Attribute) else None
                if called in REQUEST_CALLS and not subjects:
                    raise GenerationError(
                        f"{path.relative_to(ROOT)}:{node.lineno}: a request whose subject is not "
                        "a constant of shared/contracts, so it cannot be permitted"
                    )


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """What each name imported at module level stands for: `alias` -> `package.module.NAME`."""
    names: dict[str, str] = {}
    for statement in tree.body:
        if isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
            for alias in statement.names:
                names[alias.asname or alias.name] = f"{statement.module}.{alias.name}"
        elif isinstance(statement, ast.Import):
            for alias in statement.names:
                names[alias.asname or alias.name.partition(".")[0]] = (
                    alias.name if alias.asname else alias.name.partition(".")[0]
                )
    return names


def _resolve(dotted: str) -> object:
    """The object a dotted path in the platform's packages names (a module or an attribute)."""
    if not dotted.startswith("singlewindow."):
        return None
    parts = dotted.split(".")
    for split in range(len(parts), 1, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            value = getattr(value, attribute, None)
        return value
    return None


def _constant(names: dict[str, str], node: ast.expr) -> str | None:
    """The `sw.` string that a literal, `NAME` or `module.NAME` argument stands for, if any."""
    value: object = None
    if isinstance(node, ast.Constant):
        value = node.value
    elif isinstance(node, ast.Name) and node.id in names:
        value = _resolve(names[node.id])
    elif (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in names
    ):
        value = _resolve(f"{names[node.value.id]}.{node.attr}")
    return value if isinstance(value, str) and value.startswith("sw.") else None


def internal_subjects() -> tuple[str, ...]:
    """Request subjects documented `Internal:` in shared/contracts: service to service only."""
    found: list[str] = []
    for info in pkgutil.iter_modules(contracts.__path__, f"{contracts.__name__}."):
        module = importlib.import_module(info.name)
        body = ast.parse(inspect.getsource(module)).body
        for statement, following in itertools.pairwise(body):
            if (
                isinstance(statement, ast.Assign)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
                and statement.value.value.startswith("sw.rpc.")
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
                and following.value.value.startswith("Internal:")
            ):
                found.append(statement.value.value)
    return tuple(sorted(found))


def js_api(*tokens: str) -> str:
    """A JetStream API subject."""
    return ".".join(("$JS.API", *tokens))


def service_user(facts: ServiceFacts, everyone: dict[str, ServiceFacts]) -> User:
    """A service's user: its own requests, events and JetStream objects, nothing else."""
    rpc = f"{facts.rpc_root} {facts.queue}" if facts.queue else facts.rpc_root
    for subject in facts.requests:
        owner = subject.split(".")[2]
        if owner == facts.name or owner not in everyone:
            raise GenerationError(f"{facts.name} requests {subject}, which no other service owns")
    publish = [Rule("its events and dead letters", facts.publishes)]
    if facts.requests:
        publish.append(Rule("requests to other services, as its code makes them", facts.requests))
    read = tuple(stream for stream in facts.streams if stream not in facts.own_streams)
    for why, streams in (
        ("declare the streams it writes (ensure_streams: info, create, update)", facts.own_streams),
        (
            "declare the streams it reads and the dead-letter stream, as ensure_streams does "
            "(a writer's stream changed by its readers: see deploy/nats/README.md)",
            read,
        ),
    ):
        if streams:
            publish.append(
                Rule(
                    why,
                    tuple(
                        js_api("STREAM", verb, stream)
                        for stream in streams
                        for verb in ("INFO", "CREATE", "UPDATE")
                    ),
                )
            )
    for consumer in facts.consumers:
        stream, durable = consumer.stream, consumer.durable
        publish.append(
            Rule(
                f"its durable pull consumer {durable} on {stream}: bind, fetch, acknowledge",
                (
                    js_api("CONSUMER", "INFO", stream, durable),
                    js_api("CONSUMER", "CREATE", stream, durable),
                    js_api("CONSUMER", "CREATE", stream, durable, consumer.filter_subject),
                    js_api("CONSUMER", "MSG", "NEXT", stream, durable),
                    f"$JS.ACK.{stream}.{durable}.>",
                ),
            )
        )
    queue_note = f" in queue group {facts.queue}" if facts.queue else ""
    return User(
        name=facts.name,
        description=f"the {facts.name} service",
        publish=tuple(publish),
        subscribe=(
            Rule(f"its request subjects{queue_note}", (rpc,)),
            Rule(
                "replies to its requests, JetStream API answers, pull deliveries",
                (inbox(facts.name),),
            ),
        ),
        allow_responses=True,
    )


def _ordered_reads(streams: Iterable[StreamSpec]) -> tuple[str, ...]:
    """What reading a stream with nats-py's ordered consumers takes, and nothing more."""
    return tuple(
        subject
        for stream in streams
        for subject in (
            js_api("STREAM", "INFO", stream.name),
            # Ephemeral consumers only: the server refuses a durable name on this subject.
            js_api("CONSUMER", "CREATE", stream.name),
            f"$JS.FC.{stream.name}.>",
        )
    )


def swctl_user(public_streams: tuple[StreamSpec, ...], internal: tuple[str, ...]) -> User:
    """The client of people and scripts: requests, and reading the public streams."""
    return User(
        name=SWCTL,
        description="swctl, the client of people and scripts",
        publish=(
            Rule("requests to any service", ("sw.rpc.>",)),
            Rule("read the public streams with ordered consumers", _ordered_reads(public_streams)),
        ),
        publish_deny=(Rule("internal, service-to-service requests", internal),),
        subscribe=(Rule("replies and ordered-consumer deliveries", (inbox(SWCTL),)),),
    )


def operator_user(
    public_streams: tuple[StreamSpec, ...],
    internal: tuple[str, ...],
    consumers: Iterable[Consumer],
) -> User:
    """swctl in an operator's hands: also the audit trail, and dead letters to list and replay.

    A dead letter goes back to the subject its consumer reads (`swctl deadletter replay`), so
    the operator may publish exactly the consumers' filter subjects; the consumers' inboxes make
    a replay harmless to every consumer that had already applied the event.
    """
    private = [
        stream
        for stream in contract_streams()
        if stream.name not in {public.name for public in public_streams}
    ]
    dead = DEAD_LETTER_STREAM.name
    return User(
        name=OPERATOR,
        description="swctl for operators: the audit trail and dead letters besides",
        publish=(
            Rule("requests to any service", ("sw.rpc.>",)),
            Rule(
                "read every stream with ordered consumers: the public ones, the audit trail, "
                "dead letters",
                _ordered_reads([*public_streams, *private, DEAD_LETTER_STREAM]),
            ),
            Rule(
                "replay a dead letter: fetch it, send it to its consumer again, drop it",
                (
                    js_api("STREAM", "MSG", "GET", dead),
                    js_api("STREAM", "MSG", "DELETE", dead),
                    *sorted({consumer.filter_subject for consumer in consumers}),
                ),
            ),
        ),
        publish_deny=(Rule("internal, service-to-service requests", internal),),
        subscribe=(Rule("replies and ordered-consumer deliveries", (inbox(OPERATOR),)),),
    )


def contract_streams() -> list[StreamSpec]:
    """Every stream the contracts define, in the order they are found."""
    found: dict[str, StreamSpec] = {}
    for info in pkgutil.iter_modules(contracts.__path__, f"{contracts.__name__}."):
        for value in vars(importlib.import_module(info.name)).values():
            if isinstance(value, StreamSpec):
                found.setdefault(value.name, value)
    return list(found.values())


def users() -> tuple[User, ...]:
    """Every user of the platform's account, derived from the code."""
    everyone = {name: service_facts(name) for name in service_names()}
    internal = internal_subjects()
    requested = {subject for facts in everyone.values() for subject in facts.requests}
    if unasked := sorted(set(internal) - requested):
        # Internal subjects exist for service-to-service requests: one nobody makes means the
        # source scan missed a request, and its service would be refused it in production.
        raise GenerationError(f"no service's code is seen requesting {unasked}")
    consumers = [consumer for facts in everyone.values() for consumer in facts.consumers]
    return (
        *(service_user(facts, everyone) for facts in everyone.values()),
        swctl_user(PUBLIC_STREAMS, internal),
        operator_user(PUBLIC_STREAMS, internal, consumers),
    )


# Rendering

HEADER = """\
GENERATED by deploy/nats/generate.py from the code (contracts, subscribers, requests).
Do not edit by hand: change the code, run `uv run python deploy/nats/generate.py`, commit.
One user per service, least privilege; passwords come from environment variables
(SW_<USER>_NATS_PASSWORD): random, letters and digits only, starting with a letter."""


def _quote(subject: str) -> str:
    return json.dumps(subject)


def render_conf(table: tuple[User, ...]) -> str:
    """The table as a nats-server configuration file."""
    lines = [f"# {line}".rstrip() for line in HEADER.splitlines()]
    lines += [
        "#",
        "# Local use (the same table as the Helm values):",
        "#   export " + " ".join(f"{user.password_variable}=..." for user in table),
        "#   nats-server -c deploy/nats/permissions.conf -sd var/nats",
        "",
        "jetstream: enabled",
        "",
        "accounts {",
        f"  {ACCOUNT} {{",
        "    jetstream: enabled",
        "    users: [",
    ]
    for user in table:
        lines.append(f"      # {user.name}: {user.description}")
        lines += [
            "      {",
            f"        user: {_quote(user.name)}",
            f"        password: ${user.password_variable}",
            "        permissions: {",
            "          publish: {",
        ]
        lines += _conf_rules("allow", user.publish)
        if user.publish_deny:
            lines += _conf_rules("deny", user.publish_deny)
        lines += ["          }", "          subscribe: {"]
        lines += _conf_rules("allow", user.subscribe)
        lines.append("          }")
        if user.allow_responses:
            lines.append("          # reply once to each request it receives")
            lines.append("          allow_responses: true")
        lines += ["        }", "      }"]
    lines += ["    ]", "  }", "}", ""]
    return "\n".join(lines)


def _conf_rules(kind: str, rules: tuple[Rule, ...]) -> list[str]:
    lines = [f"            {kind}: ["]
    for rule in rules:
        lines.append(f"              # {rule.why}")
        lines += [f"              {_quote(subject)}" for subject in rule.subjects]
    lines.append("            ]")
    return lines


def render_helm_values(table: tuple[User, ...]) -> str:
    """The table as values for the official NATS chart (nats/nats 1.x), merged into nats.conf."""
    lines = [f"# {line}".rstrip() for line in HEADER.splitlines()]
    lines += [
        "#",
        "# Use with values.yaml: helm upgrade --install nats nats/nats --namespace nats \\",
        "#   --values deploy/nats/values.yaml --values deploy/nats/values-permissions.yaml",
        f"# Passwords: Secret {PASSWORD_SECRET} (see secret.example.yaml), one key per user.",
        "config:",
        "  merge:",
        "    accounts:",
        f"      {ACCOUNT}:",
        "        jetstream: enabled",
        "        users:",
    ]
    for user in table:
        lines.append(f"          # {user.name}: {user.description}")
        lines += [
            f"          - user: {_quote(user.name)}",
            # The chart writes `<< $VAR >>` unquoted: nats-server reads the variable.
            f'            password: "<< ${user.password_variable} >>"',
            "            permissions:",
            "              publish:",
        ]
        lines += _yaml_rules("allow", user.publish)
        if user.publish_deny:
            lines += _yaml_rules("deny", user.publish_deny)
        lines.append("              subscribe:")
        lines += _yaml_rules("allow", user.subscribe)
        if user.allow_responses:
            lines.append("              allow_responses: true")
    lines += ["container:", "  env:"]
    for user in table:
        lines += [
            f"    {user.password_variable}:",
            "      valueFrom:",
            "        secretKeyRef:",
            f"          name: {PASSWORD_SECRET}",
            f"          key: {user.name}",
        ]
    lines.append("")
    return "\n".join(lines)


def _yaml_rules(kind: str, rules: tuple[Rule, ...]) -> list[str]:
    lines = [f"                {kind}:"]
    for rule in rules:
        lines.append(f"                  # {rule.why}")
        lines += [f"                  - {_quote(subject)}" for subject in rule.subjects]
    return lines


def rendered() -> dict[Path, str]:
    """Every generated file and its content."""
    table = users()
    return {PERMISSIONS_CONF: render_conf(table), HELM_VALUES: render_helm_values(table)}


def stale() -> list[Path]:
    """Generated files whose committed content differs from what the code implies now."""
    return [
        path
        for path, text in rendered().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    """Write the generated files, or with --check say whether they are current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"{path.relative_to(ROOT)} is out of date: run deploy/nats/generate.py")
        return 1 if outdated else 0
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
