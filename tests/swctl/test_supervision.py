"""The embedded platform keeps its processes running: restart delays, what status shows, and
what stopping takes down. Processes here are tiny Python ones; the clock is moved, not waited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from singlewindow.swctl.platform import (
    Platform,
    PlatformConfig,
    RestartPolicy,
    Supervision,
    alive,
)
from singlewindow.swctl.up import print_status
from singlewindow.virtual_card.issuing import DevCA

from tests.support.identifiers import make_uscc
from tests.support.platform import free_port

DIES = [sys.executable, "-c", "raise SystemExit(3)"]


class Clock:
    """Wall-clock time that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def wait_dead(platform: Platform, name: str) -> None:
    process = platform.processes[name]
    process.wait(timeout=30)


def test_the_delay_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(first_delay=1, max_delay=10)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_a_process_that_stayed_up_a_while_starts_over_at_the_first_delay() -> None:
    policy = RestartPolicy(first_delay=1, max_delay=30, stable_after=60)
    watch = Supervision(DIES, {}, started_at=0)
    assert [watch.died(1, now, policy) for now in (1, 2, 3)] == [1, 2, 4]
    watch.started_at = 3
    assert watch.died(-9, 3 + 60, policy) == 1
    assert watch.last_exit == -9


def test_a_dead_process_starts_again_after_its_delay_and_the_state_file_says_so(
    tmp_path: Path,
) -> None:
    clock = Clock()
    platform = Platform(PlatformConfig(data_dir=tmp_path), clock=clock)
    try:
        platform.spawn("worker", DIES, dict(os.environ))
        for restarts, delay in ((0, 1), (1, 2), (2, 4)):
            wait_dead(platform, "worker")
            [news] = platform.supervise()
            assert news.startswith("worker exited (code 3;")
            assert news.endswith(f"restarting in {delay}s")
            state = json.loads(platform.config.state_file.read_text())["nats_supervision"]
            assert "worker" not in platform.processes
            assert platform.supervision["worker"].state() == {
                "restarts": restarts,
                "last_exit": 3,
                "restart_at": clock.now + delay,
            }
            assert state["restarts"] == 0  # nats-server is not what died
            clock.now += delay - 0.5
            assert platform.supervise() == []
            clock.now += 0.5
            assert platform.supervise() == [f"worker started again (restart {restarts + 1})"]
        clock.now += 60  # up long enough: the next death waits the first delay again
        wait_dead(platform, "worker")
        assert platform.supervise()[0].endswith("restarting in 1s")
    finally:
        platform.stop()


def test_a_process_stopped_on_purpose_is_not_started_again(tmp_path: Path) -> None:
    clock = Clock()
    platform = Platform(PlatformConfig(data_dir=tmp_path), clock=clock)
    platform.spawn("worker", [sys.executable, "-c", "import time; time.sleep(60)"], {})
    platform.stop_process("worker")
    clock.now += 3600
    assert platform.supervise() == []
    assert platform.processes == {}


def test_stopping_the_platform_takes_out_the_cards_swctl_put_in(tmp_path: Path) -> None:
    config = PlatformConfig(data_dir=tmp_path, cards=True)
    issued = DevCA.open(config.dev_ca_dir).issue_card(
        config.cards_dir,
        card_type="legal-person",
        uscc=make_uscc(),
        enterprise_name="某公司",
        holder_name="王五",
        holder_id_number="11010519491231002X",
    )
    port = free_port()
    # A card waiting for a reader that never comes, as `swctl card insert` records it.
    command = [
        sys.executable, "-m", "singlewindow.virtual_card.vpcd", "--card", str(issued.path),
        "--port", str(port), "--connect-timeout", "120", "--reconnect",
    ]  # fmt: skip
    card = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        (config.cards_dir / f"reader-{port}.json").write_text(json.dumps({"pid": card.pid}))
        deadline = time.monotonic() + 30
        while (
            b"singlewindow.virtual_card.vpcd" not in Path(f"/proc/{card.pid}/cmdline").read_bytes()
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        Platform(config).stop()
        card.wait(timeout=30)
        assert not alive(card.pid)
        assert list(config.cards_dir.glob("reader-*.json")) == []
    finally:
        if card.poll() is None:
            card.kill()
            card.wait()


def report(**review: Any) -> dict[str, Any]:
    service = {
        "state": "ready",
        "http": "http://127.0.0.1:8102",
        "database": "sqlite",
        "restarts": 0,
        "last_exit": None,
        "restarting_in": None,
    }
    return {
        "running": True,
        "data_dir": "var",
        "nats_url": "nats://127.0.0.1:4222",
        "nats": "ready",
        "nats_supervision": {"restarts": 0, "last_exit": None, "restarting_in": None},
        "services": {"registration": service, "review": service | review},
    }


def test_status_shows_restarts_last_exit_and_when_a_service_starts_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_status(
        report(state="restarting", restarts=2, last_exit="killed by SIGKILL", restarting_in=4)
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["SERVICE", "STATE", "RESTARTS", "LAST", "EXIT", "HTTP", "DATABASE"]
    review = next(line for line in lines if line.startswith("review"))
    assert "restarting in 4s  2 " in review
    assert "killed by SIGKILL" in review
    registration = next(line for line in lines if line.startswith("registration"))
    assert registration.split()[1:4] == ["ready", "0", "-"]
