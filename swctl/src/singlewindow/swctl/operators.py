"""`swctl operators`: an enterprise administrator's operators (cardless and card).

    swctl operators add --file operator.json   # {"operator": {..., "level": "entry"}}
    swctl operators list | show NAME
    swctl operators update NAME --file changes.json   # {"name"|"email"|"landline"|"level": ...}
    swctl operators disable NAME | enable NAME | delete NAME
    swctl operators reset-password NAME        # a new one-time password

A cardless operator's first password is a one-time one: the deployment's default (the guide's
88888888) or a random one sent to the operator's mobile; it must be changed at first login
(`swctl password change`) and expires unused. `operators add-card` (in `main`) adds an operator
with their operator card. Like `staff`, this module imports only the standard library until a
command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from singlewindow.swctl.errors import UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.swctl.client import Client


async def add(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl operators add --file operator.json`."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.main import _token, read_json_file

    operator = read_json_file(args.file).get("operator")
    if not isinstance(operator, dict):
        raise UsageError(f"{args.file} must hold an `operator` object")
    return await client.call(accounts.ADD_OPERATOR, {"token": _token(), "operator": operator})


async def list_operators(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl operators list`."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.main import _token

    return await client.call(accounts.LIST_OPERATORS, {"token": _token()})


async def update(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl operators update NAME --file changes.json`."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.main import _token, read_json_file

    changes = read_json_file(args.file)
    request = {"token": _token(), "account": args.name, "changes": changes}
    return await client.call(accounts.UPDATE_OPERATOR, request)


def _by_name(endpoint_name: str) -> Callable[[argparse.Namespace, Client], Any]:
    async def command(args: argparse.Namespace, client: Client) -> BaseModel:
        from singlewindow.contracts import accounts
        from singlewindow.swctl.main import _token

        endpoint = getattr(accounts, endpoint_name)
        reply: BaseModel = await client.call(endpoint, {"token": _token(), "account": args.name})
        return reply

    return command


def print_list(listed: Any, args: argparse.Namespace) -> None:
    """One line per operator."""
    if not listed.operators:
        print("no operators yet: swctl operators add --file operator.json")
        return
    rows = [("ACCOUNT", "LEVEL", "STATUS", "PASSWORD", "CARD", "NAME")]
    for operator in listed.operators:
        rows.append(
            (
                operator.account,
                operator.operator_level.value if operator.operator_level else "-",
                operator.status,
                _password_state(operator),
                operator.card_number or "-",
                operator.name,
            )
        )
    # The name goes last: CJK characters are two columns wide.
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))


def _password_state(operator: Any) -> str:
    if not operator.password_must_change:
        return "set"
    expires = operator.password_expires_at
    return f"one-time until {expires:%Y-%m-%d}" if expires else "one-time"


def print_one_time(operator: Any, args: argparse.Namespace) -> None:
    """The operator, then how they log in the first time."""
    from singlewindow.swctl.main import print_result

    print_result(operator, as_json=False)
    if operator.password_must_change:
        until = f"{operator.password_expires_at:%Y-%m-%d %H:%M} UTC"
        if operator.initial_password == "random":
            print(f"a one-time password was sent to the operator's mobile; valid until {until}")
        else:
            print(
                "the operator logs in with the default one-time password (88888888 unless the "
                f"deployment set another), valid until {until}"
            )
        print("they must change it first: swctl password change")


COMMANDS = {
    "operators add": add,
    "operators list": list_operators,
    "operators show": _by_name("SHOW_OPERATOR"),
    "operators update": update,
    "operators disable": _by_name("DISABLE_OPERATOR"),
    "operators enable": _by_name("ENABLE_OPERATOR"),
    "operators delete": _by_name("DELETE_OPERATOR"),
    "operators reset-password": _by_name("RESET_OPERATOR_PASSWORD"),
}
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    "operators list": print_list,
    "operators add": print_one_time,
    "operators reset-password": print_one_time,
}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the cardless `operators` subcommands to swctl's parser."""
    sub = command(group, "add", "operators add", "add a cardless operator with a one-time password")
    sub.add_argument(
        "--file",
        required=True,
        help="JSON file with the `operator` object (name, id_type, id_number, mobile, account, "
        "email, landline, level: entry or declaration; no password) (- for stdin)",
    )
    command(group, "list", "operators list", "list your enterprise's operators")
    for name, help_text in (
        ("show", "show an operator"),
        ("disable", "disable an operator and end their sessions"),
        ("enable", "enable a disabled operator"),
        ("delete", "delete an operator: sessions end, history stays, login refused"),
        ("reset-password", "give an operator a new one-time password"),
    ):
        sub = command(group, name, f"operators {name}", help_text)
        sub.add_argument("name", metavar="NAME", help="the operator's account name")
    sub = command(group, "update", "operators update", "change an operator's details")
    sub.add_argument("name", metavar="NAME", help="the operator's account name")
    sub.add_argument(
        "--file",
        required=True,
        help='JSON file with what to change, e.g. {"email": ..., "landline": ..., "level": '
        '"declaration"} (null clears e-mail or landline; - for stdin)',
    )
