"""swctl against a running platform: status from anywhere, the review queue's pages, the tail."""

from __future__ import annotations

import json
from pathlib import Path

from singlewindow.contracts import review
from singlewindow.contracts.review import TaskList
from singlewindow.swctl.platform import Platform

from tests.integration.test_registration_rules import submit
from tests.support.identifiers import application
from tests.support.platform import Bus, eventually
from tests.support.staff import STAFF_PASSWORD
from tests.support.swctl import Swctl


def test_status_finds_the_platform_by_its_nats_url_from_any_directory(
    platform: Platform, tmp_path: Path
) -> None:
    swctl = Swctl(platform.config.nats_url, tmp_path / "swctl", platform.config.data_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    by_url = swctl("status", "--json", cwd=elsewhere)
    assert by_url.code == 0, by_url.stdout + by_url.stderr
    report = by_url.json()
    assert report["nats_url"] == platform.config.nats_url
    assert report["nats"] == "ready"
    assert {name: s["state"] for name, s in report["services"].items()} == {
        "registration": "ready",
        "review": "ready",
        "accounts": "ready",
        "filing": "ready",
    }
    plain = swctl("--nats-url", platform.config.nats_url, "status", cwd=elsewhere)
    assert plain.code == 0
    assert f"NATS  {platform.config.nats_url}  ready" in plain.stdout

    data_dir = str(platform.config.data_dir)
    by_state = swctl("--data-dir", data_dir, "--json", "status", cwd=elsewhere)
    assert by_state.code == 0, by_state.stderr
    assert by_state.json()["data_dir"] == data_dir
    assert by_state.json()["services"]["review"]["http"].startswith("http://127.0.0.1:")

    nothing = Swctl("nats://127.0.0.1:1", tmp_path / "swctl")("status", "--json", cwd=elsewhere)
    assert nothing.code == 3
    assert nothing.json()["nats"] == "down"


async def test_review_list_pages_with_a_total_and_one_line_per_task(
    platform: Platform, nats_bus: Bus, tmp_path: Path, reviewer: str
) -> None:
    for _ in range(3):
        await submit(nats_bus, application())

    async def three_or_more() -> TaskList | None:
        listed: TaskList = await nats_bus.call(review.LIST_TASKS, {"token": reviewer, "limit": 1})
        return listed if listed.total >= 3 else None

    total = (await eventually(three_or_more)).total
    everything: TaskList = await nats_bus.call(review.LIST_TASKS, {"token": reviewer, "limit": 500})
    assert len(everything.tasks) == total == everything.total

    swctl = Swctl(platform.config.nats_url, tmp_path / "swctl", platform.config.data_dir)
    login = swctl(
        "staff", "login", "--account", "it-reviewer", "--password-stdin", stdin=STAFF_PASSWORD
    )
    assert login.code == 0, login.stderr
    page = swctl("review", "list", "--limit", "2", "--offset", "1")
    assert page.code == 0, page.stderr
    lines = page.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == [t.task_id for t in everything.tasks[1:3]]
    assert lines[3].startswith(f"tasks 2-3 of {total}")
    assert len(lines) == 4
    assert "legal_representative" not in page.stdout
    as_json = swctl("--json", "review", "list", "--limit", "2").json()
    assert as_json["total"] == total
    assert [t["task_id"] for t in as_json["tasks"]] == [t.task_id for t in everything.tasks[:2]]


async def test_events_tail_json_is_one_array_and_jsonl_one_event_a_line(
    platform: Platform, nats_bus: Bus, tmp_path: Path
) -> None:
    await submit(nats_bus, application())
    swctl = Swctl(platform.config.nats_url, tmp_path / "swctl", platform.config.data_dir)

    async def some_events() -> list[dict[str, object]] | None:
        tail = swctl("events", "tail", "--from-start", "--idle-timeout", "1", "--json")
        assert tail.code == 0, tail.stderr
        events: list[dict[str, object]] = tail.json()
        return events or None

    events = await eventually(some_events)
    assert all(event["specversion"] == "1.0" for event in events)
    lines = swctl("events", "tail", "--from-start", "--limit", "2", "--jsonl").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [event["id"] for event in events[:2]]


def test_status_names_each_credential_and_swctl_connects_only_with_one(
    platform: Platform, tmp_path: Path
) -> None:
    url = platform.config.nats_url
    report = Swctl(url, tmp_path / "swctl", platform.config.data_dir)("status", "--json").json()
    directory = platform.config.credentials_dir
    names = ("portal", "subscriber", "operator", "workstation")
    assert report["credentials"] == {name: str(directory / f"{name}.json") for name in names} | {
        "bootstrap_admin": str(directory / "bootstrap-admin.json")
    }
    for name in names:
        assert json.loads((directory / f"{name}.json").read_text())["user"] == name

    # No platform state and no credential: NATS refuses the anonymous connection.
    empty = tmp_path / "empty"
    anonymous = Swctl(url, tmp_path / "swctl", empty)("status", "--json")
    assert anonymous.code == 3
    assert anonymous.json()["nats"] == "down"
    assert "as portal (no credentials in" in anonymous.json()["detail"]
    # The same with the portal's credential given: every service answers it.
    given = Swctl(url, tmp_path / "swctl", empty)(
        "--credentials", str(directory / "portal.json"), "status", "--json"
    )
    assert given.code == 0, given.stdout
    assert {name: s["state"] for name, s in given.json()["services"].items()} == {
        "registration": "ready",
        "review": "ready",
        "accounts": "ready",
        "filing": "ready",
    }


def test_swctl_keeps_the_claim_secret_of_what_it_submitted_and_shows_with_it(
    platform: Platform, tmp_path: Path
) -> None:
    swctl = Swctl(platform.config.nats_url, tmp_path / "swctl", platform.config.data_dir)
    (tmp_path / "application.json").write_text(json.dumps(application()))
    submitted = swctl(
        "register", "cardless", "--file", str(tmp_path / "application.json"), "--json"
    )
    assert submitted.code == 0, submitted.stderr
    application_id = submitted.json()["application_id"]
    secret = submitted.json()["claim_secret"]
    kept = tmp_path / "swctl" / "applications" / f"{application_id}.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert json.loads(kept.read_text())["claim_secret"] == secret
    assert f"claim secret kept in {kept}" in submitted.stderr

    shown = swctl("registration", "show", application_id, "--json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["state"] == "pending"
    assert "claim_secret" not in shown.json()

    # Another person's swctl knows the id (events carry it) but not the secret.
    stranger = Swctl(platform.config.nats_url, tmp_path / "stranger", platform.config.data_dir)
    unknown = stranger("registration", "show", application_id)
    assert unknown.code == 2
    assert "--claim-secret-stdin" in unknown.stderr
    guessed = stranger(
        "registration", "show", application_id, "--claim-secret-stdin", stdin="x" * 43 + "\n"
    )
    assert guessed.code == 1
    assert "claim secret" in guessed.stderr
    told = stranger(
        "registration", "show", application_id, "--claim-secret-stdin", stdin=secret + "\n"
    )
    assert told.code == 0, told.stderr
