"""`swctl up` and `swctl status`: run the embedded platform and say how it is doing."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from singlewindow.swctl.platform import (
    CARD_GATEWAY,
    CARD_GATEWAY_PORT,
    DEFAULT_HTTP_PORT_BASE,
    SERVICES,
    Platform,
    PlatformConfig,
    http_json,
    http_ok,
)

SERVICE_PORT_OFFSETS = {
    name: port - DEFAULT_HTTP_PORT_BASE
    for name, port in (SERVICES | {CARD_GATEWAY: CARD_GATEWAY_PORT}).items()
}

NEXT_STEPS = """\
Next, try:
  uv run swctl register cardless --file examples/application.json
  uv run swctl review list
  uv run swctl review approve TASK
  uv run swctl login --account cq_trade_admin
  uv run swctl scope options && uv run swctl scope set import_export_consignee
  uv run swctl events tail --from-start
  uv run swctl card issue --type legal-person --uscc USCC --enterprise-name NAME \
      --holder-name NAME --holder-id ID      # a virtual E-Port card (PIN 88888888)
  uv run swctl card insert CARD && uv run swctl card readers
Ctrl-C stops everything; the data stays in {data_dir} for the next `make up`."""


def up(args: argparse.Namespace) -> int:
    """Start the embedded platform, print its status, and stop it cleanly on Ctrl-C or SIGTERM."""
    data_dir = Path(args.data_dir).resolve()
    ports = {name: args.http_port_base + offset for name, offset in SERVICE_PORT_OFFSETS.items()}
    platform = Platform(
        PlatformConfig(
            data_dir=data_dir,
            nats_port=args.nats_port,
            nats_monitor_port=args.nats_port + 4000,
            service_ports=ports,
            cards=True,
        )
    )
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"Starting the Single Window platform (data in {data_dir}) ...", flush=True)
    try:
        platform.start()
    # ValueError: a development CA that cannot be read (IssuingError).
    except (RuntimeError, TimeoutError, FileNotFoundError, ValueError) as exc:
        print(f"swctl up: {exc}", file=sys.stderr)
        platform.stop()
        return 1
    report = collect_status(data_dir)
    print_status(report)
    print(NEXT_STEPS.format(data_dir=data_dir), flush=True)
    try:
        while not stopping:
            exited = platform.exited()
            if exited:
                for name, code in exited.items():
                    print(
                        f"{name} exited with code {code}; see {platform.log_path(name)}",
                        file=sys.stderr,
                    )
                break
            time.sleep(0.5)
    finally:
        print("Stopping ...", flush=True)
        platform.stop()
        print("Stopped.", flush=True)
    return 0 if stopping else 1


def collect_status(data_dir: Path) -> dict[str, Any]:
    """What runs, where, and whether it is ready."""
    state_file = PlatformConfig(data_dir=data_dir).state_file
    try:
        state: dict[str, Any] = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return {"running": False, "data_dir": str(data_dir), "nats_url": None, "services": {}}
    nats_ok = http_ok(f"http://127.0.0.1:{state['nats_monitor_port']}/healthz?js-enabled-only=true")
    services = {}
    for name, info in state["services"].items():
        ready = http_json(f"http://127.0.0.1:{info['port']}/readyz")
        services[name] = {
            "state": "ready"
            if ready and ready.get("status") == "ready"
            else ("starting" if ready else "down"),
            "http": f"http://127.0.0.1:{info['port']}",
            "pid": info["pid"],
            "database": info["database"],
            "log": info["log"],
        }
    report = {
        "running": True,
        "data_dir": state["data_dir"],
        "nats_url": state["nats_url"],
        "nats": "ready" if nats_ok else "down",
        "services": services,
    }
    if "cards" in state:
        gateway = state["services"].get(CARD_GATEWAY)
        ready = http_json(f"http://127.0.0.1:{gateway['port']}/readyz") if gateway else None
        report["cards"] = state["cards"] | {"pcsc": ready.get("pcsc") if ready else None}
    return report


def print_status(report: dict[str, Any]) -> None:
    """The status as a table."""
    if not report["running"]:
        print(
            f"The platform is not running (no state in {report['data_dir']}); start it with `make up`."
        )
        return
    print(f"NATS  {report['nats_url']}  {report['nats']}")
    rows = [("SERVICE", "STATE", "HTTP", "DATABASE")]
    rows += [(name, s["state"], s["http"], s["database"]) for name, s in report["services"].items()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if "cards" in report:
        print_cards(report["cards"])


def print_cards(cards: dict[str, Any]) -> None:
    """pcscd, the virtual reader and what card-gateway sees in the readers."""
    pcscd = cards.get("pcscd")
    if pcscd is None:
        print(f"CARDS  no virtual card reader: {cards.get('pcscd_problem') or 'pcscd not started'}")
    elif pcscd["pid"] is None or not Path(f"/proc/{pcscd['pid']}").exists():
        print("CARDS  pcscd is not running any more: card-gateway has no reader")
    else:
        print(
            f"CARDS  pcscd ({pcscd['mode']}, pid {pcscd['pid']}); a virtual card goes in with "
            f"`swctl card insert CARD` (vpcd port {pcscd['vpcd_port']})"
        )
    pcsc = cards.get("pcsc")
    if pcsc is None:
        print("       card-gateway does not answer")
    elif pcsc["state"] != "available":
        print(f"       card-gateway: {pcsc.get('detail') or pcsc['state']}")
    for reader in pcsc["readers"] if pcsc else []:
        print(f"       reader {reader['name']}: {'card in' if reader['card_present'] else 'empty'}")


def status(args: argparse.Namespace) -> int:
    """`swctl status`: exit 0 when everything is ready, 3 otherwise."""
    report = collect_status(Path(args.data_dir).resolve())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report)
    healthy = (
        report["running"]
        and report["nats"] == "ready"
        and all(s["state"] == "ready" for s in report["services"].values())
    )
    return 0 if healthy else 3
