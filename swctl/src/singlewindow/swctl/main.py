"""swctl: the command line of the Single Window platform.

Exit codes: 0 done; 1 refused (validation, conflict, not found, wrong password); 2 usage error;
3 platform unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from singlewindow.contracts import accounts, registration, review
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.swctl import card, cardflows, deadletter, events, up
from singlewindow.swctl.client import (
    DEFAULT_NATS_URL,
    Client,
    Unreachable,
    forget_session,
    load_token,
    save_session,
)
from singlewindow.swctl.platform import DEFAULT_HTTP_PORT_BASE

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

Command = Callable[[argparse.Namespace, Client], Awaitable[BaseModel | None]]


class UsageError(Exception):
    """The command line itself is wrong (exit code 2)."""


def main(argv: Sequence[str] | None = None) -> None:
    """Run swctl and exit with its exit code."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command in LOCAL_COMMANDS:
        return int(LOCAL_COMMANDS[args.command](args))
    try:
        return asyncio.run(_run_remote(args))
    except KeyboardInterrupt:
        return 130


async def _run_remote(args: argparse.Namespace) -> int:
    client = Client(args.nats_url, args.timeout)
    try:
        result = await COMMANDS[args.command](args, client)
    except UsageError as exc:
        print(f"swctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as exc:
        print(f"unreachable: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": {"code": "unreachable", "message": str(exc)}}))
        return EXIT_UNREACHABLE
    except DomainError as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        for field in exc.fields:
            print(f"  {field.path}: {field.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": exc.body().model_dump(mode="json")}, ensure_ascii=False))
        return EXIT_REFUSED
    finally:
        await client.close()
    if result is not None:
        print_result(result, as_json=args.json)
    return EXIT_OK


def print_result(result: BaseModel, *, as_json: bool) -> None:
    """Print a result: one JSON document with --json, readable lines otherwise."""
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    _print_plain(result.model_dump(mode="json"), indent="")


def _print_plain(value: Any, indent: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                print(f"{indent}{key}:")
                _print_plain(item, indent + "  ")
            else:
                print(f"{indent}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                print(f"{indent}-")
                _print_plain(item, indent + "  ")
            else:
                print(f"{indent}- {_scalar(item)}")


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _read_json_file(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object")
    return data


def _token() -> str:
    token = load_token()
    if token is None:
        raise DomainError(
            ErrorCode.UNAUTHENTICATED, "not logged in; run `swctl login --account NAME`"
        )
    return token


# Commands


async def cmd_register_cardless(args: argparse.Namespace, client: Client) -> BaseModel:
    application = _read_json_file(args.file)
    return await client.call(registration.SUBMIT_CARDLESS, application)


async def cmd_register_resubmit(args: argparse.Namespace, client: Client) -> BaseModel:
    application = _read_json_file(args.file) | {"application_id": args.application}
    return await client.call(registration.RESUBMIT_CARDLESS, application)


async def cmd_registration_show(args: argparse.Namespace, client: Client) -> BaseModel:
    return await client.call(
        registration.SHOW_APPLICATION,
        {"application_id": args.application},
    )


async def cmd_review_list(args: argparse.Namespace, client: Client) -> BaseModel:
    state = None if args.all else review.TaskState.OPEN.value
    return await client.call(review.LIST_TASKS, {"state": state})


async def cmd_review_show(args: argparse.Namespace, client: Client) -> BaseModel:
    return await client.call(review.SHOW_TASK, {"task_id": args.task})


def _decide(decision: review.Decision) -> Command:
    async def command(args: argparse.Namespace, client: Client) -> BaseModel:
        request = {
            "task_id": args.task,
            "decision": decision.value,
            "reason": getattr(args, "reason", None),
            "reviewer": args.reviewer,
        }
        return await client.call(review.DECIDE_TASK, request)

    return command


async def cmd_login(args: argparse.Namespace, client: Client) -> BaseModel:
    if args.card:
        if args.account or args.password_stdin:
            raise UsageError("--card logs in with the card: no --account or --password-stdin")
        card_session = await _card_flows(args, client).login(read_first=not args.pin_stdin)
        save_session(card_session.model_dump(mode="json") | {"nats_url": args.nats_url})
        return card_session
    if not args.account:
        raise UsageError("give --account NAME (or --card to log in with a card)")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.account}: ")
    session = await client.call(
        accounts.LOGIN_PASSWORD,
        {"account": args.account, "password": password},
    )
    save_session(session.model_dump(mode="json") | {"nats_url": args.nats_url})
    return session


async def cmd_register_card(args: argparse.Namespace, client: Client) -> BaseModel:
    admin = _details_file(args, "admin") if args.file else None
    if admin is None and not sys.stdin.isatty():
        raise UsageError("no terminal to ask the administrator's details on; give them with --file")
    session = await _card_flows(args, client).register_admin(admin)
    save_session(session.model_dump(mode="json") | {"nats_url": args.nats_url})
    return session


async def cmd_operators_add_card(args: argparse.Namespace, client: Client) -> BaseModel:
    operator = _details_file(args, "operator")
    return await _card_flows(args, client).add_operator(_token(), operator)


def _card_flows(args: argparse.Namespace, client: Client) -> cardflows.Flows:
    # With --json, stdout holds the one result document: the card's data and prompts go to stderr.
    out = sys.stderr if args.json else sys.stdout
    pin = cardflows.pin_from_stdin() if args.pin_stdin else cardflows.pin_from_terminal(out)
    return cardflows.Flows(client, reader=args.reader, pin=pin, out=out)


def _details_file(args: argparse.Namespace, key: str) -> dict[str, Any]:
    if args.file == "-" and args.pin_stdin:
        raise UsageError("--file - and --pin-stdin cannot both read stdin")
    details = _read_json_file(args.file).get(key)
    if not isinstance(details, dict):
        raise UsageError(f"{args.file} must hold an `{key}` object")
    return details


async def cmd_logout(args: argparse.Namespace, client: Client) -> None:
    token = load_token()
    forget_session()
    if token is not None:
        # A session already ended on the server needs no more: the local copy is gone either way.
        with contextlib.suppress(DomainError):
            await client.call(accounts.LOGOUT, {"token": token})


async def cmd_whoami(args: argparse.Namespace, client: Client) -> BaseModel:
    return await client.call(accounts.SHOW_SESSION, {"token": _token()})


async def cmd_account_show(args: argparse.Namespace, client: Client) -> BaseModel:
    return await client.call(accounts.SHOW_ACCOUNT, {"token": _token()})


async def cmd_scope_options(args: argparse.Namespace, client: Client) -> BaseModel:
    return await client.call(accounts.SCOPE_OPTIONS, {"token": _token()})


async def cmd_scope_set(args: argparse.Namespace, client: Client) -> BaseModel:
    return await client.call(accounts.SET_SCOPE, {"token": _token(), "codes": args.codes})


COMMANDS: dict[str, Command] = {
    "register cardless": cmd_register_cardless,
    "register resubmit": cmd_register_resubmit,
    "registration show": cmd_registration_show,
    "review list": cmd_review_list,
    "review show": cmd_review_show,
    "review approve": _decide(review.Decision.APPROVE),
    "review reject": _decide(review.Decision.REJECT),
    "review return": _decide(review.Decision.RETURN),
    "login": cmd_login,
    "register card": cmd_register_card,
    "operators add-card": cmd_operators_add_card,
    "logout": cmd_logout,
    "whoami": cmd_whoami,
    "account show": cmd_account_show,
    "scope options": cmd_scope_options,
    "scope set": cmd_scope_set,
    "events tail": events.tail,
    "deadletter list": deadletter.list_dead_letters,
    "deadletter replay": deadletter.replay,
    **card.COMMANDS,
}

LOCAL_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": up.up,
    "status": up.status,
    **card.LOCAL_COMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    """swctl's command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--nats-url",
        default=os.environ.get("SW_NATS_URL", DEFAULT_NATS_URL),
        help="NATS server of the platform (env SW_NATS_URL; default %(default)s)",
    )
    common.add_argument("--json", action="store_true", help="print exactly one JSON document")
    common.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")

    parser = argparse.ArgumentParser(
        prog="swctl", description="Single Window registration platform client", parents=[common]
    )
    commands = parser.add_subparsers(title="commands")

    def command(group: Any, name: str, full_name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, help=help_text, parents=[common])
        sub.set_defaults(command=full_name)
        return sub

    def group(name: str, help_text: str) -> Any:
        return commands.add_parser(name, help=help_text).add_subparsers(title=f"{name} commands")

    def card_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--reader", help="the card reader (default: the only one with a card)")
        sub.add_argument("--pin-stdin", action="store_true", help="read the card PIN from stdin")

    up_parser = command(commands, "up", "up", "start the embedded platform and wait for Ctrl-C")
    status_parser = command(commands, "status", "status", "show each service's state")
    for sub in (up_parser, status_parser):
        sub.add_argument(
            "--data-dir",
            default=os.environ.get("SW_DATA_DIR", "var"),
            help="where the embedded platform keeps its data (env SW_DATA_DIR)",
        )
    up_parser.add_argument(
        "--nats-port",
        type=int,
        default=int(os.environ.get("SW_NATS_PORT", "4222")),
        help="NATS client port (env SW_NATS_PORT); monitoring is on port + 4000",
    )
    up_parser.add_argument(
        "--http-port-base",
        type=int,
        default=int(os.environ.get("SW_HTTP_PORT_BASE", str(DEFAULT_HTTP_PORT_BASE))),
        help="services listen for health and metrics on base+1, base+2, ... (env SW_HTTP_PORT_BASE)",
    )
    up.add_up_options(up_parser)

    register = group("register", "submit registration applications")
    sub = command(register, "cardless", "register cardless", "submit a cardless application")
    sub.add_argument("--file", required=True, help="the application JSON file (- for stdin)")
    sub = command(register, "resubmit", "register resubmit", "resubmit a returned application")
    sub.add_argument("application", help="the application id")
    sub.add_argument("--file", required=True, help="the corrected application JSON file")

    registration_group = group("registration", "follow registration applications")
    sub = command(registration_group, "show", "registration show", "show an application's state")
    sub.add_argument("application", help="the application id")

    review_group = group("review", "back-office review of applications")
    sub = command(review_group, "list", "review list", "list open review tasks")
    sub.add_argument("--all", action="store_true", help="include decided tasks")
    sub = command(review_group, "show", "review show", "show a task and what was submitted")
    sub.add_argument("task")
    for decision, needs_reason in (("approve", False), ("reject", True), ("return", True)):
        sub = command(review_group, decision, f"review {decision}", f"{decision} a task")
        sub.add_argument("task")
        if needs_reason:
            sub.add_argument("--reason", required=True, help="what the applicant will read")
        sub.add_argument(
            "--reviewer",
            default=os.environ.get("SW_REVIEWER") or os.environ.get("USER") or "reviewer",
            help="who decides (env SW_REVIEWER)",
        )

    sub = command(commands, "login", "login", "log in and keep the session")
    sub.add_argument("--account", help="log in with this account name and its password")
    sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_argument("--card", action="store_true", help="log in with the card in the reader")
    card_options(sub)

    sub = command(
        register, "card", "register card", "register an administrator with a legal-person card"
    )
    sub.add_argument(
        "--file", help="JSON file with the `admin` object, instead of prompts (- for stdin)"
    )
    card_options(sub)

    operators = group("operators", "the enterprise's operators (administrator only)")
    sub = command(
        operators, "add-card", "operators add-card", "add an operator with their operator card"
    )
    sub.add_argument("--file", required=True, help="JSON file with the `operator` object")
    card_options(sub)
    command(commands, "logout", "logout", "end the session")
    command(commands, "whoami", "whoami", "show the current session")

    account_group = group("account", "your own account")
    command(account_group, "show", "account show", "show your account")

    scope = group("scope", "the enterprise's business scope")
    command(scope, "options", "scope options", "list business scope choices")
    sub = command(scope, "set", "scope set", "declare the business scope")
    sub.add_argument("codes", nargs="+", metavar="CODE")

    events_group = group("events", "platform events")
    sub = command(events_group, "tail", "events tail", "print events as they arrive")
    sub.add_argument("--from-start", action="store_true", help="begin with the oldest kept event")
    sub.add_argument(
        "--audit", action="store_true", help="the audit trail instead of public events"
    )
    sub.add_argument("--limit", type=int, default=None, help="stop after this many events")
    sub.add_argument(
        "--idle-timeout", type=float, default=None, help="stop after this many quiet seconds"
    )

    card.register(group("card", "virtual E-Port cards and the card readers"), command)

    dead = group("deadletter", "events a consumer gave up on")
    command(dead, "list", "deadletter list", "list dead letters with their reasons")
    sub = command(dead, "replay", "deadletter replay", "send a dead letter to its consumer again")
    sub.add_argument(
        "sequence", type=int, help="the dead letter's sequence (from `deadletter list`)"
    )
    return parser
