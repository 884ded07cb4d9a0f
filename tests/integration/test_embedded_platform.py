"""`swctl up`: the embedded platform starts, reports itself, stops cleanly, and keeps its data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.identifiers import application
from tests.support.platform import free_port
from tests.support.swctl import Swctl


def start_up(data_dir: Path, nats_port: int, port_base: int) -> subprocess.Popen[bytes]:
    with (data_dir.parent / "up.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "singlewindow.swctl",
                "up",
                "--data-dir",
                str(data_dir),
                "--nats-port",
                str(nats_port),
                "--http-port-base",
                str(port_base),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )


def wait_ready(swctl: Swctl, data_dir: Path, within: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = swctl("status", "--data-dir", str(data_dir), "--json")
        if status.code == 0:
            report: dict[str, object] = status.json()
            return report
        time.sleep(0.2)
    raise AssertionError(f"platform not ready: {status.stdout} {status.stderr}")


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=60)


def test_up_reports_status_stops_on_ctrl_c_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    nats_port, port_base = free_port(), 20000 + free_port() % 20000
    swctl = Swctl(f"nats://127.0.0.1:{nats_port}", tmp_path / "swctl")
    (tmp_path / "application.json").write_text(json.dumps(application(), ensure_ascii=False))

    first = start_up(data_dir, nats_port, port_base)
    try:
        report = wait_ready(swctl, data_dir)
        assert report["nats_url"] == f"nats://127.0.0.1:{nats_port}"
        services = report["services"]
        assert isinstance(services, dict)
        assert {"registration", "review", "accounts"} <= set(services)
        submitted = swctl(
            "register", "cardless", "--file", str(tmp_path / "application.json"), "--json"
        )
        assert submitted.code == 0, submitted.stderr
        application_id = submitted.json()["application_id"]
    finally:
        assert stop(first) == 0
    output = (tmp_path / "up.log").read_text()
    assert "Next, try:" in output
    assert "Stopped." in output
    assert swctl("status", "--data-dir", str(data_dir)).code == 3
    assert swctl("registration", "show", application_id).code == 3  # nothing answers now

    second = start_up(data_dir, nats_port, port_base)
    try:
        wait_ready(swctl, data_dir)
        shown = swctl("registration", "show", application_id, "--json")
        assert shown.code == 0, shown.stderr
        assert shown.json()["state"] == "pending"
    finally:
        assert stop(second) == 0
