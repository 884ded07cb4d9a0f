"""`swctl account update` and `swctl password change`: your own account's details and password.

    swctl account update --file me.json        # {"name": ..., "email": ..., "landline": ...}
    swctl password change                      # asks the current, then the new password
    printf '%s\\n%s\\n' "$OLD" "$NEW" | swctl password change --password-stdin

A one-time password (an operator's first, 88888888 by default) must be changed with
`swctl password change` before the session can do anything else. Like `staff`, this module
imports only the standard library until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from singlewindow.swctl.errors import UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.swctl.client import Client


def _secret(prompt: str) -> str:
    import getpass

    try:
        return getpass.getpass(prompt)
    except EOFError as exc:
        raise UsageError("no password given (stdin ended); --password-stdin reads it") from exc


def _stdin_line(what: str) -> str:
    line = sys.stdin.readline()
    if not line:
        raise UsageError(f"--password-stdin: stdin ended before the {what}")
    return line.rstrip("\r\n")


async def update(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl account update --file me.json`: change your name, e-mail or landline."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.main import _token, read_json_file

    changes = read_json_file(args.file)
    return await client.call(accounts.UPDATE_ACCOUNT, changes | {"token": _token()})


async def change_password(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl password change`: current password, then the new one; other sessions end."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.client import save_session
    from singlewindow.swctl.main import _token

    token = _token()
    if args.password_stdin:
        current, new = _stdin_line("current password"), _stdin_line("new password")
    else:
        current = _secret("current password: ")
        new = _secret("new password: ")
        if _secret("new password again: ") != new:
            raise UsageError("the new passwords differ; nothing changed")
    session = await client.call(
        accounts.CHANGE_PASSWORD,
        {"token": token, "current_password": current, "new_password": new},
    )
    save_session(session.model_dump(mode="json") | {"nats_url": args.nats_url})
    return session


def print_password_changed(session: Any, args: argparse.Namespace) -> None:
    """What the change did, and what the session still owes."""
    print(f"password of {session.account} changed; every other session of the account ended")
    if session.required_actions:
        owed = ", ".join(action.value for action in session.required_actions)
        print(f"still to do first: {owed}")


COMMANDS = {"account update": update, "password change": change_password}
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    "password change": print_password_changed,
}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `account update` to swctl's `account` group."""
    sub = command(group, "update", "account update", "change your name, e-mail or landline")
    sub.add_argument(
        "--file",
        required=True,
        help='JSON file with what to change, e.g. {"name": ..., "email": ..., "landline": ...} '
        "(null clears e-mail or landline; the account name and ID number cannot change; "
        "- for stdin)",
    )


def register_password(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `password` group's `change`."""
    sub = command(
        group,
        "change",
        "password change",
        "change your password (the current one required); your other sessions end",
    )
    sub.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the current and the new password from stdin, one per line",
    )
