"""`swctl staff`: the platform's own staff, and the staff session kept beside the enterprise one.

    swctl staff login                 # on the embedded platform: the bootstrap admin's file
    swctl staff password              # a one-time password must be changed first
    swctl staff add li-reviewer --role reviewer
    swctl staff list | disable NAME | enable NAME | logout

Like `card`, this module imports only the standard library until a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from singlewindow.swctl.errors import SessionFileError, UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.swctl.client import Client

ROLES = ("reviewer", "supervisor", "platform-admin")
STAFF_LOGOUT = "swctl staff logout"


def bootstrap_admin_file(data_dir: Path) -> Path:
    """Where the embedded platform keeps the bootstrap administrator's one-time password."""
    return data_dir / "credentials" / "bootstrap-admin.json"


def ensure_bootstrap_admin(data_dir: Path, account: str = "admin") -> Path:
    """The bootstrap administrator's file, made once with a random one-time password
    (`{"account": ..., "password": ...}`; the directory 0700, the file 0600)."""
    path = bootstrap_admin_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    if not path.exists():
        document = {"account": account, "password": secrets.token_urlsafe(18)}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
    return path


def bootstrap_environment(data_dir: Path) -> dict[str, str]:
    """What the accounts service is told of its bootstrap administrator on the embedded
    platform: `admin`, with the one-time password in the data directory."""
    return {
        "SW_ACCOUNTS_BOOTSTRAP_ADMIN": "admin",
        "SW_ACCOUNTS_BOOTSTRAP_PASSWORD_FILE": str(ensure_bootstrap_admin(data_dir)),
    }


def staff_token() -> str:
    """The saved staff session's token; refused (UNAUTHENTICATED) without one."""
    from singlewindow.contracts.errors import DomainError, ErrorCode
    from singlewindow.swctl.client import load_token, staff_session_file

    token = load_token(path=staff_session_file(), logout=STAFF_LOGOUT)
    if token is None:
        raise DomainError(
            ErrorCode.UNAUTHENTICATED, "no staff session; run `swctl staff login --account NAME`"
        )
    return token


def _save(session: BaseModel, args: argparse.Namespace) -> None:
    from singlewindow.swctl.client import save_session, staff_session_file

    document = session.model_dump(mode="json") | {"nats_url": args.nats_url}
    save_session(document, path=staff_session_file())


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


def _bootstrap_credentials(args: argparse.Namespace) -> tuple[str, str | None]:
    """The account (and, without --password-stdin, the password) of the bootstrap file."""
    path = bootstrap_admin_file(Path(args.data_dir))
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"give --account NAME (no bootstrap administrator file at {path})"
        ) from exc
    account, password = document.get("account"), document.get("password")
    if not isinstance(account, str) or not isinstance(password, str):
        raise UsageError(f"{path} is not a bootstrap administrator file; give --account NAME")
    return account, None if args.password_stdin else password


async def login(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl staff login`: open a staff session and keep it."""
    from singlewindow.contracts import accounts

    account, password = (args.account, None) if args.account else _bootstrap_credentials(args)
    if password is None:
        password = (
            _stdin_line("password") if args.password_stdin else _secret(f"password for {account}: ")
        )
    session = await client.call(accounts.STAFF_LOGIN, {"account": account, "password": password})
    _save(session, args)
    if session.required_actions and not args.json:
        print("change the one-time password first: swctl staff password", file=sys.stderr)
    return session


async def logout(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    """`swctl staff logout`: end the staff session and forget it."""
    from singlewindow.contracts import accounts
    from singlewindow.contracts.errors import DomainError
    from singlewindow.swctl.client import forget_session, load_token, staff_session_file

    path = staff_session_file()
    try:
        token = load_token(path=path, logout=STAFF_LOGOUT)
    except SessionFileError:
        forget_session(path=path)
        return {"logged_out": False, "session_file": str(path), "detail": "damaged session removed"}
    if token is None:
        return {"logged_out": False, "session_file": str(path), "detail": "not logged in"}
    forget_session(path=path)
    # A session already ended on the server needs no more: the local copy is gone either way.
    with contextlib.suppress(DomainError):
        await client.call(accounts.STAFF_LOGOUT, {"token": token})
    return {"logged_out": True, "session_file": str(path), "detail": "logged out"}


async def password(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl staff password`: change your own password; the new session is kept."""
    from singlewindow.contracts import accounts

    token = staff_token()
    if args.password_stdin:
        current, new = _stdin_line("current password"), _stdin_line("new password")
    else:
        current = _secret("current password: ")
        new = _secret("new password: ")
        if _secret("new password again: ") != new:
            raise UsageError("the new passwords differ; nothing changed")
    session = await client.call(
        accounts.STAFF_PASSWORD,
        {"token": token, "current_password": current, "new_password": new},
    )
    _save(session, args)
    return session


async def add(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl staff add NAME --role ROLE`: prints the one-time password to hand over."""
    from singlewindow.contracts import accounts

    return await client.call(
        accounts.STAFF_ADD, {"token": staff_token(), "account": args.name, "role": args.role}
    )


async def list_staff(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl staff list`."""
    from singlewindow.contracts import accounts

    return await client.call(accounts.STAFF_LIST, {"token": staff_token()})


def _set_status(enable: bool) -> Callable[[argparse.Namespace, Client], Any]:
    async def command(args: argparse.Namespace, client: Client) -> BaseModel:
        from singlewindow.contracts import accounts

        endpoint = accounts.STAFF_ENABLE if enable else accounts.STAFF_DISABLE
        return await client.call(endpoint, {"token": staff_token(), "account": args.name})

    return command


def print_staff_list(listed: Any, args: argparse.Namespace) -> None:
    """One line per staff account."""
    rows = [("ACCOUNT", "ROLE", "STATUS", "PASSWORD", "CREATED BY")]
    for member in listed.staff:
        rows.append(
            (
                member.account,
                member.role.value,
                member.status.value,
                "one-time" if member.password_must_change else "set",
                member.created_by,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def print_added(added: Any, args: argparse.Namespace) -> None:
    """The new account and its one-time password, shown this once."""
    print(f"added {added.staff.account} ({added.staff.role.value})")
    print(f"one-time password: {added.one_time_password}")
    print("hand it over privately; it must be changed at first login (swctl staff password)")


def print_logout(outcome: dict[str, Any], args: argparse.Namespace) -> None:
    """What staff logout did, in one line."""
    if outcome["logged_out"]:
        print("logged out of the staff session")
    elif outcome["detail"] == "not logged in":
        print(f"no staff session (no {outcome['session_file']}); nothing to do")
    else:
        print(f"removed the damaged staff session file {outcome['session_file']}; log in again")


COMMANDS = {
    "staff login": login,
    "staff logout": logout,
    "staff password": password,
    "staff add": add,
    "staff list": list_staff,
    "staff disable": _set_status(enable=False),
    "staff enable": _set_status(enable=True),
}
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    "staff list": print_staff_list,
    "staff add": print_added,
    "staff logout": print_logout,
}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `staff` subcommands to swctl's parser."""
    sub = command(group, "login", "staff login", "log in as staff and keep the staff session")
    sub.add_argument(
        "--account",
        help="the staff account (default: the embedded platform's bootstrap administrator, "
        "from <data dir>/credentials/bootstrap-admin.json)",
    )
    sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="the embedded platform's data directory"
    )
    command(group, "logout", "staff logout", "end the staff session")
    sub = command(group, "password", "staff password", "change your own staff password")
    sub.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the current and the new password from stdin, one per line",
    )
    sub = command(group, "add", "staff add", "add a staff account; prints its one-time password")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--role", required=True, choices=ROLES)
    command(group, "list", "staff list", "list the staff accounts")
    for name, help_text in (
        ("disable", "disable a staff account and end its sessions"),
        ("enable", "enable a disabled staff account"),
    ):
        sub = command(group, name, f"staff {name}", help_text)
        sub.add_argument("name", metavar="NAME")
