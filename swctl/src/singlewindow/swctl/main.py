"""swctl: the command line of the Single Window platform.

Exit codes: 0 done; 1 refused (validation, conflict, not found, wrong password, not logged in);
2 usage error; 3 platform unreachable; 4 swctl failed unexpectedly; 130 interrupted (Ctrl-C);
141 stdout closed early (`swctl ... | head -1`).

Start-up stays short: this module imports only the standard library's lighter parts, and each
command imports what it needs (pydantic, nats, the contracts) when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from singlewindow.swctl import (
    account,
    card,
    filing,
    individual,
    messages,
    mobile,
    operators,
    permissions,
    qualifications,
    staff,
)
from singlewindow.swctl.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    SessionFileError,
    UsageError,
)

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.contracts import review
    from singlewindow.swctl.cardflows import Flows
    from singlewindow.swctl.client import Client

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_TIMEOUT = 10.0
DEBUG_VARIABLE = "SWCTL_DEBUG"
"""Set to 1 to see the traceback behind an unexpected failure."""

Command = Callable[[argparse.Namespace, "Client"], Awaitable["BaseModel | dict[str, Any] | None"]]
LocalCommand = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run swctl and exit with its exit code."""
    try:
        code = run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, as the Python docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_PIPE_CLOSED
    sys.exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command; return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = _asks_for_json(arguments)
    try:
        args = parse(arguments)
        if args is None:
            return EXIT_OK  # --help
        as_json = args.json
        if args.command in LOCAL_COMMANDS:
            return LOCAL_COMMANDS[args.command](args)
        import asyncio

        return asyncio.run(_run_remote(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise
    except Exception as exc:  # the last resort: one plain line, never a traceback
        return report_failure(exc, as_json=as_json)


def parse(arguments: list[str]) -> argparse.Namespace | None:
    """The parsed command line, its global options resolved; None after `--help`."""
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            return None
        raise
    if not hasattr(args, "command"):
        raise UsageError("which command? `swctl --help` lists them", parser.format_usage())
    given = args.nats_url or os.environ.get("SW_NATS_URL")
    args.nats_url_given = bool(given)
    args.nats_url = given or DEFAULT_NATS_URL
    if getattr(args, "jsonl", False) and args.json:
        raise UsageError("--json and --jsonl: give one of them")
    return args


def _asks_for_json(arguments: list[str]) -> bool:
    """Whether --json is on the command line, for errors found before it is parsed."""
    before_end = arguments[: arguments.index("--")] if "--" in arguments else arguments
    return "--json" in before_end


async def _run_remote(args: argparse.Namespace) -> int:
    from singlewindow.swctl.client import Client

    client = Client.of(args)
    try:
        result = await COMMANDS[args.command](args, client)
    finally:
        await client.close()
    if result is not None:
        plain = PLAIN.get(args.command)
        if plain is not None and not args.json:
            plain(result, args)
        else:
            print_result(result, as_json=args.json)
    return EXIT_OK


def report_failure(exc: BaseException, *, as_json: bool) -> int:
    """Say what went wrong on stderr (and as one JSON document with --json); the exit code."""
    code, exit_code, message, fields = _classify(exc)
    if isinstance(exc, UsageError) and exc.usage:
        sys.stderr.write(exc.usage)
    if exit_code == EXIT_REFUSED:
        print(f"refused: {message}", file=sys.stderr)
        for path, text in fields:
            print(f"  {path}: {text}", file=sys.stderr)
    elif exit_code == EXIT_UNREACHABLE:
        print(f"unreachable: {message}", file=sys.stderr)
    else:
        print(f"swctl: {message}", file=sys.stderr)
    if exit_code == EXIT_INTERNAL and os.environ.get(DEBUG_VARIABLE):
        traceback.print_exception(exc, file=sys.stderr)
    if as_json:
        import json

        error = {
            "code": code,
            "message": message,
            "fields": [{"path": path, "message": text} for path, text in fields],
        }
        key = getattr(exc, "idempotency_key", None)
        if key is not None:
            error["idempotency_key"] = key
        print(json.dumps({"error": error}, ensure_ascii=False))
    return exit_code


def _classify(exc: BaseException) -> tuple[str, int, str, list[tuple[str, str]]]:
    """The error code, exit code, message and offending fields of a failure."""
    if isinstance(exc, UsageError):
        return "usage", EXIT_USAGE, str(exc), []
    if isinstance(exc, SessionFileError):
        return "session_file", EXIT_REFUSED, str(exc), []
    # Only modules already imported can have raised their exceptions: no import just to compare.
    errors = sys.modules.get("singlewindow.contracts.errors")
    if errors is not None and isinstance(exc, errors.DomainError):
        fields = [(field.path, field.message) for field in exc.fields]
        return exc.code.value, EXIT_REFUSED, exc.message, fields
    client = sys.modules.get("singlewindow.swctl.client")
    if client is not None and isinstance(exc, client.Unreachable):
        return "unreachable", EXIT_UNREACHABLE, str(exc), []
    nats_errors = sys.modules.get("nats.errors")
    if nats_errors is not None and isinstance(exc, nats_errors.Error):
        return "unreachable", EXIT_UNREACHABLE, f"NATS: {exc}", []
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    hint = f"a bug in swctl; {DEBUG_VARIABLE}=1 shows where"
    return "internal", EXIT_INTERNAL, f"unexpected error ({what}); {hint}", []


def print_result(result: BaseModel | dict[str, Any], *, as_json: bool) -> None:
    """Print a result: one JSON document with --json, readable lines otherwise."""
    if as_json:
        if isinstance(result, dict):
            import json

            print(json.dumps(result, ensure_ascii=False, indent=2))
        else:
            print(result.model_dump_json(indent=2))
        return
    _print_plain(result if isinstance(result, dict) else result.model_dump(mode="json"), "")


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


def read_json_file(path: str) -> dict[str, Any]:
    """The JSON object in `path` (`-` for stdin): UTF-8, a BOM allowed, at most one request."""
    import json

    from singlewindow.contracts.wire import MAX_REQUEST_BYTES

    name = "stdin" if path == "-" else path
    too_large = (
        f"{name} is larger than {MAX_REQUEST_BYTES} bytes, the most the platform takes in one "
        "request; is it the right file?"
    )
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
        else:
            with Path(path).open("rb") as handle:
                if os.fstat(handle.fileno()).st_size > MAX_REQUEST_BYTES:
                    raise UsageError(too_large)
                data = handle.read(MAX_REQUEST_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from exc
    if len(data) > MAX_REQUEST_BYTES:
        raise UsageError(too_large)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UsageError(f"{name} is UTF-16 text; save it as UTF-8")
    if b"\x00" in data:
        raise UsageError(f"{name} is not UTF-8 text (it holds NUL bytes: UTF-16, or binary?)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text (byte {exc.start} is not UTF-8)") from exc
    try:
        document = json.loads(text)
    except RecursionError as exc:
        raise UsageError(f"{name} is nested too deeply to be an application") from exc
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise UsageError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UsageError(f"{name} must hold a JSON object")
    return document


def _token() -> str:
    from singlewindow.contracts.errors import DomainError, ErrorCode
    from singlewindow.swctl.client import load_token

    token = load_token()
    if token is None:
        raise DomainError(
            ErrorCode.UNAUTHENTICATED, "not logged in; run `swctl login --account NAME`"
        )
    return token


# Commands: each imports what it needs when it runs.


async def cmd_register_cardless(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import registration
    from singlewindow.swctl.claims import keep_claim

    application = read_json_file(args.file)
    submitted = await client.call(registration.SUBMIT_CARDLESS, application)
    try:
        kept = keep_claim(submitted.application_id, submitted.claim_secret)
    except SessionFileError as exc:
        print(f"swctl: {exc}; keep the claim_secret shown: nothing else gives it", file=sys.stderr)
    else:
        print(f"claim secret kept in {kept}", file=sys.stderr)
    return submitted


async def cmd_register_resubmit(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import registration

    if args.file == "-" and args.claim_secret_stdin:
        raise UsageError("--file - and --claim-secret-stdin cannot both read stdin")
    application = read_json_file(args.file) | _claim(args)
    return await client.call(registration.RESUBMIT_CARDLESS, application)


async def cmd_registration_show(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import registration

    return await client.call(registration.SHOW_APPLICATION, _claim(args))


def _claim(args: argparse.Namespace) -> dict[str, object]:
    """The application id and its claim secret: from stdin if told, else the one swctl kept."""
    from singlewindow.swctl.claims import claim_file, load_claim

    if args.claim_secret_stdin:
        secret = sys.stdin.readline().strip()
    else:
        kept = load_claim(args.application)
        if kept is None:
            raise UsageError(
                f"no claim secret of {args.application} kept in "
                f"{claim_file(args.application) or 'the config directory'}; the submit reply "
                "gave it: pass it with --claim-secret-stdin"
            )
        secret = kept
    return {"application_id": args.application, "claim_secret": secret}


async def cmd_review_list(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import review

    request = {
        "token": staff.staff_token(),
        "state": None if args.all else review.TaskState.OPEN.value,
        "limit": args.limit,
        "offset": args.offset,
        "mine": args.mine,
        "overdue": args.overdue,
    }
    return await client.call(review.LIST_TASKS, request)


def print_task_list(tasks: review.TaskList, args: argparse.Namespace) -> None:
    """One line per task, then which page this is; `review show TASK` has the submission."""
    rows = [("TASK", "STATE", "DUE (UTC)", "ASSIGNEE", "APPLICATION", "USCC", "ENTERPRISE")]
    for task in tasks.tasks:
        state = task.decision.value if task.decision else task.state.value
        application = task.application_id
        rows.append(
            (
                task.task_id,
                f"{state}, overdue" if task.overdue else state,
                f"{task.due_by:%Y-%m-%d %H:%M}",
                task.assignee or "-",
                application if task.attempt == 1 else f"{application} (attempt {task.attempt})",
                task.uscc,
                task.enterprise_name,
            )
        )
    if tasks.tasks:
        # The enterprise name goes last: CJK characters are two columns wide.
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            print("  ".join([*cells, row[-1]]))
    print(_page_line(len(tasks.tasks), tasks.total, args.offset))


def _page_line(shown: int, total: int, offset: int) -> str:
    if shown == 0:
        return f"no tasks at offset {offset} ({total} in all)" if total else "no tasks"
    line = f"tasks {offset + 1}-{offset + shown} of {total}"
    if offset + shown < total:
        line += f"; the next page: --offset {offset + shown}"
    return line


def _decide(decision: str) -> Command:
    async def command(args: argparse.Namespace, client: Client) -> BaseModel:
        from singlewindow.contracts import review

        request = {
            "token": staff.staff_token(),
            "task_id": args.task,
            "decision": decision,
            "reason": getattr(args, "reason", None),
        }
        return await client.call(review.DECIDE_TASK, request)

    return command


async def cmd_review_show(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import review

    return await client.call(review.SHOW_TASK, {"token": staff.staff_token(), "task_id": args.task})


async def cmd_review_claim(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import review

    return await client.call(
        review.CLAIM_TASK, {"token": staff.staff_token(), "task_id": args.task}
    )


async def cmd_review_assign(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import review

    request = {"token": staff.staff_token(), "task_id": args.task, "reviewer": args.reviewer}
    return await client.call(review.ASSIGN_TASK, request)


def _read_password(account: str) -> str:
    import getpass

    try:
        return getpass.getpass(f"password for {account}: ")
    except EOFError as exc:
        raise UsageError("no password given (stdin ended); --password-stdin reads one") from exc


async def cmd_login(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import accounts
    from singlewindow.swctl.client import save_session

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
        password = _read_password(args.account)
    session = await client.call(
        accounts.LOGIN_PASSWORD,
        {"account": args.account, "password": password},
    )
    save_session(session.model_dump(mode="json") | {"nats_url": args.nats_url})
    if accounts.RequiredAction.CHANGE_PASSWORD in session.required_actions and not args.json:
        print("change the one-time password first: swctl password change", file=sys.stderr)
    return session


async def cmd_register_card(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.swctl.client import save_session

    admin = _details_file(args, "admin") if args.file else None
    if admin is None and not sys.stdin.isatty():
        raise UsageError("no terminal to ask the administrator's details on; give them with --file")
    session = await _card_flows(args, client).register_admin(admin)
    save_session(session.model_dump(mode="json") | {"nats_url": args.nats_url})
    return session


async def cmd_operators_add_card(args: argparse.Namespace, client: Client) -> BaseModel:
    operator = _details_file(args, "operator")
    return await _card_flows(args, client).add_operator(_token(), operator)


def _card_flows(args: argparse.Namespace, client: Client) -> Flows:
    from singlewindow.swctl import cardflows

    # With --json, stdout holds the one result document: the card's data and prompts go to stderr.
    out = sys.stderr if args.json else sys.stdout
    pin = cardflows.pin_from_stdin() if args.pin_stdin else cardflows.pin_from_terminal(out)
    return cardflows.Flows(client, reader=args.reader, pin=pin, out=out, last_try=args.last_pin_try)


def _details_file(args: argparse.Namespace, key: str) -> dict[str, Any]:
    if args.file == "-" and args.pin_stdin:
        raise UsageError("--file - and --pin-stdin cannot both read stdin")
    details = read_json_file(args.file).get(key)
    if not isinstance(details, dict):
        raise UsageError(f"{args.file} must hold an `{key}` object")
    return details


async def cmd_logout(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    from singlewindow.contracts import accounts
    from singlewindow.contracts.errors import DomainError
    from singlewindow.swctl.client import forget_session, load_token, session_file

    path = str(session_file())
    try:
        token = load_token()
    except SessionFileError:
        forget_session()
        return {"logged_out": False, "session_file": path, "detail": "damaged session removed"}
    if token is None:
        return {"logged_out": False, "session_file": path, "detail": "not logged in"}
    forget_session()
    # A session already ended on the server needs no more: the local copy is gone either way.
    with contextlib.suppress(DomainError):
        await client.call(accounts.LOGOUT, {"token": token})
    return {"logged_out": True, "session_file": path, "detail": "logged out"}


def print_logout(outcome: dict[str, Any], args: argparse.Namespace) -> None:
    """What logout did, in one line."""
    if outcome["logged_out"]:
        print("logged out")
    elif outcome["detail"] == "not logged in":
        print(f"not logged in (no session in {outcome['session_file']}); nothing to do")
    else:
        print(f"removed the damaged session file {outcome['session_file']}; log in again")


async def cmd_whoami(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import accounts

    return await client.call(accounts.SHOW_SESSION, {"token": _token()})


async def cmd_account_show(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import accounts

    return await client.call(accounts.SHOW_ACCOUNT, {"token": _token()})


async def cmd_scope_options(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import accounts

    return await client.call(accounts.SCOPE_OPTIONS, {"token": _token()})


async def cmd_scope_set(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.contracts import accounts

    return await client.call(accounts.SET_SCOPE, {"token": _token(), "codes": args.codes})


async def cmd_events_tail(args: argparse.Namespace, client: Client) -> None:
    from singlewindow.swctl import events

    await events.tail(args, client)


async def cmd_deadletter_list(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.swctl import deadletter

    return await deadletter.list_dead_letters(args, client)


async def cmd_deadletter_replay(args: argparse.Namespace, client: Client) -> BaseModel:
    from singlewindow.swctl import deadletter

    return await deadletter.replay(args, client)


def cmd_up(args: argparse.Namespace) -> int:
    from singlewindow.swctl import up
    from singlewindow.swctl.platform import DEFAULT_HTTP_PORT_BASE

    if args.json:
        raise UsageError("`swctl up` prints its progress, not JSON; `swctl status --json` does")
    if args.http_port_base is None:
        args.http_port_base = int(os.environ.get("SW_HTTP_PORT_BASE", DEFAULT_HTTP_PORT_BASE))
    if args.http_port is None:  # gateway (issue 8)
        from singlewindow.swctl.platform import GATEWAY_PORT_BELOW_BASE

        port = os.environ.get("SW_GATEWAY_PORT")
        args.http_port = int(port) if port else args.http_port_base - GATEWAY_PORT_BELOW_BASE
    return up.up(args)


def cmd_status(args: argparse.Namespace) -> int:
    from singlewindow.swctl import status

    return status.status(args)


COMMANDS: dict[str, Command] = {
    "register cardless": cmd_register_cardless,
    "register resubmit": cmd_register_resubmit,
    "registration show": cmd_registration_show,
    "review list": cmd_review_list,
    "review show": cmd_review_show,
    "review approve": _decide("approve"),
    "review reject": _decide("reject"),
    "review return": _decide("return"),
    "review claim": cmd_review_claim,
    "review assign": cmd_review_assign,
    "login": cmd_login,
    "register card": cmd_register_card,
    "operators add-card": cmd_operators_add_card,
    "logout": cmd_logout,
    "whoami": cmd_whoami,
    "account show": cmd_account_show,
    "scope options": cmd_scope_options,
    "scope set": cmd_scope_set,
    "events tail": cmd_events_tail,
    "deadletter list": cmd_deadletter_list,
    "deadletter replay": cmd_deadletter_replay,
    **card.COMMANDS,
    **staff.COMMANDS,
    **operators.COMMANDS,
    **account.COMMANDS,
    **mobile.COMMANDS,
    **individual.COMMANDS,
    **filing.COMMANDS,
    **qualifications.COMMANDS,  # issue 10
    **permissions.COMMANDS,
}

PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    "review list": print_task_list,
    "logout": print_logout,
    **staff.PLAIN,
    **card.PLAIN,
    **operators.PLAIN,
    **account.PLAIN,
    **mobile.PLAIN,
    **individual.PLAIN,
    **filing.PLAIN,
    **qualifications.PLAIN,  # issue 10
    **permissions.PLAIN,
}
"""Commands whose readable output is not the generic `key: value` lines."""

LOCAL_COMMANDS: dict[str, LocalCommand] = {
    "up": cmd_up,
    "status": cmd_status,
    **card.LOCAL_COMMANDS,
    **messages.LOCAL_COMMANDS,
    **qualifications.LOCAL_COMMANDS,  # issue 10
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (and so reported like any other, --json included)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (`{self.prog} --help` says more)", self.format_usage())


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _idempotency_key(text: str) -> str:
    from singlewindow.contracts.endpoints import IDEMPOTENCY_KEY

    if not IDEMPOTENCY_KEY.fullmatch(text):
        raise argparse.ArgumentTypeError(f"8 to 128 letters, digits or . _ : -, not {text!r}")
    return text


def global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--nats-url, --json and --timeout; with the real defaults on swctl itself only.

    Each subcommand takes them too, with suppressed defaults, so that `swctl --json review list`
    and `swctl review list --json` mean the same: a subcommand sets only what it was given.
    """

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--nats-url",
        default=default(None),
        metavar="URL",
        help=f"NATS server of the platform (env SW_NATS_URL; default {DEFAULT_NATS_URL})",
    )
    parser.add_argument(  # gateway (issue 8)
        "--server",
        default=default(None),
        metavar="URL",
        help="the platform's HTTP gateway people's requests go to (env SW_SERVER; default "
        "http://127.0.0.1:8080, or NATS itself when only --nats-url/SW_NATS_URL is given)",
    )
    parser.add_argument(
        "--nats-ca",
        default=default(None),
        metavar="FILE",
        help="the CA certificate (PEM) NATS's TLS certificate is checked against, for a private "
        "CA such as cert-manager's (env SW_NATS_CA; default: the credential's \"ca\", else the "
        "system's CAs)",
    )
    parser.add_argument(
        "--credentials",
        default=default(None),
        metavar="FILE",
        help="the NATS credential file to connect with (env SW_CREDENTIALS; default: the "
        "data directory's credentials/portal.json, workstation.json for card readers)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print exactly one JSON document on stdout, errors included",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=default(DEFAULT_TIMEOUT),
        metavar="SECONDS",
        help=f"seconds to wait for a reply (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--idempotency-key",
        type=_idempotency_key,
        default=default(None),
        metavar="KEY",
        help="send the command's changes with this key (8-128 of A-Z a-z 0-9 . _ : -): "
        "the same command again with the same key gets the first answer, not a second effect "
        "(default: a fresh key, printed if no reply came)",
    )


def add_up_options(parser: argparse.ArgumentParser) -> None:
    """`swctl up`'s options for the card reader."""
    parser.add_argument(
        "--pcscd",
        choices=["auto", "private", "system"],
        default=os.environ.get("SW_PCSCD", "auto"),
        help="the platform's own pcscd, where no other platform sees its reader (private; "
        "needs unshare and root), the machine's (system, with the real readers), or private "
        "where possible (auto, the default; env SW_PCSCD)",
    )
    parser.add_argument(
        "--vpcd-port",
        type=int,
        default=None,
        help="a private pcscd's virtual reader port, slot 00 01 on the next (default: the one "
        "this data directory used last, if free, else two free ports)",
    )


def build_parser() -> argparse.ArgumentParser:
    """swctl's command line."""
    common = Parser(add_help=False)
    global_options(common, defaults=False)

    parser = Parser(
        prog="swctl",
        description="Single Window registration platform client",
        epilog="Exit codes: 0 done, 1 refused, 2 usage error, 3 platform unreachable, "
        "4 unexpected failure.",
    )
    global_options(parser, defaults=True)
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("SW_DATA_DIR", "var"),
        help="the embedded platform's data directory, for up, status and card "
        "(env SW_DATA_DIR; default var, under the working directory)",
    )
    commands = parser.add_subparsers(title="commands")

    def command(group: Any, name: str, full_name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, help=help_text, description=help_text, parents=[common]
        )
        sub.set_defaults(command=full_name)
        return sub

    def group(name: str, help_text: str) -> Any:
        return commands.add_parser(name, help=help_text, description=help_text).add_subparsers(
            title=f"{name} commands"
        )

    def claim_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--claim-secret-stdin",
            action="store_true",
            help="read the application's claim secret from stdin "
            "(default: the one kept when this swctl submitted it)",
        )

    def card_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--reader", help="the card reader (default: the only one with a card)")
        sub.add_argument("--pin-stdin", action="store_true", help="read the card PIN from stdin")
        sub.add_argument(
            "--last-pin-try",
            action="store_true",
            help="use the card's last PIN try (a wrong PIN then blocks the card)",
        )

    up_parser = command(commands, "up", "up", "start the embedded platform and wait for Ctrl-C")
    status_parser = command(
        commands, "status", "status", "show each service's state (exit 0 when all are ready)"
    )
    for sub in (up_parser, status_parser):
        sub.add_argument(
            "--data-dir",
            default=argparse.SUPPRESS,
            help="where the embedded platform keeps its data (env SW_DATA_DIR; default var)",
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
        default=None,
        help="services listen for health and metrics on base+1, base+2, ... "
        "(env SW_HTTP_PORT_BASE; default 8100)",
    )
    up_parser.add_argument(  # gateway (issue 8)
        "--http-port",
        type=int,
        default=None,
        help="the HTTP gateway's port (env SW_GATEWAY_PORT; default the base - 20: 8080)",
    )
    add_up_options(up_parser)

    register = group("register", "submit registration applications")
    sub = command(register, "cardless", "register cardless", "submit a cardless application")
    sub.add_argument("--file", required=True, help="the application JSON file (- for stdin)")
    sub = command(register, "resubmit", "register resubmit", "resubmit a returned application")
    sub.add_argument("application", help="the application id")
    sub.add_argument("--file", required=True, help="the corrected application JSON file")
    claim_option(sub)
    individual.register(register, command)

    registration_group = group("registration", "follow registration applications")
    sub = command(registration_group, "show", "registration show", "show an application's state")
    sub.add_argument("application", help="the application id")
    claim_option(sub)

    staff.register(group("staff", "the platform's staff accounts and your staff session"), command)

    review_group = group("review", "back-office review of applications (a staff session)")
    sub = command(
        review_group,
        "list",
        "review list",
        "list open review tasks, oldest first, a page at a time",
    )
    sub.add_argument("--all", action="store_true", help="include decided tasks")
    sub.add_argument(
        "--limit", type=_count, default=50, help="tasks per page, 1 to 500 (default 50)"
    )
    sub.add_argument("--offset", type=_count, default=0, help="tasks to skip (default 0)")
    sub.add_argument("--mine", action="store_true", help="only the tasks assigned to you")
    sub.add_argument("--overdue", action="store_true", help="only open tasks past their due time")
    sub = command(review_group, "show", "review show", "show a task and what was submitted")
    sub.add_argument("task")
    sub = command(review_group, "claim", "review claim", "assign an unclaimed task to yourself")
    sub.add_argument("task")
    sub = command(
        review_group, "assign", "review assign", "reassign a task to a reviewer (supervisors)"
    )
    sub.add_argument("task")
    sub.add_argument("reviewer", metavar="REVIEWER", help="the staff account to assign it to")
    for decision, needs_reason in (("approve", False), ("reject", True), ("return", True)):
        sub = command(
            review_group, decision, f"review {decision}", f"{decision} a task, as yourself"
        )
        sub.add_argument("task")
        if needs_reason:
            sub.add_argument("--reason", required=True, help="what the applicant will read")

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

    operators_group = group("operators", "the enterprise's operators (administrator only)")
    sub = command(
        operators_group,
        "add-card",
        "operators add-card",
        "add an operator with their operator card",
    )
    sub.add_argument("--file", required=True, help="JSON file with the `operator` object")
    card_options(sub)
    operators.register(operators_group, command)
    command(commands, "logout", "logout", "end the session (without one there is nothing to do)")
    command(commands, "whoami", "whoami", "show the current session")

    account_group = group("account", "your own account")
    command(account_group, "show", "account show", "show your account")
    account.register(account_group, command)
    account.register_password(group("password", "your own password"), command)
    mobile.register(
        group("mobile", "your own mobile number, changed with a one-time code"), command
    )
    dev = group("dev", "development tools of the embedded platform")
    messages.register(dev, command)
    qualifications.register_dev(dev, command)  # issue 10
    filing.register(group("filing", "customs enterprise filing (海关企业备案)"), command)
    qualifications.register(group("qualifications", "My qualifications"), command)
    permissions.register(group("permissions", "My application permissions"), command)

    scope = group("scope", "the enterprise's business scope")
    command(scope, "options", "scope options", "list business scope choices")
    sub = command(scope, "set", "scope set", "declare the business scope")
    sub.add_argument("codes", nargs="+", metavar="CODE")

    events_group = group("events", "platform events")
    sub = command(
        events_group,
        "tail",
        "events tail",
        "print events as they arrive, until Ctrl-C (or --limit, or --idle-timeout)",
    )
    sub.add_argument("--from-start", action="store_true", help="begin with the oldest kept event")
    sub.add_argument(
        "--audit", action="store_true", help="the audit trail instead of public events"
    )
    sub.add_argument(
        "--jsonl",
        action="store_true",
        help="one JSON line per event as it arrives (the default; --json prints one array at "
        "the end instead)",
    )
    sub.add_argument("--limit", type=_count, default=None, help="stop after this many events")
    sub.add_argument(
        "--idle-timeout",
        type=_positive,
        default=None,
        help="stop after this many quiet seconds (`--from-start --idle-timeout 1`: what is kept)",
    )

    card.register(group("card", "virtual E-Port cards, the card readers, My IC card"), command)

    dead = group("deadletter", "events a consumer gave up on")
    command(dead, "list", "deadletter list", "list dead letters with their reasons")
    sub = command(dead, "replay", "deadletter replay", "send a dead letter to its consumer again")
    sub.add_argument(
        "sequence", type=int, help="the dead letter's sequence (from `deadletter list`)"
    )
    return parser
