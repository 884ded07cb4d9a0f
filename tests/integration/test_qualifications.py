"""My qualifications and application permissions through swctl on the real stack: show, edit and
save with a stale save refused and two editors at once making one save; the inspection password
never returned and stored only as ciphertext (read the database itself); the audit trail; an
enterprise revocation and restore; and the decision API answered to a plain nats-py client as
the `business` user (allowed, revoked, logged out)."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from singlewindow.accounts.permissions import MAKER_CHECKER
from singlewindow.accounts.qualifications import parse_keys, sealing_context
from singlewindow.contracts import accounts
from singlewindow.swctl.platform import Platform
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.test_exactly_once import approved_and_registered, events_of
from tests.support.identifiers import application, make_account
from tests.support.platform import Bus, connect
from tests.support.swctl import Result, Swctl

PASSWORD = "Chongqing-Trade-2026"
SECRET = "Eciq-Secret-4711"


def ok(result: Result) -> Any:
    assert result.code == 0, (result.code, result.stdout, result.stderr)
    return result.json()


async def decide(platform: Platform, endpoint: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Ask a decision subject as a business system does: plain nats-py, the `business` user."""
    nc = await connect(platform, "business")
    try:
        reply = await nc.request(endpoint.subject, json.dumps(request).encode(), timeout=10)
    finally:
        await nc.close()
    answer: dict[str, Any] = json.loads(reply.data)["result"]
    return answer


async def stored(platform: Platform, uscc: str) -> dict[str, Any]:
    engine = create_async_engine(platform.config.database_url("accounts"))
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT * FROM qualifications WHERE uscc = :uscc"), {"uscc": uscc}
                )
            ).mappings()
            return dict(row.one())
    finally:
        await engine.dispose()


async def test_qualifications_and_permissions_as_an_administrator_drives_them(
    platform: Platform, nats_bus: Bus, reviewer: str, tmp_path: Path
) -> None:
    content = application(password=PASSWORD)
    account = content["admin"]["account"]
    uscc = await approved_and_registered(nats_bus, content, reviewer)
    swctl = Swctl(platform.config.nats_url, tmp_path / "admin", platform.config.data_dir)

    async def run(*args: str, stdin: str | None = None) -> Result:
        return await asyncio.to_thread(swctl, *args, stdin=stdin)

    ok(await run("login", "--account", account, "--password-stdin", "--json", stdin=PASSWORD))
    ok(await run("scope", "set", "customs_broker", "--json"))

    shown = ok(await run("qualifications", "show", "--json"))
    assert (shown["basics"]["uscc"], shown["version"]) == (uscc, 0)
    assert "8000  重庆海关" in (await run("qualifications", "authorities")).stdout
    opened = ok(await run("qualifications", "edit", "--json"))
    record = tmp_path / "q.json"
    inspection = {
        "registration_number": "5000600001",
        "declaration_account": "cq-eciq",
        "password": SECRET,
        "authority": "8000",
    }
    record.write_text(json.dumps({"inspection": inspection}), encoding="utf-8")
    saved = await run(
        "qualifications", "save", "--version", str(opened["version"]), "--file", str(record)
    )
    assert saved.code == 0, saved.stderr
    assert "password:             set" in saved.stdout
    assert SECRET not in saved.stdout

    # A stale save is refused; of two editors at version 1, exactly one wins.
    stale = await run("qualifications", "save", "--version", "0", "--file", str(record), "--json")
    assert stale.code == 1
    assert stale.json()["error"]["code"] == "conflict"
    assert "changed by someone else since you opened it" in stale.json()["error"]["message"]
    editors = []
    for name in ("first", "second"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"inspection": inspection | {"declaration_account": name}}))
        editors.append(
            run("qualifications", "save", "--version", "1", "--file", str(path), "--json")
        )
    outcomes = await asyncio.gather(*editors)
    assert sorted(r.code for r in outcomes) == [0, 1], [r.stderr for r in outcomes]
    [winner] = [r.json() for r in outcomes if r.code == 0]
    final = ok(await run("qualifications", "show", "--json"))
    assert final["version"] == 2
    assert final["inspection"]["declaration_account"] == winner["inspection"]["declaration_account"]
    assert final["inspection"]["password_set"]
    assert SECRET not in json.dumps(final)

    # The database holds ciphertext and a key id only; the key file is the owner's alone.
    row = await stored(platform, uscc)
    assert SECRET not in json.dumps(row, default=str)
    assert row["password_key_id"]
    assert row["password_ciphertext"]
    if platform.config.database_url("accounts").startswith("sqlite"):
        files = platform.config.data_dir.glob("accounts.db*")
        assert all(SECRET.encode() not in path.read_bytes() for path in files)
    key_file = platform.config.data_dir / "secrets" / "accounts-keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    keys = parse_keys(key_file.read_text())
    opened_value = keys.open(
        row["password_ciphertext"], row["password_key_id"], sealing_context(uscc)
    )
    assert opened_value == SECRET

    # Rotation: a new key first, accounts restarted re-seals; the value still opens.
    rotated = ok(await run("dev", "rotate-key", "--json"))
    await asyncio.to_thread(platform.stop_process, "accounts")
    await asyncio.to_thread(platform.start_service, "accounts")
    row = await stored(platform, uscc)
    assert row["password_key_id"] == rotated["current"] != keys.current
    keys = parse_keys(key_file.read_text())
    opened_value = keys.open(
        row["password_ciphertext"], row["password_key_id"], sealing_context(uscc)
    )
    assert opened_value == SECRET

    audited = await events_of(
        nats_bus, accounts.AUDIT_STREAM.name, accounts.QUALIFICATIONS_CHANGED.subject, uscc
    )
    assert [event["data"]["version"] for event, _ in audited] == [1, 2]
    assert {
        "field": "inspection.password",
        "old": None,
        "new": None,
        "note": "password changed",
    } in (audited[0][0]["data"]["changes"])
    assert all(SECRET.encode() not in message.data for _, message in audited)

    # Permissions: a revocation and its restore, seen by the decision API.
    token = json.loads((tmp_path / "admin" / "session.json").read_text())["token"]
    check = {"token": token, "application": "manifest", "action": "declare"}
    assert (await decide(platform, accounts.PERMISSIONS_CHECK, check))["allowed"]
    revoked = ok(await run("permissions", "revoke", "manifest", "--action", "declare", "--json"))
    [entry] = [
        p
        for p in revoked["permissions"]
        if (p["application"], p["action"]) == ("manifest", "declare")
    ]
    assert (entry["granted"], entry["reason"]) == (
        False,
        "revoked by the administrator for the enterprise",
    )
    refused = await decide(platform, accounts.PERMISSIONS_CHECK, check)
    assert (refused["allowed"], refused["reason"]) == (
        False,
        "revoked by the administrator for the enterprise",
    )
    by_account = await decide(
        platform, accounts.PERMISSIONS_CHECK, {"account": account} | check | {"token": None}
    )
    assert not by_account["allowed"]
    ok(await run("permissions", "restore", "manifest", "--action", "declare", "--json"))
    assert (await decide(platform, accounts.PERMISSIONS_CHECK, check))["allowed"]
    listed = (await run("permissions", "list")).stdout
    assert "export_tax_refund" in listed
    assert "not a default of the enterprise's business scope" in listed

    seen = await decide(platform, accounts.SESSION_INTROSPECT, {"token": token})
    assert (seen["active"], seen["username"], seen["enterprise"], seen["role"]) == (
        True,
        account,
        uscc,
        "admin",
    )
    ok(await run("logout", "--json"))
    assert await decide(platform, accounts.SESSION_INTROSPECT, {"token": token}) == {
        "active": False,
        "sub": None,
        "username": None,
        "token_type": None,
        "enterprise": None,
        "role": None,
        "level": None,
        "method": None,
        "iat": None,
        "exp": None,
    }
    gone = await decide(platform, accounts.PERMISSIONS_CHECK, check)
    assert (gone["allowed"], gone["reason"]) == (False, "the session has ended")


OPERATOR_PASSWORD = "Operator-Own-Passphrase-7"


def operator_file(directory: Path, account: str, level: str) -> str:
    """The example operator with this account name and level, as a file for `operators add`."""
    example = json.loads(
        (Path(__file__).resolve().parents[2] / "examples" / "operator.json").read_text()
    )
    example["operator"] |= {"account": account, "level": level}
    path = directory / f"{account}.json"
    path.write_text(json.dumps(example, ensure_ascii=False), encoding="utf-8")
    return str(path)


def granted(listing: dict[str, Any], application: str, action: str) -> tuple[bool, str]:
    [entry] = [
        p
        for p in listing["permissions"]
        if (p["application"], p["action"]) == (application, action)
    ]
    return entry["granted"], entry["reason"]


async def test_operators_permissions_follow_revocations_and_the_decision_api_answers_for_each(
    platform: Platform, nats_bus: Bus, reviewer: str, tmp_path: Path
) -> None:
    content = application(password=PASSWORD)
    admin_account = content["admin"]["account"]
    uscc = await approved_and_registered(nats_bus, content, reviewer)
    config = platform.config

    def person(name: str) -> Callable[..., Awaitable[Result]]:
        swctl = Swctl(config.nats_url, tmp_path / name, config.data_dir)

        async def run(*args: str, stdin: str | None = None) -> Result:
            return await asyncio.to_thread(swctl, *args, stdin=stdin)

        return run

    def token_of(name: str) -> str:
        token: str = json.loads((tmp_path / name / "session.json").read_text())["token"]
        return token

    admin = person("admin")
    ok(
        await admin(
            "login", "--account", admin_account, "--password-stdin", "--json", stdin=PASSWORD
        )
    )
    ok(await admin("scope", "set", "customs_broker", "--json"))

    # The administrator adds a data-entry and a declaration operator; each changes 88888888.
    names = {level: make_account(level[:5]) for level in ("entry", "declaration")}
    for level, name in names.items():
        added = ok(
            await admin(
                "operators", "add", "--file", operator_file(tmp_path, name, level), "--json"
            )
        )
        assert (added["operator_level"], added["password_must_change"]) == (level, True)
        op = person(level)
        first = ok(
            await op("login", "--account", name, "--password-stdin", "--json", stdin="88888888")
        )
        assert first["required_actions"] == ["change_password"]
        owing = await decide(
            platform,
            accounts.PERMISSIONS_CHECK,
            {"token": token_of(level), "application": "manifest", "action": "query"},
        )
        assert (owing["allowed"], owing["reason"]) == (
            False,
            "the account must first complete: change password",
        )
        changed = await op(
            "password", "change", "--password-stdin", stdin=f"88888888\n{OPERATOR_PASSWORD}\n"
        )
        assert changed.code == 0, changed.stderr
    entry, declaration = names["entry"], names["declaration"]
    tokens = {
        "admin": token_of("admin"),
        entry: token_of("entry"),
        declaration: token_of("declaration"),
    }

    async def check(who: str, app: str, action: str) -> tuple[bool, str]:
        answer = await decide(
            platform,
            accounts.PERMISSIONS_CHECK,
            {"token": tokens[who], "application": app, "action": action},
        )
        assert answer["uscc"] == uscc
        return answer["allowed"], answer["reason"]

    async def listed(name: str) -> dict[str, Any]:
        return ok(await admin("permissions", "list", "--operator", name, "--json"))  # type: ignore[no-any-return]

    # Maker/checker: the data-entry operator never holds declare; the declaration one does.
    broker = "default from business scope customs_broker"
    maker, checker = await listed(entry), await listed(declaration)
    assert (maker["operator"], maker["operator_level"]) == (entry, "entry")
    assert granted(maker, "manifest", "entry") == (True, broker)
    assert granted(maker, "manifest", "declare") == (False, MAKER_CHECKER)
    assert granted(checker, "manifest", "declare") == (True, broker)
    assert await check(entry, "manifest", "declare") == (False, MAKER_CHECKER)
    assert await check(declaration, "manifest", "declare") == (True, broker)
    own = ok(await person("entry")("permissions", "list", "--json"))
    assert own["operator"] == entry
    assert granted(own, "manifest", "declare")[0] is False
    refused_restore = await admin(
        "permissions", "restore", "manifest", "--action", "declare", "--operator", entry, "--json"
    )
    assert refused_restore.code == 1
    assert refused_restore.json()["error"]["fields"][0]["path"] == "action"

    # One operator's revoke and restore.
    revoked = ok(
        await admin(
            "permissions",
            "revoke",
            "manifest",
            "--action",
            "query",
            "--operator",
            declaration,
            "--json",
        )
    )
    for_operator = "revoked by the administrator for this operator"
    assert granted(revoked, "manifest", "query") == (False, for_operator)
    assert await check(declaration, "manifest", "query") == (False, for_operator)
    assert await check(entry, "manifest", "query") == (True, broker)
    ok(
        await admin(
            "permissions",
            "restore",
            "manifest",
            "--action",
            "query",
            "--operator",
            declaration,
            "--json",
        )
    )
    restored = "restored by the administrator for this operator"
    assert granted(await listed(declaration), "manifest", "query") == (True, restored)
    assert await check(declaration, "manifest", "query") == (True, restored)

    # An enterprise-level revoke removes it from everyone; its restore brings back what each had.
    ok(await admin("permissions", "revoke", "manifest", "--operator", entry, "--json"))
    ok(await admin("permissions", "revoke", "manifest", "--json"))
    for_enterprise = "revoked by the administrator for the enterprise"
    for who in ("admin", entry, declaration):
        for action in ("query", "entry", "declare"):
            assert await check(who, "manifest", action) == (False, for_enterprise)
    assert granted(await listed(declaration), "manifest", "declare") == (False, for_enterprise)
    ok(await admin("permissions", "restore", "manifest", "--json"))
    assert await check("admin", "manifest", "declare") == (
        True,
        "restored by the administrator for the enterprise",
    )
    assert await check(entry, "manifest", "entry") == (False, for_operator)
    assert await check(entry, "manifest", "declare") == (False, MAKER_CHECKER)
    assert await check(declaration, "manifest", "query") == (True, restored)
    assert (await check(declaration, "manifest", "declare"))[0]
    by_account = await decide(
        platform,
        accounts.PERMISSIONS_CHECK,
        {"account": entry, "application": "manifest", "action": "entry"},
    )
    assert (by_account["allowed"], by_account["reason"]) == (False, for_operator)

    # Introspection for the administrator and both operators.
    introspected = (
        ("admin", "admin", None),
        (entry, "operator", "entry"),
        (declaration, "operator", "declaration"),
    )
    for who, role, operator_level in introspected:
        seen = await decide(platform, accounts.SESSION_INTROSPECT, {"token": tokens[who]})
        assert (seen["active"], seen["enterprise"], seen["role"], seen["level"]) == (
            True,
            uscc,
            role,
            operator_level,
        )
        assert seen["token_type"] == "session"
        assert seen["iat"] <= seen["exp"]
        assert seen["username"] == (admin_account if who == "admin" else who)

    # An operator may view the qualifications but not save them.
    shown = ok(await person("declaration")("qualifications", "show", "--json"))
    assert shown["basics"]["uscc"] == uscc
    record = tmp_path / "q.json"
    record.write_text(json.dumps({"inspection": {"registration_number": "5000600002"}}))
    save = await person("declaration")(
        "qualifications", "save", "--version", "0", "--file", str(record), "--json"
    )
    assert (save.code, save.json()["error"]["code"]) == (1, "forbidden")

    # A disabled operator and a logged-out session: refused, inactive.
    ok(await admin("operators", "disable", entry, "--json"))
    assert (await check(entry, "manifest", "query"))[0] is False
    by_account = await decide(
        platform,
        accounts.PERMISSIONS_CHECK,
        {"account": entry, "application": "manifest", "action": "query"},
    )
    assert (by_account["allowed"], by_account["reason"]) == (False, "the account is disabled")
    assert (await decide(platform, accounts.SESSION_INTROSPECT, {"token": tokens[entry]}))[
        "active"
    ] is False
    ok(await person("declaration")("logout", "--json"))
    assert await check(declaration, "manifest", "query") == (False, "the session has ended")
    assert (await decide(platform, accounts.SESSION_INTROSPECT, {"token": tokens[declaration]}))[
        "active"
    ] is False
    assert await check("admin", "manifest", "query") == (
        True,
        "restored by the administrator for the enterprise",
    )
