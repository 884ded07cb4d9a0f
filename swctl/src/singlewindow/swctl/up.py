"""`swctl up` and `swctl status`: run the embedded platform and say how it is doing."""

from __future__ import annotations

import argparse
import json
import math
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
    GATEWAY,
    SERVICES,
    Interrupted,
    Platform,
    PlatformConfig,
    alive,
    credential_files,
    describe_exit,
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
  uv run swctl staff login && uv run swctl staff password   # admin's one-time password, changed
  uv run swctl staff add li-reviewer --role reviewer       # then log in as li-reviewer (README)
  uv run swctl review list
  uv run swctl review claim TASK && uv run swctl review approve TASK
  uv run swctl login --account cq_trade_admin
  uv run swctl scope options && uv run swctl scope set import_export_consignee
  uv run swctl filing form && uv run swctl filing submit --file examples/filing.json
  uv run swctl events tail --from-start
  uv run swctl mobile change 13800138000 && uv run swctl dev messages   # then mobile verify CODE
  uv run swctl card issue --type legal-person --uscc USCC --enterprise-name NAME \
      --holder-name NAME --holder-id ID      # a virtual E-Port card (PIN 88888888)
  uv run swctl card insert CARD && uv run swctl card readers
Ctrl-C stops everything, the cards in the reader too; the data stays in {data_dir} for the next
`make up`."""

SUPERVISE_SECONDS = 0.5


def up(args: argparse.Namespace) -> int:
    """Start the embedded platform, print its status, keep its processes running (one that dies
    starts again after a growing delay), and stop it all on Ctrl-C or SIGTERM."""
    data_dir = Path(args.data_dir).resolve()
    ports = {name: args.http_port_base + offset for name, offset in SERVICE_PORT_OFFSETS.items()}
    ports[GATEWAY] = args.http_port  # the gateway starts last: every service is up by then
    platform = Platform(
        PlatformConfig(
            data_dir=data_dir,
            nats_port=args.nats_port,
            nats_monitor_port=args.nats_port + 4000,
            service_ports=ports,
            cards=True,
            pcscd_mode=args.pcscd,
            vpcd_port=args.vpcd_port,
        )
    )

    def request_stop(signum: int, frame: FrameType | None) -> None:
        platform.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"Starting the Single Window platform (data in {data_dir}) ...", flush=True)
    try:
        try:
            platform.start()
        except Interrupted:
            return 0
        # ValueError: a development CA that cannot be read (IssuingError).
        except (RuntimeError, TimeoutError, FileNotFoundError, ValueError) as exc:
            print(f"swctl up: {exc}", file=sys.stderr)
            return 1
        if platform.pcscd_note:
            print(platform.pcscd_note, flush=True)
        print_status(collect_status(data_dir))
        print(NEXT_STEPS.format(data_dir=data_dir), flush=True)
        while not platform.stop_requested:
            for news in platform.supervise():
                print(news, file=sys.stderr, flush=True)
            time.sleep(SUPERVISE_SECONDS)
        return 0
    finally:
        print("Stopping ...", flush=True)
        platform.stop()
        print("Stopped.", flush=True)


def supervision(info: dict[str, Any], now: float) -> dict[str, Any]:
    """How a process has fared under `swctl up`: restarts, last exit, when it starts again."""
    last_exit = info.get("last_exit")
    restart_at = info.get("restart_at")
    return {
        "restarts": info.get("restarts", 0),
        "last_exit": describe_exit(last_exit) if last_exit is not None else None,
        "restarting_in": None if restart_at is None else max(0, math.ceil(restart_at - now)),
    }


def collect_status(data_dir: Path) -> dict[str, Any]:
    """What runs, where, whether it is ready, and how often it had to be started again."""
    state_file = PlatformConfig(data_dir=data_dir).state_file
    try:
        state: dict[str, Any] = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return {
            "running": False,
            "data_dir": str(data_dir),
            "nats_url": None,
            "services": {},
            "credentials": credential_files(data_dir),
        }
    now = time.time()
    nats_ok = http_ok(f"http://127.0.0.1:{state['nats_monitor_port']}/healthz?js-enabled-only=true")
    services = {}
    for name, info in state["services"].items():
        ready = http_json(f"http://127.0.0.1:{info['port']}/readyz")
        supervised = supervision(info, now)
        if supervised["restarting_in"] is not None:
            service_state = "restarting"
        elif ready and ready.get("status") == "ready":
            service_state = "ready"
        else:
            running = info["pid"] is not None and alive(info["pid"])
            service_state = "starting" if ready or running else "down"
        services[name] = {
            "state": service_state,
            "http": f"http://127.0.0.1:{info['port']}",
            "pid": info["pid"],
            "database": info["database"],
            "log": info["log"],
        } | supervised
    report = {
        "running": True,
        "data_dir": state["data_dir"],
        "nats_url": state["nats_url"],
        "nats": "ready" if nats_ok else "down",
        "nats_supervision": supervision(state.get("nats_supervision", {}), now),
        "services": services,
        "credentials": credential_files(Path(state["data_dir"])),
    }
    if "notifier" in state:
        notifier = state["notifier"]
        supervised = supervision(notifier, now)
        running = notifier["pid"] is not None and alive(notifier["pid"])
        report["notifier"] = {
            "state": "restarting"
            if supervised["restarting_in"] is not None
            else "running"
            if running
            else "down",
            "pid": notifier["pid"],
            "log": notifier["log"],
            "messages": notifier["messages"],
        } | supervised
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
    nats = report.get("nats_supervision") or {}
    nats_restarts = (
        f"  {nats['restarts']} restarts, last exit {nats['last_exit']}"
        if nats.get("last_exit")
        else ""
    )
    print(f"NATS  {report['nats_url']}  {report['nats']}{nats_restarts}")
    rows = [("SERVICE", "STATE", "RESTARTS", "LAST EXIT", "HTTP", "DATABASE")]
    rows += [
        (
            name,
            f"restarting in {s['restarting_in']}s" if s["state"] == "restarting" else s["state"],
            str(s.get("restarts", 0)),
            s.get("last_exit") or "-",
            s["http"],
            s["database"],
        )
        for name, s in report["services"].items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if notifier := report.get("notifier"):
        print(f"NOTIFIER  {notifier['state']}  messages in {notifier['messages']}")
    credentials = report.get("credentials") or {}
    if "portal" in credentials:
        print(f"CREDENTIALS  {Path(credentials['portal']).parent} (one JSON file per NATS user)")
    if "cards" in report:
        print_cards(report["cards"])


def print_cards(cards: dict[str, Any]) -> None:
    """pcscd, the virtual reader and what card-gateway sees in the readers."""
    pcscd = cards.get("pcscd")
    if cards.get("pcscd_note"):
        print(f"CARDS  {cards['pcscd_note']}")
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
