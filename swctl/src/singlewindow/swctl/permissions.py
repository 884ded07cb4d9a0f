"""`swctl permissions`: My application permissions, for the enterprise or one operator.

    swctl permissions list [--operator NAME]
    swctl permissions revoke manifest [--action declare] [--operator NAME]
    swctl permissions restore manifest [--action declare] [--operator NAME]

Each line says whether an application's action is granted and why (the business scope's
default, the administrator's revocation or restore, maker/checker). Like `staff`, this module
imports only the standard library until a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.swctl.client import Client

ACTIONS = ("query", "entry", "declare")


async def list_permissions(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl permissions list [--operator NAME]`."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.mobile import session_token

    request = {"token": session_token(), "operator": args.operator}
    return await client.call(accounts.PERMISSIONS_LIST, request)


def _change(endpoint_name: str) -> Callable[[argparse.Namespace, Client], Any]:
    async def change(args: argparse.Namespace, client: Client) -> BaseModel:
        from singlewindow.contracts import accounts
        from singlewindow.swctl.mobile import session_token

        request = {
            "token": session_token(),
            "application": args.application,
            "action": args.action,
            "operator": args.operator,
        }
        endpoint = getattr(accounts, endpoint_name)
        result: BaseModel = await client.call(endpoint, request)
        return result

    return change


def print_list(listed: Any, args: argparse.Namespace) -> None:
    """One line per application and action: granted or not, and why."""
    whose = (
        f"operator {listed.operator} ({listed.operator_level})"
        if listed.operator
        else "the enterprise"
    )
    print(f"application permissions of {whose}, {listed.uscc}")
    for entry in listed.permissions:
        mark = "granted" if entry.granted else "-      "
        print(f"  {entry.application:<26} {entry.action:<8} {mark}  {entry.reason}")


COMMANDS = {
    "permissions list": list_permissions,
    "permissions revoke": _change("PERMISSIONS_REVOKE"),
    "permissions restore": _change("PERMISSIONS_RESTORE"),
}
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    name: print_list for name in COMMANDS
}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `permissions` subcommands to swctl's parser."""
    sub = command(group, "list", "permissions list", "list the application permissions and why")
    sub.add_argument("--operator", metavar="NAME", help="an operator's, not the enterprise's")
    for verb, what in (("revoke", "revoke"), ("restore", "restore")):
        sub = command(
            group,
            verb,
            f"permissions {verb}",
            f"{what} an application for the enterprise or one operator (administrator)",
        )
        sub.add_argument("application", metavar="APP", help="the application id (see list)")
        sub.add_argument("--action", choices=ACTIONS, help="one action only (default: all)")
        sub.add_argument("--operator", metavar="NAME", help="for this operator only")
