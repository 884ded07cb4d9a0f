"""The cardless story end to end, as a user drives it with swctl and an integrator sees it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, ClassVar

import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow.swctl.platform import Platform

from tests.support.identifiers import application
from tests.support.swctl import Swctl

PASSWORD = "Chongqing-Trade-2026"
ADMIN = "Platform-Chief-Passphrase-1"
REVIEWER = "Li-Reviews-Applications-1"


@pytest.fixture
def swctl(platform: Platform, tmp_path: Path) -> Swctl:
    return Swctl(platform.config.nats_url, tmp_path / "swctl", platform.config.data_dir)


class Integrator:
    """A government system's subscriber: plain nats-py, nothing imported from the project."""

    STREAMS: ClassVar[dict[str, str]] = {
        "SW_REGISTRATION": "sw.events.registration.>",
        "SW_REVIEW": "sw.events.review.>",
        "SW_ACCOUNTS": "sw.events.accounts.>",
    }

    def __init__(self, credentials: Path) -> None:
        self.credentials = json.loads(credentials.read_text())
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    async def __aenter__(self) -> Integrator:
        # As the README shows an integrating system connecting with `credentials/subscriber.json`.
        self.nc = await nats.connect(
            self.credentials["url"],
            user=self.credentials["user"],
            password=self.credentials["password"],
            inbox_prefix="_INBOX_subscriber",
        )
        js = self.nc.jetstream()
        for stream, subject in self.STREAMS.items():
            await js.subscribe(
                subject,
                stream=stream,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
                cb=self._receive,
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.close()

    async def _receive(self, msg: Any) -> None:
        self.events.append(json.loads(msg.data))
        self.headers.append(dict(msg.headers or {}))

    def types_for(self, uscc: str) -> list[str]:
        """The types of `uscc`'s events, in the order they happened (streams interleave freely)."""
        mine = [e for e in self.events if e.get("subject") == uscc]
        return [e["type"] for e in sorted(mine, key=lambda e: str(e["time"]))]

    async def wait_for(self, uscc: str, event_type: str, within: float = 15) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                for event in self.events:
                    if event.get("subject") == uscc and event["type"] == event_type:
                        return event
                await asyncio.sleep(0.05)


def _write(tmp_path: Path, content: dict[str, Any], name: str = "application.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(content, ensure_ascii=False))
    return str(path)


async def _open_task(swctl: Swctl, application_id: str) -> str:
    async with asyncio.timeout(15):
        while True:
            listed = await asyncio.to_thread(swctl, "review", "list", "--json")
            assert listed.code == 0, listed.stderr
            for task in listed.json()["tasks"]:
                if task["application_id"] == application_id:
                    return str(task["task_id"])
            await asyncio.sleep(0.1)


async def _state(swctl: Swctl, application_id: str, wanted: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            shown = await asyncio.to_thread(swctl, "registration", "show", application_id, "--json")
            assert shown.code == 0, shown.stderr
            if shown.json()["state"] == wanted:
                return dict(shown.json())
            await asyncio.sleep(0.1)


def _reviewer(platform: Platform, swctl: Swctl) -> str:
    """The README's back-office steps: the bootstrap admin logs in from its file, changes its
    one-time password, adds a reviewer; the reviewer logs in and sets their own password."""
    data_dir = str(platform.config.data_dir)
    login = swctl("staff", "login", "--data-dir", data_dir, "--json")
    assert login.code == 0, login.stderr
    assert login.json()["required_actions"] == ["change_password"]
    one_time = json.loads(
        (platform.config.data_dir / "credentials" / "bootstrap-admin.json").read_text()
    )["password"]
    changed = swctl("staff", "password", "--password-stdin", stdin=f"{one_time}\n{ADMIN}\n")
    assert changed.code == 0, changed.stderr
    added = swctl("staff", "add", "li-reviewer", "--role", "reviewer", "--json")
    assert added.code == 0, added.stderr
    otp = added.json()["one_time_password"]
    login = swctl("staff", "login", "--account", "li-reviewer", "--password-stdin", stdin=otp)
    assert login.code == 0, login.stderr
    changed = swctl("staff", "password", "--password-stdin", stdin=f"{otp}\n{REVIEWER}\n")
    assert changed.code == 0, changed.stderr
    return "li-reviewer"


async def test_cardless_registration_from_submission_to_first_login(
    platform: Platform, swctl: Swctl, tmp_path: Path
) -> None:
    content = application(password=PASSWORD)
    uscc = content["enterprise"]["uscc"]
    account = content["admin"]["account"]
    async with Integrator(platform.config.credentials_file("subscriber")) as integrator:
        submitted = swctl("register", "cardless", "--file", _write(tmp_path, content), "--json")
        assert submitted.code == 0, submitted.stderr
        application_id = submitted.json()["application_id"]
        assert submitted.json()["state"] == "pending"

        reviewer = _reviewer(platform, swctl)
        task_id = await _open_task(swctl, application_id)
        shown = swctl("review", "show", task_id, "--json").json()
        assert shown["uscc"] == uscc
        assert shown["submission"]["admin"]["id_number_masked"] == "110105********002X"

        returned = swctl("review", "return", task_id, "--reason", "address is incomplete", "--json")
        assert returned.code == 0, returned.stderr
        state = await _state(swctl, application_id, "returned")
        assert state["reason"] == "address is incomplete"

        resubmitted = swctl(
            "register", "resubmit", application_id, "--file", _write(tmp_path, content), "--json"
        )
        assert resubmitted.code == 0, resubmitted.stderr
        assert resubmitted.json()["attempt"] == 2
        second_task = await _open_task(swctl, application_id)
        assert second_task != task_id
        assert swctl("review", "approve", second_task).code == 0
        decided = [e for e in integrator.events if e["type"] == "cn.singlewindow.review.decided.v1"]
        assert {e["data"]["reviewer"] for e in decided} == {reviewer}
        await _state(swctl, application_id, "approved")
        await integrator.wait_for(uscc, "cn.singlewindow.accounts.enterprise-registered.v1")

        login = swctl(
            "login", "--account", account, "--password-stdin", "--json", stdin=PASSWORD + "\n"
        )
        assert login.code == 0, login.stderr
        assert login.json()["required_actions"] == ["business_scope"]
        blocked = swctl("account", "show")
        assert blocked.code == 1
        assert "business scope" in blocked.stderr

        options = swctl("scope", "options", "--json").json()["options"]
        assert {"import_export_consignee", "customs_broker"} <= {o["code"] for o in options}
        declared = swctl(
            "scope", "set", "import_export_consignee", "cross_border_ecommerce", "--json"
        )
        assert declared.code == 0, declared.stderr
        assert declared.json()["required_actions"] == []
        me = swctl("account", "show", "--json").json()
        assert me["uscc"] == uscc
        assert me["business_scope"] == ["import_export_consignee", "cross_border_ecommerce"]

        assert swctl("logout").code == 0
        assert swctl("account", "show").code == 1

        await integrator.wait_for(uscc, "cn.singlewindow.accounts.permissions-changed.v1")
        assert integrator.types_for(uscc) == [
            "cn.singlewindow.registration.submitted.v1",
            "cn.singlewindow.review.decided.v1",
            "cn.singlewindow.registration.returned.v1",
            "cn.singlewindow.registration.resubmitted.v1",
            "cn.singlewindow.review.decided.v1",
            "cn.singlewindow.registration.approved.v1",
            "cn.singlewindow.accounts.enterprise-registered.v1",
            "cn.singlewindow.accounts.business-scope-declared.v1",
            "cn.singlewindow.accounts.permissions-changed.v1",
        ]
        for event, headers in zip(integrator.events, integrator.headers, strict=True):
            assert event["specversion"] == "1.0"
            assert headers["Nats-Msg-Id"] == event["id"]
            assert event["dataschema"].endswith(event["type"].removeprefix("cn.singlewindow."))
            assert event["source"].startswith("urn:singlewindow:service:")
            text = json.dumps(event, ensure_ascii=False)
            assert "11010519491231002X" not in text
            assert PASSWORD not in text
            assert "argon2" not in text
            assert ADMIN not in text
            assert REVIEWER not in text
    # Nor does any service's log hold the password or the full ID number.
    for service in platform.config.service_ports:
        log = platform.log_path(service).read_text(encoding="utf-8")
        assert "11010519491231002X" not in log, service
        assert PASSWORD not in log, service
        assert ADMIN not in log, service
        assert REVIEWER not in log, service
