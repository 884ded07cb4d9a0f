"""Derive the platform's NATS permission table from the declarations, and write it for NATS.

One NATS user per service, allowed exactly what its `Routes` declare (``handlers.routes``: the
endpoints it serves, the events it consumes, the endpoints it asks, the other services' events it
publishes) and its contract holds:

- its request subjects (``sw.rpc.<service>.>``, in its own queue group) and their replies, and
  operators' replay requests (``sw.replay.<service>.>``) when it consumes events;
- the requests it declares it asks of other services (``Routes(asks=...)``; ``Service.ask``
  refuses any other);
- its own events (``sw.events.<service>.>``, ``sw.audit.<service>.>``,
  ``sw.internal.<service>.>``), the events of other
  contracts it declares it publishes (``Routes(publishes=...)``, e.g. a review requested), and
  its dead letters;
- the JetStream API to create and update the streams it owns and the dead-letter stream, to look
  up (only) the other streams it reads or writes, and for its own durable pull consumers, with
  acknowledgements on those consumers only.

Plus the clients' users: ``portal`` (the front end people's requests come through, swctl: the
requests declared for clients, replies on its own inbox, no JetStream), ``workstation`` (the
front end with the card readers: card-gateway's ``Audience.LOCAL`` requests), ``subscriber``
(an integrating system: the public streams, ``singlewindow.swctl.events.PUBLIC_STREAMS``,
through ordered consumers and its own durable) and ``operator`` (every stream, the audit trail
and dead letters, and replay requests to the services; never an event of its own).

The same table runs the embedded platform: ``swctl up`` includes ``nats-accounts.conf``.

Run ``uv run python deploy/nats/generate.py`` after changing a subject, stream or consumer, and
commit what it writes; ``--check`` fails when the committed files are stale (the deploy tests run
the same comparison).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from singlewindow import contracts
from singlewindow.contracts.bus import (
    DEAD_LETTER_STREAM,
    REPLAY_ROOT,
    SUBSCRIBER_DURABLE,
    inbox_prefix,
    replay_subject,
)
from singlewindow.contracts.endpoints import Audience, endpoints_of
from singlewindow.contracts.events import EventSpec, StreamSpec
from singlewindow.contracts.notify import NOTIFIER_DURABLE, NOTIFY_ROOT
from singlewindow.runtime.messaging import PARKED_CONSUMER
from singlewindow.runtime.routes import Routes
from singlewindow.swctl.events import PUBLIC_STREAMS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PERMISSIONS_CONF = HERE / "permissions.conf"
HELM_VALUES = HERE / "values-permissions.yaml"
EMBEDDED_CONF = ROOT / "swctl" / "src" / "singlewindow" / "swctl" / "nats-accounts.conf"
"""The same table for the embedded platform, shipped inside swctl (it runs no generator)."""

ACCOUNT = "SINGLEWINDOW"


def inbox(user: str) -> str:
    """Where `user` receives replies (requests, JetStream API answers, deliveries): its own only."""
    return inbox_prefix(user) + ".>"


PASSWORD_SECRET = "nats-user-passwords"
"""The Secret, in NATS's namespace, that holds each user's password under the user's name."""
PORTAL = "portal"
WORKSTATION = "workstation"
SUBSCRIBER = "subscriber"
OPERATOR = "operator"
NOTIFIER = "notifier"
BUSINESS = "business"  # issue 10: the business systems' decision requests


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


# --- gateway (issue 8) ---
CLIENT_SERVICES = {"gateway": PORTAL}
"""Folders of ``services/`` that are clients of the bus, not services on it, with the client
user they connect as: the HTTP gateway is the one holder of ``portal``."""
# --- end gateway ---


def service_names() -> tuple[str, ...]:
    """Every service in ``services/`` (the bus's clients among them have a client user)."""
    return tuple(
        sorted(
            path.parent.name
            for path in (ROOT / "services").glob("*/pyproject.toml")
            if path.parent.name not in CLIENT_SERVICES
        )
    )


def contract_of(service: str) -> ModuleType | None:
    """The service's contracts module, if it has one yet."""
    try:
        return importlib.import_module(f"{contracts.__name__}.{module_name(service)}")
    except ModuleNotFoundError:
        return None


def service_facts(service: str) -> ServiceFacts:
    """What a service does on the bus, from the declarations of its routes and its contract."""
    handlers = importlib.import_module(f"singlewindow.{module_name(service)}.handlers")
    routes = getattr(handlers, "routes", None)
    if not isinstance(routes, Routes) or routes.service != service:
        raise GenerationError(f"{handlers.__name__} has no Routes of {service} named `routes`")
    contract = contract_of(service)
    if contract is None:
        raise GenerationError(f"{service} has handlers but no shared/contracts module")

    queues = {served.endpoint.queue for served in routes.served}
    if len(queues) > 1:
        raise GenerationError(f"{service} subscribes in several queue groups: {queues!r}")
    consumers = [
        Consumer(c.subscription.stream.name, c.subscription.durable, c.subscription.event.subject)
        for c in routes.consumed
    ]
    for endpoint in routes.asks:
        if endpoint.service == service:
            raise GenerationError(f"{service} asks its own {endpoint.subject}")

    own_streams = [value for value in vars(contract).values() if isinstance(value, StreamSpec)]
    events = [value for value in vars(contract).values() if isinstance(value, EventSpec)]
    own_events = [spec for spec in events if spec.service == service]
    publishes = sorted({f"{spec.root}.{service}.>" for spec in own_events})
    for spec in own_events:
        # The audit trail is one stream (accounts'): every service's audit events fall in it;
        # so is the notification stream.
        streams_for = contract_streams() if spec.audit or spec.notify else own_streams
        if not any(_covers(stream.subjects, spec.subject) for stream in streams_for):
            raise GenerationError(f"{spec.subject} falls in none of {service}'s own streams")
    publishes += sorted(spec.subject for spec in routes.publishes)
    publishes.append(f"sw.deadletter.{service}.>")
    streams = [stream.name for stream in own_streams]
    streams += [c.stream for c in consumers]
    streams += [
        stream.name
        for spec in routes.publishes
        for stream in contract_streams()
        if _covers(stream.subjects, spec.subject)
    ]
    streams.append(DEAD_LETTER_STREAM.name)
    return ServiceFacts(
        name=service,
        queue=next(iter(queues), None) if queues else getattr(contract, "QUEUE", None),
        requests=tuple(sorted(endpoint.subject for endpoint in routes.asks)),
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


def contract_modules() -> tuple[ModuleType, ...]:
    """Every service's contract module."""
    return contracts.service_contracts()


def subjects_for(*audiences: Audience) -> tuple[str, ...]:
    """Request subjects declared for any of `audiences`."""
    return tuple(
        sorted(
            endpoint.subject
            for module in contract_modules()
            for endpoint in endpoints_of(module)
            if endpoint.audience in audiences
        )
    )


def internal_subjects() -> tuple[str, ...]:
    """Request subjects declared for other services only (`Audience.SERVICE`)."""
    return subjects_for(Audience.SERVICE)


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
    dead = DEAD_LETTER_STREAM.name
    managed = (*facts.own_streams, dead)
    read = tuple(stream for stream in facts.streams if stream not in managed)
    publish.append(
        Rule(
            "declare the streams it owns and the shared dead-letter stream (info, create, update)",
            tuple(
                js_api("STREAM", verb, stream)
                for stream in managed
                for verb in ("INFO", "CREATE", "UPDATE")
            ),
        )
    )
    if read:
        publish.append(
            Rule(
                "wait for the streams of other services it reads or writes: never change them",
                tuple(js_api("STREAM", "INFO", stream) for stream in read),
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
    subscribe = [Rule(f"its request subjects in queue group {facts.queue}", (rpc,))]
    publish.append(
        Rule(
            "read a dead letter of its own again when an operator asks it to replay it",
            (js_api("STREAM", "MSG", "GET", dead),),
        )
    )
    replay = f"{REPLAY_ROOT}.{facts.name}.>"
    subscribe.append(
        Rule(
            "operators' requests to replay its dead letters (its consumers', its parked events)",
            (f"{replay} {facts.queue}" if facts.queue else replay,),
        )
    )
    subscribe.append(
        Rule(
            "replies to its requests, JetStream API answers, pull deliveries",
            (inbox(facts.name),),
        )
    )
    return User(
        name=facts.name,
        description=f"the {facts.name} service",
        publish=tuple(publish),
        subscribe=tuple(subscribe),
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


def _own_durable(streams: Iterable[StreamSpec], durable: str) -> tuple[str, ...]:
    """A durable pull consumer of one name on each stream: create, look up, fetch, ack, delete."""
    return tuple(
        subject
        for stream in streams
        for subject in (
            js_api("CONSUMER", "CREATE", stream.name, durable),
            js_api("CONSUMER", "CREATE", stream.name, durable, ">"),
            js_api("CONSUMER", "INFO", stream.name, durable),
            js_api("CONSUMER", "DELETE", stream.name, durable),
            js_api("CONSUMER", "MSG", "NEXT", stream.name, durable),
            f"$JS.ACK.{stream.name}.{durable}.>",
        )
    )


def portal_user() -> User:
    """The trusted front end people's requests come through (swctl): client requests only."""
    return User(
        name=PORTAL,
        description="the HTTP gateway people's requests come through (and swctl on NATS)",
        publish=(
            Rule(
                "requests declared for clients (public, in a session, back office)",
                subjects_for(Audience.PUBLIC, Audience.SESSION, Audience.BACK_OFFICE),
            ),
        ),
        subscribe=(Rule("replies to its requests", (inbox(PORTAL),)),),
    )


def workstation_user() -> User:
    """The front end on the machine with the card readers: card-gateway's requests only."""
    return User(
        name=WORKSTATION,
        description="the front end on the machine with the card readers (swctl card ...)",
        publish=(Rule("requests declared for the local front end", subjects_for(Audience.LOCAL)),),
        subscribe=(Rule("replies to its requests", (inbox(WORKSTATION),)),),
    )


def subscriber_user(public_streams: tuple[StreamSpec, ...]) -> User:
    """An integrating government system: the public event streams, through its own consumers."""
    return User(
        name=SUBSCRIBER,
        description="an integrating system: reads the public event streams",
        publish=(
            Rule(
                "read the public streams with ordered (ephemeral) consumers",
                _ordered_reads(public_streams),
            ),
            Rule(
                f"its own durable pull consumer {SUBSCRIBER_DURABLE} on each public stream",
                _own_durable(public_streams, SUBSCRIBER_DURABLE),
            ),
        ),
        subscribe=(Rule("JetStream API answers and deliveries", (inbox(SUBSCRIBER),)),),
    )


def operator_user(public_streams: tuple[StreamSpec, ...], facts: Iterable[ServiceFacts]) -> User:
    """swctl in an operator's hands: every stream (audit, dead letters), and replays.

    A replay is a request to the service whose consumer gave up (`sw.replay.<service>.<durable>`)
    naming the dead letter: the operator never publishes an event itself, so it cannot forge one.
    """
    private = [
        stream
        for stream in contract_streams()
        if stream.name not in {public.name for public in public_streams}
        and not is_notify_stream(stream)
    ]
    dead = DEAD_LETTER_STREAM.name
    return User(
        name=OPERATOR,
        description="swctl for operators: every stream, the audit trail and dead letters",
        publish=(
            Rule(
                "read every stream with ordered consumers: the public ones, the audit trail, "
                "dead letters",
                _ordered_reads([*public_streams, *private, DEAD_LETTER_STREAM]),
            ),
            Rule("JetStream's account information (swctl status)", (js_api("INFO"),)),
            Rule(
                "see how far each consumer is (read only)",
                tuple(
                    js_api("CONSUMER", "INFO", stream.name, "*")
                    for stream in [*public_streams, *private]
                ),
            ),
            Rule(
                "replay a dead letter: fetch it, ask its service to apply it again, drop it",
                (
                    js_api("STREAM", "MSG", "GET", dead),
                    js_api("STREAM", "MSG", "DELETE", dead),
                    *sorted(
                        replay_subject(service.name, consumer)
                        for service in facts
                        for consumer in (
                            PARKED_CONSUMER,
                            *(consumer.durable for consumer in service.consumers),
                        )
                    ),
                ),
            ),
        ),
        subscribe=(Rule("replies and ordered-consumer deliveries", (inbox(OPERATOR),)),),
    )


def is_notify_stream(stream: StreamSpec) -> bool:
    """Whether `stream` carries messages to people (codes): the notifier's alone."""
    return all(subject.split(".")[:2] == NOTIFY_ROOT.split(".") for subject in stream.subjects)


def notifier_user() -> User:
    """The SMS gateway (or the development notifier): the notification stream, nothing else."""
    streams = [stream for stream in contract_streams() if is_notify_stream(stream)]
    return User(
        name=NOTIFIER,
        description="the SMS gateway: reads the notification stream (codes), and nothing else",
        publish=(
            Rule(
                f"its durable pull consumer {NOTIFIER_DURABLE} on the notification stream",
                (
                    *(js_api("STREAM", "INFO", stream.name) for stream in streams),
                    *_own_durable(streams, NOTIFIER_DURABLE),
                ),
            ),
        ),
        subscribe=(Rule("JetStream API answers and deliveries", (inbox(NOTIFIER),)),),
    )


# --- qualifications and permissions (issue 10) ---
def business_subjects() -> tuple[str, ...]:
    """The decision requests the business systems make (accounts' `DECISIONS`)."""
    from singlewindow.contracts import accounts

    return tuple(sorted(endpoint.subject for endpoint in accounts.DECISIONS))


def business_user() -> User:
    """The business systems behind the portal (goods declaration, manifest, ...): they ask
    whether a session is active and whether it may act, nothing else."""
    return User(
        name=BUSINESS,
        description="the business systems: permission checks and session introspection only",
        publish=(Rule("the decision requests of accounts", business_subjects()),),
        subscribe=(Rule("replies to its requests", (inbox(BUSINESS),)),),
    )


def contract_streams() -> list[StreamSpec]:
    """Every stream the contracts define, in the order they are found."""
    found: dict[str, StreamSpec] = {}
    for module in contract_modules():
        for value in vars(module).values():
            if isinstance(value, StreamSpec):
                found.setdefault(value.name, value)
    return list(found.values())


def users() -> tuple[User, ...]:
    """Every user of the platform's account, derived from the code: the committed files and
    the embedded platform's nats-server (`swctl up`) all run this table."""
    everyone = {name: service_facts(name) for name in service_names()}
    internal = internal_subjects()
    requested = {subject for facts in everyone.values() for subject in facts.requests}
    requested |= set(business_subjects())  # issue 10: the business systems ask these
    if unasked := sorted(set(internal) - requested):
        # Internal subjects exist for service-to-service requests: one nobody declares asking
        # is dead, or its caller forgot to declare it and would be refused it in production.
        raise GenerationError(f"no service declares that it asks {unasked}")
    return (
        *(service_user(facts, everyone) for facts in everyone.values()),
        portal_user(),
        workstation_user(),
        subscriber_user(PUBLIC_STREAMS),
        operator_user(PUBLIC_STREAMS, everyone.values()),
        notifier_user(),
        business_user(),
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
    ]
    return "\n".join(lines) + "\n" + render_accounts(table)


def render_embedded(table: tuple[User, ...]) -> str:
    """The table as the embedded platform's nats-server includes it (`swctl up`)."""
    lines = [f"# {line}".rstrip() for line in HEADER.splitlines()]
    lines += ["#", "# swctl/platform.py puts this block into the embedded nats.conf.", ""]
    return "\n".join(lines) + "\n" + render_accounts(table)


def render_accounts(table: tuple[User, ...]) -> str:
    """The account block: every user, its password variable and its permissions."""
    lines = [
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
    return {
        PERMISSIONS_CONF: render_conf(table),
        HELM_VALUES: render_helm_values(table),
        EMBEDDED_CONF: render_embedded(table),
    }


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
