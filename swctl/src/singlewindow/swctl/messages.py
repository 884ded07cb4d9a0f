"""`swctl dev messages`: what the development notifier received (the SMS it would send).

    swctl dev messages                     # every message, newest last
    swctl dev messages --to 13800138000    # those to one number
    swctl dev messages --json

It reads `<data dir>/messages.jsonl`, which only the embedded platform (`swctl up`) writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from singlewindow.swctl.errors import EXIT_OK, UsageError

MESSAGES_FILE = "messages.jsonl"
"""The same name as `singlewindow.swctl.notifier.MESSAGES_FILE` (kept here: swctl starts fast)."""


def digits(number: str) -> str:
    """The national number's digits (`+86 138-0013-8000` is `13800138000`)."""
    only = "".join(c for c in number if c.isdigit())
    return only[2:] if only.startswith("86") and len(only) == 13 else only


def read_messages(data_dir: Path, to: str | None = None) -> list[dict[str, Any]]:
    """The messages written so far, oldest first, to `to` only if given."""
    path = data_dir / MESSAGES_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    found = []
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash: the notifier writes it again
        if isinstance(message, dict) and (to is None or digits(str(message.get("to"))) == to):
            found.append(message)
    return found


def messages(args: argparse.Namespace) -> int:
    """Print the messages (newest last)."""
    to = digits(args.to) if args.to else None
    found = read_messages(Path(args.data_dir), to)
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not found:
        where = Path(args.data_dir) / MESSAGES_FILE
        print(f"no messages{f' to {args.to}' if args.to else ''} in {where}", file=sys.stderr)
        return EXIT_OK
    for message in found:
        print(f"{message.get('time')}  {message.get('to')}  {message.get('kind')}")
        print(f"  {message.get('text')}")
    return EXIT_OK


LOCAL_COMMANDS = {"dev messages": messages}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `dev` subcommands to swctl's parser."""
    sub = command(
        group,
        "messages",
        "dev messages",
        "show the messages (SMS) the embedded platform's notifier received, newest last",
    )
    sub.add_argument("--to", metavar="NUMBER", help="only those sent to this mobile number")
    sub.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="the embedded platform's data directory"
    )
