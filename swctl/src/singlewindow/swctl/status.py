"""`swctl status`: how the platform is doing, found from any working directory.

The embedded platform (`swctl up`) leaves a state file in its data directory (`--data-dir`, or
$SW_DATA_DIR, or `var` under the working directory): its HTTP ports, databases and logs. Where
there is none, or it names another NATS server than the one asked for (`--nats-url` or
$SW_NATS_URL), swctl asks that NATS server instead: whether it answers with JetStream, and
whether each service answers a request there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from singlewindow.contracts.endpoints import Endpoint
from singlewindow.swctl.errors import EXIT_OK, EXIT_UNREACHABLE

if TYPE_CHECKING:
    from singlewindow.swctl.client import Credentials


def service_endpoints() -> dict[str, Endpoint[Any, Any]]:
    """An endpoint of each service: it answers an empty body with a `malformed` error at once."""
    from singlewindow.contracts import accounts, card_gateway, filing, registration, review

    return {
        "registration": registration.SHOW_APPLICATION,
        "review": review.SHOW_TASK,
        "accounts": accounts.SHOW_SESSION,
        "card-gateway": card_gateway.LIST_READERS,
        "filing": filing.FILING_FORM,
    }


def status(args: argparse.Namespace) -> int:
    """Print the status; exit 0 when NATS and every service are ready, 3 otherwise."""
    from singlewindow.swctl.up import collect_status, print_status

    data_dir = Path(args.data_dir).resolve()
    report = collect_status(data_dir)
    other_url = args.nats_url_given and report["nats_url"] != args.nats_url
    if report["running"] and not other_url:
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_status(report)
    else:
        note = (
            f"{data_dir} holds the state of the platform at {report['nats_url']}, not this one"
            if report["running"]
            else f"no embedded platform state in {data_dir}"
        )
        report = asyncio.run(ask_nats(args, min(args.timeout, 2.0))) | {
            "note": note,
            "credentials": report["credentials"],
        }
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_nats_status(report)
    healthy = (
        report["running"]
        and report["nats"] == "ready"
        and all(s["state"] == "ready" for s in report["services"].values())
    )
    return EXIT_OK if healthy else EXIT_UNREACHABLE


async def ask_nats(args: argparse.Namespace, reply_seconds: float) -> dict[str, Any]:
    """NATS at `--nats-url` and each service behind it, as a client sees them."""
    from nats.errors import Error as NatsError
    from nats.errors import NoRespondersError
    from singlewindow.swctl.client import (
        OPERATOR,
        Client,
        Credentials,
        Unreachable,
        nats_ca,
        user_for,
    )

    url = args.nats_url
    credentials = Credentials.of(args)
    client = Client(url, reply_seconds, credentials, ca_file=nats_ca(args))
    report: dict[str, Any] = {"running": False, "data_dir": None, "nats_url": url}
    try:
        await client.connect()
    except Unreachable as exc:
        return report | {"nats": "down", "detail": str(exc), "services": {}}
    try:
        nats_state = "ready"
        if credentials.explicit is None and credentials.path(OPERATOR).exists():
            # Only the operator may ask JetStream about the account; others take it on trust.
            try:
                operator = await client.connect(OPERATOR)
                await operator.jetstream(timeout=reply_seconds).account_info()
            except (NatsError, TimeoutError, Unreachable):
                nats_state = "no JetStream"

        async def service_state(endpoint: Endpoint[Any, Any]) -> str:
            try:
                connection = await client.connect(user_for(endpoint))
                await connection.request(endpoint.subject, b"", timeout=reply_seconds)
            except Unreachable:
                return "not answering"
            except NoRespondersError:
                return "down"
            except (NatsError, TimeoutError):
                return "not answering"
            return "ready"

        subjects = service_endpoints()
        if not may_use_card_readers(credentials):
            # One credential given, not the workstation's: card-gateway would refuse it anyway.
            subjects.pop("card-gateway")
        states = await asyncio.gather(*map(service_state, subjects.values()))
    finally:
        await client.close()
    services = {
        name: {"state": state}
        for name, state in zip(subjects, states, strict=True)
        # card-gateway runs only where card readers are: absent is not a fault.
        if not (name == "card-gateway" and state == "down")
    }
    return report | {"running": True, "nats": nats_state, "services": services}


def may_use_card_readers(credentials: Credentials) -> bool:
    """Whether swctl has the workstation's credential (its own file, or the one given is it)."""
    from singlewindow.swctl.client import WORKSTATION, Credential, CredentialsError

    if credentials.explicit is None:
        return True
    try:
        return bool(Credential.load(credentials.explicit).user == WORKSTATION)
    except CredentialsError:
        return True


def print_nats_status(report: dict[str, Any]) -> None:
    """The status learnt over NATS, as a table."""
    print(f"NATS  {report['nats_url']}  {report['nats']}")
    if not report["running"]:
        print(f"{report['detail']}; start the platform with `make up`")
        print(f"({report['note']})")
        return
    rows = [("SERVICE", "STATE")] + [(name, s["state"]) for name, s in report["services"].items()]
    width = max(len(name) for name, _ in rows)
    for name, state in rows:
        print(f"{name.ljust(width)}  {state}")
    print(f"({report['note']}; `--data-dir` names it, for HTTP ports and databases)")
