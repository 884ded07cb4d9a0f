"""`swctl up`: the embedded platform starts, reports itself, keeps its processes running, stops
cleanly with everything it started, keeps its data, and shares its card reader with no other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from singlewindow.swctl.platform import alive

from tests.support.identifiers import application, make_uscc
from tests.support.platform import free_port
from tests.support.swctl import Swctl

T = TypeVar("T")

WITHIN = 60.0


def start_up(
    data_dir: Path, nats_port: int, port_base: int, *options: str
) -> subprocess.Popen[bytes]:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
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
                *options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )


def wait_ready(swctl: Swctl, data_dir: Path, within: float = 2 * WITHIN) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = swctl("status", "--data-dir", str(data_dir), "--json")
        # Before the platform writes its state, status asks NATS instead (and says so in a note).
        if status.code == 0 and "note" not in status.json():
            report: dict[str, Any] = status.json()
            return report
        time.sleep(0.2)
    raise AssertionError(f"platform not ready: {status.stdout} {status.stderr}")


def stop(process: subprocess.Popen[bytes], signum: int = signal.SIGINT) -> int:
    process.send_signal(signum)
    try:
        return process.wait(timeout=WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(WITHIN)
        raise


def until(probe: Callable[[], T | None], what: str, within: float = WITHIN) -> T:
    """The first thing `probe` returns that is not None, asked again until `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {within:.0f}s: {what}")


def processes_of(data_dir: Path) -> list[str]:
    """Every live process that belongs to the platform in `data_dir`: its data directory is in
    its command line (nats-server, pcscd, the virtual cards) or is where it runs (the services)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        here = str(data_dir) in command or Path(cwd).is_relative_to(data_dir)
        if here and alive(int(entry.name)):
            found.append(f"{entry.name}: {command}")
    return found


def started_pids(report: dict[str, Any], data_dir: Path) -> dict[str, int]:
    """The pids of what the platform runs, as `swctl status` and `swctl card insert` record them."""
    pids = {name: service["pid"] for name, service in report["services"].items()}
    state = json.loads((data_dir / "platform.json").read_text())
    pids["nats-server"] = state["nats_pid"]
    if state["cards"]["pcscd"] and state["cards"]["pcscd"]["mode"] == "private":
        pids["pcscd"] = state["cards"]["pcscd"]["pid"]
    for inserted in (data_dir / "cards").glob("reader-*.json"):
        pids[inserted.name] = json.loads(inserted.read_text())["pid"]
    return pids


def issue_and_insert(swctl: Swctl, data_dir: Path) -> str:
    """A new virtual card, put into the platform's first reader; its number."""
    where = ["--data-dir", str(data_dir)]
    issued = swctl(
        "card", "issue", "--type", "legal-person", "--uscc", make_uscc(),
        "--enterprise-name", "重庆某某贸易有限公司", "--holder-name", "王五",
        "--holder-id", "11010519491231002X", *where, "--json",
    )  # fmt: skip
    assert issued.code == 0, issued.stderr
    number: str = issued.json()["card_number"]
    inserted = swctl("card", "insert", number, *where)
    assert inserted.code == 0, inserted.stderr
    return number


def cards_in_readers(swctl: Swctl) -> dict[str, str | None]:
    listed = swctl("card", "readers", "--json")
    assert listed.code == 0, listed.stderr
    return {reader["name"]: reader["card_number"] for reader in listed.json()["readers"]}


def ports() -> tuple[int, int]:
    """A free NATS port, and a base for the services' ports below the kernel's ephemeral range
    (32768 up), where an outgoing connection could take one before the service binds it."""
    return free_port(), 20000 + free_port() % 12000


def test_up_reports_status_stops_on_ctrl_c_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    nats_port, port_base = ports()
    swctl = Swctl(f"nats://127.0.0.1:{nats_port}", tmp_path / "swctl", data_dir)
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


def test_a_killed_service_is_started_again_and_status_says_so(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    nats_port, port_base = ports()
    swctl = Swctl(f"nats://127.0.0.1:{nats_port}", tmp_path / "swctl", data_dir)
    up = start_up(data_dir, nats_port, port_base)
    try:
        killed = wait_ready(swctl, data_dir)["services"]["review"]["pid"]
        os.kill(killed, signal.SIGKILL)

        def restarted() -> dict[str, Any] | None:
            status = swctl("status", "--data-dir", str(data_dir), "--json")
            review = status.json()["services"]["review"]
            ready = review["state"] == "ready" and status.code == 0
            return review if ready and review["restarts"] == 1 else None

        review = until(restarted, "review started again and ready")
        assert review["pid"] != killed
        assert review["last_exit"] == "killed by SIGKILL"
        assert review["restarting_in"] is None
        table = swctl("status", "--data-dir", str(data_dir))
        assert table.code == 0, table.stdout
        assert "RESTARTS  LAST EXIT" in table.stdout
        row = next(line for line in table.stdout.splitlines() if line.startswith("review "))
        assert row.split()[1:3] == ["ready", "1"]
        assert "killed by SIGKILL" in row
        assert wait_ready(swctl, data_dir)["services"]["registration"]["restarts"] == 0
        # The platform went on: the new review answers (having asked accounts about the session).
        assert swctl("staff", "login", "--data-dir", str(data_dir)).code == 0
        listed = swctl("review", "list", "--json")
        assert listed.code == 1, listed.stderr
        assert listed.json()["error"]["code"] == "action_required"
    finally:
        assert stop(up, signal.SIGTERM) == 0
    log = (tmp_path / "up.log").read_text()
    assert "review exited (killed by SIGKILL" in log
    assert "review started again (restart 1)" in log
    assert processes_of(data_dir) == []


def test_ctrl_c_stops_everything_it_started_the_card_in_the_reader_too(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    nats_port, port_base = ports()
    swctl = Swctl(f"nats://127.0.0.1:{nats_port}", tmp_path / "swctl", data_dir)
    up = start_up(data_dir, nats_port, port_base)
    try:
        report = wait_ready(swctl, data_dir)
        issue_and_insert(swctl, data_dir)
        pids = started_pids(report, data_dir)
        assert {"nats-server", "card-gateway"} <= set(pids)
        assert any(name.startswith("reader-") for name in pids)
        assert [name for name, pid in pids.items() if not alive(pid)] == []
    finally:
        assert stop(up, signal.SIGINT) == 0
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert processes_of(data_dir) == []


def test_two_platforms_side_by_side_each_see_only_their_own_card(tmp_path: Path) -> None:
    platforms = []
    try:
        for name in ("first", "second"):
            data_dir = tmp_path / name / "var"
            nats_port, port_base = ports()
            up = start_up(data_dir, nats_port, port_base, "--pcscd", "private")
            swctl = Swctl(f"nats://127.0.0.1:{nats_port}", tmp_path / name / "swctl", data_dir)
            platforms.append((data_dir, up, swctl))
        reports = [wait_ready(swctl, data_dir) for data_dir, _, swctl in platforms]
        pcscds = [report["cards"]["pcscd"] for report in reports]
        assert None not in pcscds, [report["cards"].get("pcscd_problem") for report in reports]
        assert [pcscd["mode"] for pcscd in pcscds] == ["private", "private"]
        assert pcscds[0]["vpcd_port"] != pcscds[1]["vpcd_port"]

        numbers = [issue_and_insert(swctl, data_dir) for data_dir, _, swctl in platforms]
        for (_, _, swctl), number in zip(platforms, numbers, strict=True):
            assert cards_in_readers(swctl) == {
                "Virtual PCD 00 00": number,
                "Virtual PCD 00 01": None,
            }
    finally:
        # Stop every platform before judging any, so a failed stop leaves none running.
        codes: list[int | None] = []
        for _, up, _ in platforms:
            try:
                codes.append(stop(up))
            except subprocess.TimeoutExpired:
                codes.append(None)
        assert codes == [0] * len(platforms)
    for data_dir, _, _ in platforms:
        assert processes_of(data_dir) == []
