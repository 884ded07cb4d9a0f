"""`swctl qualifications`: My qualifications, read-only until an explicit edit.

    swctl qualifications show                 # basics and the inspection qualification
    swctl qualifications authorities          # the accepting authorities' codes
    swctl qualifications edit > q.json        # the record and its version (administrator)
    swctl qualifications save --version 1 --file q.json

The file `save` takes is `{"inspection": {"registration_number": ..., "declaration_account": ...,
"password": ..., "authority": CODE}}` (`password` left out keeps it); a save whose version is
not the current one is refused and writes nothing. `swctl dev rotate-key` puts a new key first
in the embedded platform's key file. Like `staff`, this module imports only the standard
library until a command runs.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.swctl.client import Client

KEY_FILE = Path("secrets") / "accounts-keys"
"""Under the data directory: the embedded platform's secret keys (0600), newest first."""
EDITABLE = ("registration_number", "declaration_account", "authority")


async def show(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl qualifications show`."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.mobile import session_token

    return await client.call(accounts.QUALIFICATIONS_SHOW, {"token": session_token()})


async def edit(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl qualifications edit`."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.mobile import session_token

    return await client.call(accounts.QUALIFICATIONS_EDIT, {"token": session_token()})


async def save(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl qualifications save --version N --file q.json`."""
    from singlewindow.contracts import accounts
    from singlewindow.swctl.main import read_json_file
    from singlewindow.swctl.mobile import session_token

    content = read_json_file(args.file)
    inspection = content.get("inspection", content)
    if isinstance(inspection, dict):
        # `edit`'s output may be saved back as it is: what is shown only is left out.
        inspection = {k: v for k, v in inspection.items() if k in (*EDITABLE, "password")}
    request = {"token": session_token(), "version": args.version, "inspection": inspection}
    return await client.call(accounts.QUALIFICATIONS_SAVE, request)


async def list_authorities(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl qualifications authorities`."""
    from singlewindow.contracts import accounts

    return await client.call(accounts.AUTHORITIES_LIST, {})


def print_view(view: Any, args: argparse.Namespace) -> None:
    """The record as a person reads it; never the password, only whether it is set."""
    basics, inspection = view.basics, view.inspection
    print("Enterprise basic information (read-only)")
    print(f"  USCC:            {basics.uscc}")
    print(f"  name:            {basics.name}")
    print(f"  English name:    {basics.name_en or '-'}")
    print(f"  division:        {basics.division}")
    print(f"  address:         {basics.address or '-'}")
    print(f"  legal person:    {basics.legal_rep_name or '-'}")
    print(f"  registered via:  {basics.registered_via}, {basics.registered_at}")
    print("Inspection qualification")
    print(f"  registration number:  {inspection.registration_number or '-'}")
    print(f"  declaration account:  {inspection.declaration_account or '-'}")
    print(f"  password:             {'set' if inspection.password_set else 'not set'}")
    authority = inspection.authority
    print(f"  accepting authority:  {authority or '-'} {inspection.authority_name or ''}".rstrip())
    saved = f", saved by {view.updated_by} at {view.updated_at}" if view.updated_by else ""
    print(f"version {view.version}{saved}")
    if view.editable:
        print(f"to change it: swctl qualifications save --version {view.version} --file q.json")


def print_authorities(listed: Any, args: argparse.Namespace) -> None:
    """One authority a line: code and names."""
    for authority in listed.authorities:
        print(f"{authority.code}  {authority.name_zh}  {authority.name_en}")


# `swctl dev rotate-key`


def new_key_entry() -> str:
    """A fresh `ID:BASE64` key entry (32 random bytes), as the accounts service reads them."""
    return f"k{secrets.token_hex(4)}:{base64.b64encode(os.urandom(32)).decode()}"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, its owner's only (0600), the directory 0700."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def ensure_key_file(data_dir: Path) -> Path:
    """The embedded platform's key file, made with one key the first time."""
    path = data_dir / KEY_FILE
    if not path.exists() or not path.read_text(encoding="utf-8").strip():
        write_private(path, new_key_entry() + "\n")
    return path


def key_environment(data_dir: Path) -> dict[str, str]:
    """What the accounts service is told of its keys on the embedded platform."""
    return {"SW_ACCOUNTS_SECRET_KEY_FILE": str(ensure_key_file(data_dir))}


def rotate_key(args: argparse.Namespace) -> int:
    """Put a new key first in the key file: new values are sealed with it at once, and the
    accounts service seals the older ones again when it next starts."""
    import json

    path = ensure_key_file(Path(args.data_dir))
    old = path.read_text(encoding="utf-8")
    entry = new_key_entry()
    write_private(path, entry + "\n" + old)
    key_id = entry.split(":", 1)[0]
    kept = [line.split(":", 1)[0] for line in old.splitlines() if ":" in line]
    if args.json:
        print(json.dumps({"key_file": str(path), "current": key_id, "older": kept}))
    else:
        print(f"new key {key_id} first in {path}; older keys kept: {', '.join(kept)}")
        print("restart the platform (swctl up): accounts seals the older values again on start;")
        print("then the older keys may be removed from the file")
    return 0


COMMANDS = {
    "qualifications show": show,
    "qualifications edit": edit,
    "qualifications save": save,
    "qualifications authorities": list_authorities,
}
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    "qualifications show": print_view,
    "qualifications edit": print_view,
    "qualifications save": print_view,
    "qualifications authorities": print_authorities,
}
LOCAL_COMMANDS = {"dev rotate-key": rotate_key}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `qualifications` subcommands to swctl's parser."""
    command(group, "show", "qualifications show", "show My qualifications (read-only)")
    command(group, "authorities", "qualifications authorities", "list the accepting authorities")
    command(
        group,
        "edit",
        "qualifications edit",
        "open the qualifications for editing: the record and its version (administrator)",
    )
    sub = command(
        group, "save", "qualifications save", "save the qualifications opened at --version"
    )
    sub.add_argument(
        "--version", type=int, required=True, help="the version `edit` gave (0 before any save)"
    )
    sub.add_argument(
        "--file", required=True, help='JSON {"inspection": {...}} (`edit --json` output too)'
    )


def register_dev(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `rotate-key` to swctl's `dev` group."""
    sub = command(
        group,
        "rotate-key",
        "dev rotate-key",
        "put a new secret key first in the embedded platform's key file (key rotation)",
    )
    sub.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="the embedded platform's data directory"
    )
