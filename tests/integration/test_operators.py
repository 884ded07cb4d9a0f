"""Cardless operators through swctl on the real stack: the administrator adds an operator, who
logs in with 88888888, must change it first, then works and is refused every administrator
command; disabling ends its session at once; another enterprise's administrator finds no such
operator; a password change ends the account's other sessions; two administrators adding one
operator name at once: one succeeds, the other is told the name is taken."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from singlewindow.contracts import registration
from singlewindow.swctl.platform import Platform

from tests.integration.test_registration_rules import approve, registered
from tests.integration.test_staff import audit_trail
from tests.support.identifiers import application, make_account
from tests.support.platform import Bus
from tests.support.swctl import Result, Swctl

PASSWORD = "Chongqing-Trade-2026"
NEW_ADMIN_PASSWORD = "Chongqing-Trade-Renewed-2026"
DEFAULT = "88888888"
OPERATOR_PASSWORD = "Operator-Own-Passphrase-7"


@dataclass(frozen=True)
class Admin:
    """An enterprise's administrator with a live session in its own swctl config directory."""

    account: str
    uscc: str
    swctl: Swctl


def refused(result: Result, code: str) -> dict[str, Any]:
    assert result.code == 1, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    error: dict[str, Any] = result.json()["error"]
    assert error["code"] == code, result.stdout
    return error


def person(platform: Platform, tmp_path: Path, name: str) -> Swctl:
    """swctl with `name`'s own config directory (their own session)."""
    return Swctl(platform.config.nats_url, tmp_path / name, platform.config.data_dir)


async def new_admin(
    platform: Platform, nats_bus: Bus, registration_bus: Bus, reviewer: str, directory: Path
) -> Admin:
    """A cardless enterprise, approved, its administrator logged in and its scope declared."""
    content = application(password=PASSWORD)
    uscc, account = content["enterprise"]["uscc"], content["admin"]["account"]
    submitted = await nats_bus.call(registration.SUBMIT_CARDLESS, content)
    await approve(nats_bus, submitted.application_id, reviewer)
    await registered(registration_bus, uscc)
    swctl = Swctl(platform.config.nats_url, directory / account, platform.config.data_dir)
    login = swctl("login", "--account", account, "--password-stdin", stdin=PASSWORD + "\n")
    assert login.code == 0, login.stderr
    assert swctl("scope", "set", "customs_broker").code == 0
    return Admin(account, uscc, swctl)


_pairs: dict[Path, tuple[Admin, Admin]] = {}
"""Two enterprises' administrators per platform, made once: the tests below share them."""


async def two_admins(
    platform: Platform, nats_bus: Bus, registration_bus: Bus, reviewer: str, directory: Path
) -> tuple[Admin, Admin]:
    """Two administrators of two enterprises on `platform`, made the first time asked."""
    key = platform.config.data_dir
    if key not in _pairs:
        made = [
            await new_admin(platform, nats_bus, registration_bus, reviewer, directory)
            for _ in range(2)
        ]
        _pairs[key] = (made[0], made[1])
    return _pairs[key]


def operator_file(directory: Path, account: str) -> str:
    example = json.loads(
        (Path(__file__).resolve().parents[2] / "examples" / "operator.json").read_text()
    )
    example["operator"]["account"] = account
    path = directory / f"{account}.json"
    path.write_text(json.dumps(example, ensure_ascii=False), encoding="utf-8")
    return str(path)


async def test_an_operator_added_by_its_admin_changes_88888888_first_then_works_until_disabled(
    platform: Platform,
    nats_bus: Bus,
    registration_bus: Bus,
    reviewer: str,
    tmp_path: Path,
) -> None:
    ours, theirs = await two_admins(platform, nats_bus, registration_bus, reviewer, tmp_path)
    name = make_account("op")
    added = ours.swctl("operators", "add", "--file", operator_file(tmp_path, name), "--json")
    assert added.code == 0, added.stderr
    shown = added.json()
    assert (shown["account"], shown["operator_level"], shown["status"]) == (name, "entry", "active")
    assert (shown["password_must_change"], shown["initial_password"]) == (True, "default")
    assert shown["id_number_masked"] == "110105********002X"

    op = person(platform, tmp_path, "op")
    first = op("login", "--account", name, "--password-stdin", "--json", stdin=DEFAULT + "\n")
    assert first.code == 0, first.stderr
    assert first.json()["required_actions"] == ["change_password"]
    refused(op("account", "show", "--json"), "action_required")
    changed = op(
        "password", "change", "--password-stdin", stdin=f"{DEFAULT}\n{OPERATOR_PASSWORD}\n"
    )
    assert changed.code == 0, changed.stderr
    assert "changed" in changed.stdout
    me = op("account", "show", "--json")
    assert me.code == 0, me.stderr
    assert (me.json()["role"], me.json()["uscc"]) == ("operator", ours.uscc)
    assert op("whoami", "--json").json()["required_actions"] == []

    # An operator is not an administrator.
    for command in (
        ("operators", "list"),
        ("operators", "add", "--file", operator_file(tmp_path, make_account("op"))),
        ("operators", "disable", name),
        ("scope", "set", "customs_broker"),
    ):
        error = refused(op(*command, "--json"), "forbidden")
        assert "administrator" in error["message"]

    # Another enterprise's administrator finds no such operator.
    for verb in ("show", "disable", "delete", "reset-password"):
        error = refused(theirs.swctl("operators", verb, name, "--json"), "not_found")
        assert error["message"] == f"your enterprise has no operator {name}"
    assert name not in theirs.swctl("operators", "list").stdout
    listed = ours.swctl("operators", "list")
    assert listed.code == 0, listed.stderr
    assert name in listed.stdout

    # Disabling ends every session of the operator at once.
    elsewhere = person(platform, tmp_path, "op-elsewhere")
    assert (
        elsewhere("login", "--account", name, "--password-stdin", stdin=OPERATOR_PASSWORD).code == 0
    )
    refused(ours.swctl("operators", "disable", ours.account, "--json"), "conflict")
    disabled = ours.swctl("operators", "disable", name, "--json")
    assert disabled.code == 0, disabled.stderr
    assert disabled.json()["status"] == "disabled"
    refused(op("account", "show", "--json"), "unauthenticated")
    refused(elsewhere("whoami", "--json"), "unauthenticated")
    refused(
        op("login", "--account", name, "--password-stdin", "--json", stdin=OPERATOR_PASSWORD),
        "forbidden",
    )

    trail = await audit_trail(nats_bus)
    changes = [
        (e["data"]["change"], e["data"]["by"])
        for e in trail
        if e["type"].endswith("account-changed.v1") and e["data"]["account"] == name
    ]
    assert changes == [
        ("operator-added", ours.account),
        ("password-changed", name),
        ("operator-disabled", ours.account),
    ]
    text = json.dumps(trail)
    assert OPERATOR_PASSWORD not in text
    assert f'"{DEFAULT}"' not in text


async def test_a_password_change_ends_the_other_sessions_and_needs_the_current_password(
    platform: Platform,
    nats_bus: Bus,
    registration_bus: Bus,
    reviewer: str,
    tmp_path: Path,
) -> None:
    admin = await new_admin(platform, nats_bus, registration_bus, reviewer, tmp_path)
    other = person(platform, tmp_path, "admin-elsewhere")
    assert other("login", "--account", admin.account, "--password-stdin", stdin=PASSWORD).code == 0
    wrong = admin.swctl(
        "password",
        "change",
        "--password-stdin",
        "--json",
        stdin=f"Not-{PASSWORD}\n{NEW_ADMIN_PASSWORD}\n",
    )
    error = refused(wrong, "unauthenticated")
    assert error["fields"] == [{"path": "current_password", "message": "is incorrect"}]
    assert other("whoami").code == 0

    changed = admin.swctl(
        "password", "change", "--password-stdin", stdin=f"{PASSWORD}\n{NEW_ADMIN_PASSWORD}\n"
    )
    assert changed.code == 0, changed.stderr
    assert admin.swctl("account", "show").code == 0
    refused(other("whoami", "--json"), "unauthenticated")

    me = tmp_path / "me.json"
    me.write_text(json.dumps({"email": "li@example.com", "landline": "023-6789 0000"}))
    updated = admin.swctl("account", "update", "--file", str(me), "--json")
    assert updated.code == 0, updated.stderr
    assert (updated.json()["email"], updated.json()["landline"]) == (
        "li@example.com",
        "023-6789 0000",
    )
    me.write_text(json.dumps({"id_number": "110105194912310021"}))
    error = refused(admin.swctl("account", "update", "--file", str(me), "--json"), "invalid")
    assert error["fields"][0]["path"] == "id_number"


async def test_two_admins_adding_one_operator_name_at_once_one_is_told_it_is_taken(
    platform: Platform,
    nats_bus: Bus,
    registration_bus: Bus,
    reviewer: str,
    tmp_path: Path,
) -> None:
    first, second = await two_admins(platform, nats_bus, registration_bus, reviewer, tmp_path)
    name = make_account("op")
    path = operator_file(tmp_path, name)
    results = await asyncio.gather(
        *(
            asyncio.to_thread(admin.swctl, "operators", "add", "--file", path, "--json")
            for admin in (first, second)
        )
    )
    assert sorted(result.code for result in results) == [0, 1], results
    [loser] = [result for result in results if result.code == 1]
    error = refused(loser, "conflict")
    assert error["fields"] == [{"path": "operator.account", "message": "is taken"}]
    assert "is taken" in error["message"]
