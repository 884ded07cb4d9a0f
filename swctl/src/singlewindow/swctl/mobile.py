"""`swctl mobile`: change your own mobile number with a one-time code sent to the new one.

    swctl mobile change 13800138000    # a 6-digit code goes to the new number
    swctl mobile verify 123456         # the number is the account's from now on

Any session may change its own number. Like `staff`, this module imports only the standard
library until a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.swctl.client import Client


def session_token() -> str:
    """The saved enterprise (or individual) session's token; refused without one."""
    from singlewindow.contracts.errors import DomainError, ErrorCode
    from singlewindow.swctl.client import load_token

    token = load_token()
    if token is None:
        raise DomainError(
            ErrorCode.UNAUTHENTICATED, "not logged in; run `swctl login --account NAME`"
        )
    return token


async def change(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl mobile change NUMBER`."""
    from singlewindow.contracts import accounts

    request = {"token": session_token(), "mobile": args.number}
    return await client.call(accounts.MOBILE_CHANGE, request)


async def verify(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl mobile verify CODE`."""
    from singlewindow.contracts import accounts

    request = {"token": session_token(), "code": args.code}
    return await client.call(accounts.MOBILE_VERIFY, request)


def print_sent(sent: Any, args: argparse.Namespace) -> None:
    """Where the code went and what to do next."""
    print(f"a {sent.tries}-try code was sent to {sent.to_masked}; it expires at {sent.expires_at}")
    print("complete the change with: swctl mobile verify CODE")


COMMANDS = {"mobile change": change, "mobile verify": verify}
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {"mobile change": print_sent}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `mobile` subcommands to swctl's parser."""
    sub = command(group, "change", "mobile change", "send a one-time code to a new mobile number")
    sub.add_argument("number", metavar="NUMBER", help="the new mainland China mobile number")
    sub = command(group, "verify", "mobile verify", "complete the change with the code received")
    sub.add_argument("code", metavar="CODE", help="the 6-digit code sent to the new number")
