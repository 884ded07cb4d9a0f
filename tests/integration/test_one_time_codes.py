"""One-time codes through swctl on the real stack: an individual registers, reads the code the
development notifier received (`swctl dev messages`), activates and logs in; changes its mobile
with a code to the new number; a wrong and a reused code are refused. The codes are in the
notification stream alone: not in SW_ACCOUNTS, SW_AUDIT or any service's log."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow.contracts import accounts
from singlewindow.swctl.platform import Platform
from singlewindow.swctl.up import collect_status

from tests.support.identifiers import make_account
from tests.support.platform import connect, eventually
from tests.support.swctl import Result, Swctl

PASSWORD = "Chongqing-Person-2026"
MOBILE = "13700137001"
NEW_MOBILE = "13800138001"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "person.json"


def ok(result: Result) -> Any:
    assert result.code == 0, (result.code, result.stdout, result.stderr)
    return result.json()


def refused(result: Result, code: str) -> str:
    assert result.code == 1, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    error = result.json()["error"]
    assert error["code"] == code, result.stdout
    return str(error["message"])


async def code_sent_to(swctl: Swctl, number: str, kind: str, count: int) -> str:
    """The code in the `count`-th message of `kind` to `number`, once the notifier wrote it."""

    async def written() -> str | None:
        result = await asyncio.to_thread(swctl, "dev", "messages", "--to", number, "--json")
        found = [m for m in ok(result) if m["kind"] == kind]
        if len(found) < count:
            return None
        match = re.search(r"\b([0-9]{6})\b", found[count - 1]["text"])
        assert match is not None
        return match.group(1)

    return await eventually(written)


async def stream_bodies(platform: Platform, stream: str) -> list[bytes]:
    """Every message kept in `stream`, read as the operator does (ordered consumer)."""
    nc = await connect(platform, "operator")
    try:
        js = nc.jetstream(timeout=5)
        info = await js.stream_info(stream)
        subscription = await js.subscribe(
            ">",
            stream=stream,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        bodies = [(await subscription.next_msg(timeout=5)).data for _ in range(info.state.messages)]
        await subscription.unsubscribe()
        return bodies
    finally:
        await nc.close()


async def test_an_individual_activates_logs_in_and_changes_mobile_by_code_never_leaked(
    platform: Platform, tmp_path: Path
) -> None:
    swctl = Swctl(platform.config.nats_url, tmp_path / "person", platform.config.data_dir)
    name = make_account("person")
    # Each backend's platform is its own, but the numbers are throttled per platform: fresh ones.
    suffix = name[-4:].translate(str.maketrans("abcdef", "012345"))
    mobile, new_mobile = MOBILE[:-4] + suffix, NEW_MOBILE[:-4] + suffix
    person = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    person |= {"account": name, "mobile": mobile, "password": PASSWORD}
    person_file = tmp_path / "person.json"
    person_file.write_text(json.dumps(person, ensure_ascii=False), encoding="utf-8")

    sent = ok(swctl("register", "individual", "--file", str(person_file), "--json"))
    assert (sent["account"], sent["purpose"]) == (name, "individual_activation")
    refused(
        swctl("login", "--account", name, "--password-stdin", "--json", stdin=PASSWORD + "\n"),
        "forbidden",
    )
    activation = await code_sent_to(swctl, mobile, "individual_activation", 1)
    activated = ok(swctl("register", "verify", "--account", name, activation, "--json"))
    assert activated["status"] == "active"
    refused(swctl("register", "verify", "--account", name, activation, "--json"), "conflict")

    ok(swctl("login", "--account", name, "--password-stdin", "--json", stdin=PASSWORD + "\n"))
    me = ok(swctl("account", "show", "--json"))
    assert (me["role"], me["uscc"], me["mobile_masked"]) == (
        "individual",
        None,
        mobile[:3] + "****" + mobile[-4:],
    )
    refused(swctl("scope", "options", "--json"), "forbidden")

    changing = ok(swctl("mobile", "change", new_mobile, "--json"))
    assert changing["to_masked"] == new_mobile[:3] + "****" + new_mobile[-4:]
    code = await code_sent_to(swctl, new_mobile, "mobile_change", 1)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert (
        refused(swctl("mobile", "verify", wrong, "--json"), "invalid") == "wrong code; 4 tries left"
    )
    changed = ok(swctl("mobile", "verify", code, "--json"))
    assert changed["mobile_masked"] == changing["to_masked"]
    reused = refused(swctl("mobile", "verify", code, "--json"), "invalid")
    assert reused == "this code was already used; ask for a new one"
    plain = swctl("mobile", "change", "12345")
    assert plain.code == 1
    assert "mobile" in plain.stderr

    # The codes went to the notification stream alone.
    codes = {activation, code}
    audit = await stream_bodies(platform, accounts.AUDIT_STREAM.name)
    public = await stream_bodies(platform, accounts.STREAM.name)
    attempts = [json.loads(body)["data"] for body in audit]
    assert {
        (a["purpose"], a["outcome"]) for a in attempts if a.get("method") == "one-time-code"
    } >= {
        ("individual_activation", "succeeded"),
        ("mobile_change", "failed"),
    }
    assert any(json.loads(body)["type"] == accounts.INDIVIDUAL_REGISTERED.type for body in public)
    for body in audit + public:
        for secret in codes:
            assert not re.search(rf"(?<![0-9]){secret}(?![0-9])", body.decode()), body
    logs = {
        path.name: path.read_text(errors="replace")
        for path in (platform.config.data_dir / "log").glob("*.log")
    }
    assert {"accounts.log", "notifier.log"} <= set(logs)
    notifier = collect_status(platform.config.data_dir)["notifier"]
    assert notifier["state"] == "running"
    assert stat.S_IMODE(os.stat(notifier["messages"]).st_mode) == 0o600
    for log_name, text in logs.items():
        for secret in codes:
            assert not re.search(rf"(?<![0-9.]){secret}(?![0-9])", text), log_name
