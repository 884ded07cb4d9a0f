"""`swctl card ...`: virtual E-Port cards (issue, revoke, insert, remove) and the card readers.

Issuing and the reader emulator are local: the development CA and the card files live under the
data directory (`<data-dir>/dev-ca`, `<data-dir>/cards/<number>.json`), as `swctl up` keeps them.
`swctl card readers` asks card-gateway over NATS, as every client of the platform does.
`swctl card bind|unbind|show` is My IC card: the card bound to the session's own account.

A card goes into the vpcd reader as a background process (`python -m
singlewindow.virtual_card.vpcd`), its output in `<data-dir>/cards/reader-<port>.log` and its pid
in `<data-dir>/cards/reader-<port>.json`; taking it out is stopping that process, which
`swctl up` also does for every card still in when it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from singlewindow.swctl.errors import EXIT_OK, EXIT_REFUSED, UsageError
from singlewindow.virtual_card.defaults import DEFAULT_PIN, DEFAULT_TRIES

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.swctl.client import Client
    from singlewindow.swctl.platform import PlatformConfig

# The card's cryptography, the platform and the contracts are imported by the commands that use
# them: swctl's parser imports this module, and `swctl --help` should not wait for them.


def _config(args: argparse.Namespace) -> PlatformConfig:
    from singlewindow.swctl.platform import PlatformConfig

    return PlatformConfig(data_dir=Path(args.data_dir).resolve())


def _refused(args: argparse.Namespace, message: str, code: str = "invalid") -> int:
    print(f"refused: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"error": {"code": code, "message": message, "fields": []}}))
    return EXIT_REFUSED


def _print(args: argparse.Namespace, document: dict[str, Any], plain: list[str]) -> None:
    if args.json:
        print(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        print("\n".join(plain))


def issue(args: argparse.Namespace) -> int:
    """`swctl card issue`: a new virtual card from the development CA."""
    from singlewindow.virtual_card.issuing import DevCA, IssuingError

    config = _config(args)
    if args.type == "operator" and args.level is None:
        raise UsageError("an operator card needs --level entry|declaration")
    if args.type == "legal-person" and args.level is not None:
        raise UsageError("--level is for operator cards only")
    try:
        ca = DevCA.open(config.dev_ca_dir)
        issued = ca.issue_card(
            config.cards_dir,
            card_type=args.type,
            operator_level=args.level,
            uscc=args.uscc,
            enterprise_name=args.enterprise_name,
            holder_name=args.holder_name,
            holder_id_number=args.holder_id,
            customs_code=args.customs_code,
            pin=args.pin,
            tries=args.tries,
            expired=args.expired,
        )
    except IssuingError as exc:
        return _refused(args, str(exc))
    data = issued.card.data
    document = {
        "card_number": issued.number,
        "card_file": str(issued.path),
        "card": {
            "card_number": data.card_number,
            "card_type": data.card_type,
            "operator_level": data.operator_level,
            "holder_name": data.holder_name,
            "holder_id_number": data.holder_id_number,
            "enterprise_uscc": data.enterprise_uscc,
            "enterprise_name": data.enterprise_name,
            "organisation_code": data.organisation_code,
            "customs_code": data.customs_code,
        },
        "certificate_pem": issued.certificate_pem,
        "serial_number": f"{issued.serial_number:x}",
        "not_before": issued.not_before.isoformat(),
        "not_after": issued.not_after.isoformat(),
        "pin_tries": issued.card.pin.tries_max,
    }
    kind = data.card_type + (f" ({data.operator_level})" if data.operator_level else "")
    _print(
        args,
        document,
        [
            f"card number:       {issued.number}",
            f"card file:         {issued.path}",
            f"card type:         {kind}",
            f"holder:            {data.holder_name} ({data.holder_id_number})",
            f"enterprise:        {data.enterprise_name} (USCC {data.enterprise_uscc})",
            f"organisation code: {data.organisation_code}",
            f"customs code:      {data.customs_code or '-'}",
            f"certificate:       serial {issued.serial_number:x}, valid "
            f"{issued.not_before:%Y-%m-%d} to {issued.not_after:%Y-%m-%d}",
            f"PIN:               {'as given' if args.pin != DEFAULT_PIN else DEFAULT_PIN}, "
            f"{issued.card.pin.tries_max} tries",
            "",
            issued.certificate_pem.rstrip(),
            "",
            f"Put it in the reader: swctl card insert {issued.number}",
        ],
    )
    return EXIT_OK


def show_ca(args: argparse.Namespace) -> int:
    """`swctl card ca`: the development CA certificate (PEM), the platform's trust anchor."""
    from singlewindow.virtual_card.issuing import DevCA, IssuingError

    try:
        ca = DevCA.open(_config(args).dev_ca_dir)
    except IssuingError as exc:
        return _refused(args, str(exc))
    if args.json:
        _print(
            args,
            {
                "certificate_pem": ca.certificate_pem,
                "certificate_file": str(ca.certificate_path),
                "crl_file": str(ca.crl_path),
            },
            [],
        )
    else:
        print(ca.certificate_pem, end="")
    return EXIT_OK


def revoke(args: argparse.Namespace) -> int:
    """`swctl card revoke CARD`: put a card's certificate on the CRL."""
    from singlewindow.virtual_card.issuing import DevCA, IssuingError

    try:
        ca = DevCA.open(_config(args).dev_ca_dir)
        revocation = ca.revoke(args.card)
    except IssuingError as exc:
        return _refused(args, str(exc), "not_found")
    _print(
        args,
        {
            "card_number": revocation.card_number,
            "serial_number": f"{revocation.serial_number:x}",
            "revoked_at": revocation.revoked_at.isoformat(),
            "crl_file": str(ca.crl_path),
        },
        [
            f"revoked card {revocation.card_number} (serial {revocation.serial_number:x}) "
            f"at {revocation.revoked_at.isoformat()}",
            f"CRL: {ca.crl_path}",
        ],
    )
    return EXIT_OK


def _default_reader_port(config: PlatformConfig) -> int:
    """The running platform's vpcd port, else $SW_VPCD_PORT, else Debian's 35963."""
    from singlewindow.virtual_card.pcscd import DEFAULT_VPCD_PORT

    try:
        state = json.loads(config.state_file.read_text())
        port: int = state["cards"]["pcscd"]["vpcd_port"]
        return port
    except (OSError, ValueError, KeyError, TypeError):
        return int(os.environ.get("SW_VPCD_PORT", DEFAULT_VPCD_PORT))


def _slot_files(config: PlatformConfig, port: int) -> tuple[Path, Path]:
    return config.cards_dir / f"reader-{port}.json", config.cards_dir / f"reader-{port}.log"


def insert(args: argparse.Namespace) -> int:
    """`swctl card insert CARD`: put a virtual card into the vpcd reader (replacing one that is
    there) until `swctl card remove`."""
    from singlewindow.swctl.platform import EMULATOR_MODULE, take_out_card

    config = _config(args)
    port = args.reader_port or _default_reader_port(config)
    if args.not_eport:
        if args.card is not None:
            raise UsageError("give a CARD or --not-eport, not both")
        card_args, label = ["--not-eport"], "a card that is not an E-Port card"
        card_number = None
    else:
        if args.card is None:
            raise UsageError("which card? give its number or card file")
        path = Path(args.card)
        if path.suffix != ".json":
            path = config.cards_dir / f"{args.card}.json"
        if not path.exists():
            return _refused(args, f"no card file {path}; issue one with `swctl card issue`")
        card_args, label = ["--card", str(path.resolve())], f"card {path.stem}"
        card_number = path.stem
    config.cards_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state_file, log_path = _slot_files(config, port)
    take_out_card(state_file)
    with log_path.open("ab") as log:
        start = log.tell()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                EMULATOR_MODULE,
                *card_args,
                "--port",
                str(port),
                "--connect-timeout",
                str(args.timeout),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    inserted = {
        "pid": process.pid,
        "card_number": card_number,
        "reader_port": port,
        "log": str(log_path),
    }
    state_file.write_text(json.dumps(inserted))
    if not _wait_inserted(process, log_path, start, args.timeout + 5):
        state_file.unlink(missing_ok=True)
        if process.poll() is None:
            process.kill()
        process.wait()
        tail = log_path.read_bytes()[start:].decode(errors="replace").strip().splitlines()[-1:]
        return _refused(
            args,
            f"the card did not go into the reader on port {port}: "
            f"{tail[0] if tail else 'no answer'}; is the platform running (make up)?",
            "unavailable",
        )
    _print(args, inserted, [f"inserted {label} into the reader on port {port}"])
    return EXIT_OK


def _wait_inserted(
    process: subprocess.Popen[bytes], log_path: Path, start: int, timeout: float
) -> bool:
    from singlewindow.virtual_card.vpcd import CARD_SEEN

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Connected is not enough: pcscd polls the reader, and clients see the card only once
        # pcscd has noticed it and read its ATR.
        if CARD_SEEN.encode() in log_path.read_bytes()[start:]:
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def remove(args: argparse.Namespace) -> int:
    """`swctl card remove`: take the virtual card out of the reader."""
    from singlewindow.swctl.platform import take_out_card

    config = _config(args)
    port = args.reader_port or _default_reader_port(config)
    state_file, _ = _slot_files(config, port)
    inserted = take_out_card(state_file)
    if inserted is None:
        _print(
            args,
            {"removed": None, "reader_port": port},
            [f"no card was in the reader on port {port}"],
        )
    else:
        what = inserted.get("card_number") or "the card"
        _print(
            args,
            {"removed": inserted.get("card_number"), "reader_port": port},
            [f"removed {what} from the reader on port {port}"],
        )
    return EXIT_OK


async def readers(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl card readers`: card-gateway's readers and what is in them."""
    from singlewindow.contracts import card_gateway

    return await client.call(card_gateway.LIST_READERS, {})


LOCAL_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "card issue": issue,
    "card ca": show_ca,
    "card revoke": revoke,
    "card insert": insert,
    "card remove": remove,
}
COMMANDS = {"card readers": readers}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `card` subcommands to swctl's parser."""

    def data_dir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--data-dir",
            # swctl's own --data-dir (before the command) holds the default.
            default=argparse.SUPPRESS,
            help="the embedded platform's data directory, with dev-ca/ and cards/ (env SW_DATA_DIR)",
        )
        return sub

    sub = data_dir(command(group, "issue", "card issue", "issue a virtual E-Port card"))
    sub.add_argument("--type", required=True, choices=["legal-person", "operator"])
    sub.add_argument("--level", choices=["entry", "declaration"], help="an operator card's level")
    sub.add_argument("--uscc", required=True, help="the enterprise's USCC")
    sub.add_argument("--enterprise-name", required=True)
    sub.add_argument("--holder-name", required=True)
    sub.add_argument("--holder-id", required=True, help="the holder's resident ID number")
    sub.add_argument("--customs-code", help="the enterprise's 10-character customs code, if filed")
    sub.add_argument("--pin", default=DEFAULT_PIN, help="8 digits (default %(default)s)")
    sub.add_argument(
        "--tries", type=int, default=DEFAULT_TRIES, help="PIN tries (default %(default)s)"
    )
    sub.add_argument(
        "--expired", action="store_true", help="a certificate that has already expired (tests)"
    )
    data_dir(command(group, "ca", "card ca", "print the development CA certificate (PEM)"))
    sub = data_dir(command(group, "revoke", "card revoke", "revoke a card's certificate"))
    sub.add_argument("card", metavar="CARD", help="card number or certificate serial (hex)")
    for name, help_text in (
        ("insert", "put a virtual card into the reader"),
        ("remove", "take the virtual card out of the reader"),
    ):
        sub = data_dir(command(group, name, f"card {name}", help_text))
        if name == "insert":
            sub.add_argument("card", metavar="CARD", nargs="?", help="card number or card file")
            sub.add_argument(
                "--not-eport", action="store_true", help="insert a card that is not an E-Port card"
            )
        sub.add_argument(
            "--reader-port",
            type=int,
            default=None,
            help="the vpcd reader's port (default: the running platform's, else 35963)",
        )
    command(group, "readers", "card readers", "list card readers and what is in them")
    _register_my_card(group, command)


# --- My IC card (issue 9) ---


def _session_token() -> str:
    from singlewindow.contracts.errors import DomainError, ErrorCode
    from singlewindow.swctl.client import load_token

    token = load_token()
    if token is None:
        raise DomainError(
            ErrorCode.UNAUTHENTICATED, "not logged in; run `swctl login --account NAME`"
        )
    return token


async def bind(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl card bind`: the card in the reader signs a challenge and is bound to the account."""
    from singlewindow.swctl import cardflows

    token = _session_token()
    # With --json, stdout holds the one result document: the card's data and prompts go to stderr.
    out = sys.stderr if args.json else sys.stdout
    pin = cardflows.pin_from_stdin() if args.pin_stdin else cardflows.pin_from_terminal(out)
    flows = cardflows.Flows(
        client, reader=args.reader, pin=pin, out=out, last_try=args.last_pin_try
    )
    return await flows.bind(token)


async def unbind(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl card unbind`: end the binding (current password required) and the card's sessions."""
    from singlewindow.contracts import accounts
    from singlewindow.contracts.accounts import CardUnbound
    from singlewindow.swctl.client import forget_session

    token = _session_token()
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: stdin ended before the current password")
        password = line.rstrip("\r\n")
    else:
        import getpass

        try:
            password = getpass.getpass("current password: ")
        except EOFError as exc:
            raise UsageError("no password given (stdin ended); --password-stdin reads it") from exc
    unbound: CardUnbound = await client.call(
        accounts.CARD_UNBIND, {"token": token, "current_password": password}
    )
    if unbound.this_session_ended:
        forget_session()
    return unbound


async def show(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl card show`: the card bound to the account, or that none is."""
    from singlewindow.contracts import accounts

    return await client.call(accounts.CARD_SHOW, {"token": _session_token()})


def print_binding(found: Any, args: argparse.Namespace) -> None:
    """The account's card in a few lines, or "no card bound"."""
    binding = found.binding
    if binding is None:
        print(f"no card bound to {found.account}; bind one with `swctl card bind`")
        return
    level = f" ({binding.operator_level.value})" if binding.operator_level else ""

    def day(moment: Any) -> str:
        return "unknown" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"

    print(
        "\n".join(
            [
                f"account:      {binding.account}",
                f"card number:  {binding.card_number}",
                f"card type:    {binding.card_type.value}{level}",
                f"bound at:     {day(binding.bound_at)}",
                f"certificate:  serial {binding.certificate_serial}, valid "
                f"{day(binding.certificate_not_before)} to {day(binding.certificate_not_after)}",
            ]
        )
    )


def print_bound(binding: Any, args: argparse.Namespace) -> None:
    """What a bind did, and what the card now does."""
    print(
        f"bound card {binding.card_number} ({binding.card_type.value}) to {binding.account}; "
        "it now logs in with `swctl login --card`"
    )


def print_unbound(unbound: Any, args: argparse.Namespace) -> None:
    """What an unbind ended."""
    ended = unbound.sessions_ended
    line = (
        f"unbound card {unbound.card_number} from {unbound.account}; "
        f"{ended} card session{'' if ended == 1 else 's'} ended"
    )
    if unbound.this_session_ended:
        line += " (this one too: log in again)"
    print(line)


COMMANDS.update({"card bind": bind, "card unbind": unbind, "card show": show})
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    "card bind": print_bound,
    "card unbind": print_unbound,
    "card show": print_binding,
}
"""The My IC card commands' readable output (main.py's PLAIN takes these)."""


def _register_my_card(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    sub = command(
        group, "bind", "card bind", "bind the card in the reader to your account (My IC card)"
    )
    sub.add_argument("--reader", help="the card reader (default: the only one with a card)")
    sub.add_argument("--pin-stdin", action="store_true", help="read the card PIN from stdin")
    sub.add_argument(
        "--last-pin-try",
        action="store_true",
        help="use the card's last PIN try (a wrong PIN then blocks the card)",
    )
    sub = command(
        group,
        "unbind",
        "card unbind",
        "unbind your account's card (your current password); its sessions end",
    )
    sub.add_argument(
        "--password-stdin", action="store_true", help="read the current password from stdin"
    )
    command(group, "show", "card show", "show the card bound to your account")
