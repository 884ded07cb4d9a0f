"""`swctl register individual` and `swctl register verify`: individual users (no enterprise).

    swctl register individual --file examples/person.json   # a code goes to the person's mobile
    swctl register verify --account li_si 123456            # the account is active
    swctl login --account li_si

Like `staff`, this module imports only the standard library until a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.swctl.client import Client


async def register_individual(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl register individual --file person.json`."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.main import read_json_file

    return await client.call(accounts.REGISTER_INDIVIDUAL, read_json_file(args.file))


async def verify(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl register verify --account NAME CODE`."""
    from singlewindow.contracts import accounts

    request = {"account": args.account, "code": args.code}
    return await client.call(accounts.ACTIVATE_INDIVIDUAL, request)


def print_sent(sent: Any, args: argparse.Namespace) -> None:
    """Where the activation code went and what to do next."""
    print(f"registered {sent.account}, pending: a code was sent to {sent.to_masked}")
    print(f"activate it with: swctl register verify --account {sent.account} CODE")


def print_activated(activated: Any, args: argparse.Namespace) -> None:
    """The account is active."""
    print(f"{activated.account} is active; log in with: swctl login --account {activated.account}")


COMMANDS = {"register individual": register_individual, "register verify": verify}
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    "register individual": print_sent,
    "register verify": print_activated,
}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `individual` and `verify` to swctl's `register` group."""
    sub = command(
        group,
        "individual",
        "register individual",
        "register an individual user (no enterprise); a code to the mobile activates it",
    )
    sub.add_argument("--file", required=True, help="the person JSON file (- for stdin)")
    sub = command(
        group, "verify", "register verify", "activate an individual account with its code"
    )
    sub.add_argument("--account", required=True, help="the account name registered")
    sub.add_argument("code", metavar="CODE", help="the 6-digit code sent to the mobile")
