"""Staff and review through swctl, as the back office drives it on the embedded platform: the
bootstrap administrator and its forced password change, reviewers added and disabled, a claimed
task refused to a second reviewer until a supervisor reassigns it, and decisions recorded as the
session's reviewer."""

from __future__ import annotations

import asyncio
import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow.contracts import accounts, review
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.swctl.platform import Platform
from singlewindow.swctl.staff import bootstrap_admin_file

from tests.integration.test_registration_rules import registered
from tests.support.identifiers import application
from tests.support.platform import Bus, eventually
from tests.support.swctl import Result, Swctl

ADMIN_PASSWORD = "Back-Office-Chief-Passphrase-9"
PASSWORDS = {
    "rev-alice": "Alice-Reviews-Carefully-2026",
    "rev-bob": "Bob-Reviews-Carefully-2026",
    "sup-carol": "Carol-Supervises-Work-2026",
}
ROLES = {"rev-alice": "reviewer", "rev-bob": "reviewer", "sup-carol": "supervisor"}
ENTERPRISE_PASSWORD = "Chongqing-Trade-2026"


@dataclass(frozen=True)
class Desk:
    """The back office of one platform: what the bootstrap login saw, and each person's swctl."""

    platform: Platform
    directory: Path
    one_time_password: str
    first_login: Result
    before_change: list[Result]
    change: Result
    one_time_tokens: list[str]

    def swctl(self, person: str) -> Swctl:
        """swctl with `person`'s own config directory (their own sessions)."""
        return Swctl(
            self.platform.config.nats_url, self.directory / person, self.platform.config.data_dir
        )


def refused(result: Result, code: str) -> None:
    assert result.code == 1, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.json()["error"]["code"] == code, result.stdout


@pytest.fixture(scope="module")
def desk(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Desk:
    """The bootstrap administrator logs in from its file and changes its one-time password; its
    reviewers and supervisor are added and set their own passwords."""
    directory = tmp_path_factory.mktemp("desk")
    data_dir = str(platform.config.data_dir)
    admin = Swctl(platform.config.nats_url, directory / "admin", platform.config.data_dir)
    one_time = json.loads(bootstrap_admin_file(platform.config.data_dir).read_text())["password"]
    first = admin("staff", "login", "--data-dir", data_dir, "--json")
    assert first.code == 0, first.stderr
    before = [
        admin("staff", "list", "--json"),
        admin("staff", "add", "rev-early", "--role", "reviewer", "--json"),
        admin("review", "list", "--json"),
    ]
    change = admin(
        "staff", "password", "--password-stdin", "--json", stdin=f"{one_time}\n{ADMIN_PASSWORD}\n"
    )
    assert change.code == 0, change.stderr
    tokens = [first.json()["token"]]
    for person, password in PASSWORDS.items():
        added = admin("staff", "add", person, "--role", ROLES[person], "--json")
        assert added.code == 0, added.stderr
        otp = added.json()["one_time_password"]
        mine = Swctl(platform.config.nats_url, directory / person, platform.config.data_dir)
        login = mine("staff", "login", "--account", person, "--password-stdin", stdin=otp + "\n")
        assert login.code == 0, login.stderr
        tokens.append(json.loads((directory / person / "staff-session.json").read_text())["token"])
        changed = mine("staff", "password", "--password-stdin", stdin=f"{otp}\n{password}\n")
        assert changed.code == 0, changed.stderr
    return Desk(platform, directory, one_time, first, before, change, tokens)


async def submitted_task(desk: Desk, tmp_path: Path, person: str = "sup-carol") -> tuple[str, str]:
    """A fresh cardless application, and its review task once review has opened it."""
    path = tmp_path / "application.json"
    path.write_text(json.dumps(application(password=ENTERPRISE_PASSWORD), ensure_ascii=False))
    submitted = desk.swctl("applicant")("register", "cardless", "--file", str(path), "--json")
    assert submitted.code == 0, submitted.stderr
    application_id = submitted.json()["application_id"]

    async def task() -> str | None:
        listed = await asyncio.to_thread(desk.swctl(person), "review", "list", "--json")
        assert listed.code == 0, listed.stderr
        found = [t for t in listed.json()["tasks"] if t["application_id"] == application_id]
        return str(found[0]["task_id"]) if found else None

    return application_id, await eventually(task)


async def audit_trail(bus: Bus) -> list[dict[str, Any]]:
    subscription = await bus.js.subscribe(
        "sw.audit.>",
        stream=accounts.AUDIT_STREAM.name,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    events = []
    try:
        while True:
            try:
                events.append(json.loads((await subscription.next_msg(timeout=0.5)).data))
            except TimeoutError:
                break
    finally:
        await subscription.unsubscribe()
    return events


def test_the_bootstrap_admin_comes_from_a_private_file_and_must_change_its_password_first(
    desk: Desk,
) -> None:
    secret = bootstrap_admin_file(desk.platform.config.data_dir)
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert json.loads(secret.read_text())["account"] == "admin"

    first = desk.first_login.json()
    assert (first["account"], first["role"]) == ("admin", "platform-admin")
    assert first["required_actions"] == ["change_password"]
    for result in desk.before_change:
        refused(result, "action_required")
        assert "one-time password" in result.json()["error"]["message"]
    assert desk.change.json()["required_actions"] == []

    admin = desk.swctl("admin")
    listed = admin("staff", "list", "--json")
    assert listed.code == 0, listed.stderr
    assert {
        (s["account"], s["role"], s["password_must_change"]) for s in listed.json()["staff"]
    } == {
        ("admin", "platform-admin", False),
        ("rev-alice", "reviewer", False),
        ("rev-bob", "reviewer", False),
        ("sup-carol", "supervisor", False),
    }
    # The one-time password is spent; the changed one logs in.
    again = Swctl(
        desk.platform.config.nats_url, desk.directory / "admin-again", desk.platform.config.data_dir
    )
    refused(
        again(
            "staff",
            "login",
            "--account",
            "admin",
            "--password-stdin",
            "--json",
            stdin=desk.one_time_password,
        ),
        "unauthenticated",
    )
    relogin = again(
        "staff", "login", "--account", "admin", "--password-stdin", stdin=ADMIN_PASSWORD
    )
    assert relogin.code == 0, relogin.stderr
    assert again("staff", "logout").stdout.startswith("logged out")
    refused(again("staff", "list", "--json"), "unauthenticated")


def test_a_reviewer_added_then_disabled_can_no_longer_review_or_log_in(desk: Desk) -> None:
    admin = desk.swctl("admin")
    added = admin("staff", "add", "rev-dave", "--role", "reviewer")
    assert added.code == 0, added.stderr
    [otp] = [line.split(": ", 1)[1] for line in added.stdout.splitlines() if "one-time" in line]
    dave = desk.swctl("rev-dave")
    login = dave("staff", "login", "--account", "rev-dave", "--password-stdin", stdin=otp)
    assert login.code == 0, login.stderr
    refused(dave("review", "list", "--json"), "action_required")
    password = "Dave-Reviews-Too-2026"
    assert dave("staff", "password", "--password-stdin", stdin=f"{otp}\n{password}\n").code == 0
    assert dave("review", "list", "--json").code == 0

    disabled = admin("staff", "disable", "rev-dave", "--json")
    assert disabled.code == 0, disabled.stderr
    assert disabled.json()["status"] == "disabled"
    refused(dave("review", "list", "--json"), "unauthenticated")
    refused(
        dave(
            "staff", "login", "--account", "rev-dave", "--password-stdin", "--json", stdin=password
        ),
        "forbidden",
    )
    # A reviewer manages no staff.
    refused(desk.swctl("rev-alice")("staff", "enable", "rev-dave", "--json"), "forbidden")
    assert admin("staff", "enable", "rev-dave").code == 0
    assert (
        dave("staff", "login", "--account", "rev-dave", "--password-stdin", stdin=password).code
        == 0
    )
    assert dave("review", "list", "--json").code == 0


async def test_a_claimed_task_is_refused_to_a_second_reviewer_until_a_supervisor_reassigns_it(
    desk: Desk, nats_bus: Bus, tmp_path: Path
) -> None:
    alice, bob, carol = desk.swctl("rev-alice"), desk.swctl("rev-bob"), desk.swctl("sup-carol")
    application_id, task = await submitted_task(desk, tmp_path)

    claimed = alice("review", "claim", task, "--json")
    assert claimed.code == 0, claimed.stderr
    assert claimed.json()["assignee"] == "rev-alice"
    refused(bob("review", "approve", task, "--json"), "forbidden")
    refused(bob("review", "claim", task, "--json"), "forbidden")
    assert task not in bob("review", "list").stdout
    refused(bob("review", "assign", task, "rev-bob", "--json"), "forbidden")
    mine = alice("review", "list", "--mine", "--json").json()["tasks"]
    assert [(t["task_id"], t["assignee"]) for t in mine if t["task_id"] == task] == [
        (task, "rev-alice")
    ]

    assigned = carol("review", "assign", task, "rev-bob", "--json")
    assert assigned.code == 0, assigned.stderr
    assert assigned.json()["assignee"] == "rev-bob"
    listed = carol("review", "list")
    assert listed.code == 0
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(task)]
    assert "rev-bob" in row.split()
    refused(alice("review", "approve", task, "--json"), "forbidden")

    decided = bob("review", "approve", task, "--json")
    assert decided.code == 0, decided.stderr
    assert (decided.json()["state"], decided.json()["reviewer"]) == ("decided", "rev-bob")

    async def announced() -> dict[str, Any] | None:
        trail = await audit_trail(nats_bus)
        decisions = [e for e in trail if e["data"].get("task_id") == task]
        return {"trail": trail, "mine": decisions} if len(decisions) >= 3 else None

    seen = await eventually(announced)
    assert [
        (e["data"]["action"], e["data"]["by"], e["data"]["assignee"]) for e in seen["mine"]
    ] == [
        ("claimed", "rev-alice", "rev-alice"),
        ("assigned", "sup-carol", "rev-bob"),
        ("decided", "rev-bob", "rev-bob"),
    ]
    trail = json.dumps(seen["trail"])
    for secret in [
        ADMIN_PASSWORD,
        desk.one_time_password,
        *PASSWORDS.values(),
        *desk.one_time_tokens,
    ]:
        assert secret not in trail
    for service in desk.platform.config.service_ports:
        log = desk.platform.log_path(service).read_text(encoding="utf-8")
        for secret in [ADMIN_PASSWORD, desk.one_time_password, *PASSWORDS.values()]:
            assert secret not in log, service
    assert "staff-authentication-attempted" in trail
    assert "staff-changed" in trail
    assert application_id


async def test_a_decision_without_a_staff_session_is_refused_and_the_reviewer_is_the_sessions(
    desk: Desk, nats_bus: Bus, tmp_path: Path
) -> None:
    _application_id, task = await submitted_task(desk, tmp_path)
    nobody = desk.swctl("nobody")
    refused(nobody("review", "approve", task, "--json"), "unauthenticated")
    refused(nobody("review", "list", "--json"), "unauthenticated")
    usage = desk.swctl("rev-alice")("review", "approve", task, "--reviewer", "someone-else")
    assert usage.code == 2  # --reviewer is gone: the session says who decides
    with pytest.raises(DomainError) as raised:
        await nats_bus.call(
            review.DECIDE_TASK, {"token": "forged-token", "task_id": task, "decision": "approve"}
        )
    assert raised.value.code is ErrorCode.UNAUTHENTICATED
    shown = desk.swctl("sup-carol")("review", "show", task, "--json").json()
    assert (shown["state"], shown["reviewer"]) == ("open", None)

    returned = desk.swctl("rev-alice")(
        "review", "return", task, "--reason", "the address is incomplete", "--json"
    )
    assert returned.code == 0, returned.stderr
    assert returned.json()["reviewer"] == "rev-alice"


async def test_enterprise_and_staff_sessions_are_refused_on_each_others_subjects(
    desk: Desk, nats_bus: Bus, registration_bus: Bus, tmp_path: Path
) -> None:
    content = application(password=ENTERPRISE_PASSWORD)
    path = tmp_path / "application.json"
    path.write_text(json.dumps(content, ensure_ascii=False))
    applicant = desk.swctl("applicant")
    application_id = applicant("register", "cardless", "--file", str(path), "--json").json()[
        "application_id"
    ]

    async def task() -> str | None:
        listed = await asyncio.to_thread(desk.swctl("rev-alice"), "review", "list", "--json")
        found = [t for t in listed.json()["tasks"] if t["application_id"] == application_id]
        return str(found[0]["task_id"]) if found else None

    task_id = await eventually(task)
    assert desk.swctl("rev-alice")("review", "approve", task_id).code == 0

    await registered(registration_bus, content["enterprise"]["uscc"])
    login = applicant(
        "login",
        "--account",
        content["admin"]["account"],
        "--password-stdin",
        "--json",
        stdin=ENTERPRISE_PASSWORD,
    )
    assert login.code == 0, login.stderr
    enterprise_token = login.json()["token"]
    for endpoint in (review.LIST_TASKS, accounts.STAFF_LIST):
        reply = await nats_bus.raw(endpoint, json.dumps({"token": enterprise_token}).encode())
        assert reply["error"]["code"] == ErrorCode.WRONG_SESSION.value, (endpoint.subject, reply)
    staff_token = json.loads((desk.directory / "rev-alice" / "staff-session.json").read_text())[
        "token"
    ]
    with pytest.raises(DomainError) as raised:
        await nats_bus.call(accounts.SHOW_SESSION, {"token": staff_token})
    assert raised.value.code is ErrorCode.WRONG_SESSION
