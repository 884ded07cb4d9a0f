"""Customs filing end to end: cardless enterprises file with swctl, a reviewer approves two at
once, each gets its own customs code in the prefix of its form; an integrator reads SW_FILING
with plain nats-py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow.contracts import accounts, registration, review
from singlewindow.swctl.platform import Platform

from tests.support.cards import CardAuthority, challenge, holder
from tests.support.identifiers import application, make_account, make_uscc
from tests.support.platform import Bus, eventually, running_platform
from tests.support.staff import ADMIN_PASSWORD
from tests.support.swctl import Swctl

PASSWORD = "Chongqing-Trade-2026"
DEFAULT = "88888888"
OPERATOR_PASSWORD = "Operator-Own-Passphrase-7"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "filing.json"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CardAuthority:
    """A card CA of the tests' own: its cards sign challenges in-process, as card-gateway has a
    card do it (no PC/SC stack here), and accounts checks them for real."""
    return CardAuthority(tmp_path_factory.mktemp("card-ca"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    authority: CardAuthority,
) -> Iterator[Platform]:
    """The module's platform (conftest's), with accounts trusting `authority`'s cards."""
    data_dir: Path = tmp_path_factory.mktemp(f"platform-{request.param}")
    with running_platform(
        request.param,
        data_dir,
        SW_ACCOUNTS_CARD_TRUST_ANCHOR=str(authority.anchor_path),
        SW_ACCOUNTS_CARD_CRL=str(authority.crl_path),
    ) as running:
        yield running


async def _task(bus: Bus, token: str, reference: str) -> str:
    async def find() -> str | None:
        listed = await bus.call(review.LIST_TASKS, {"token": token, "limit": 500})
        return next((t.task_id for t in listed.tasks if t.reference == reference), None)

    return await eventually(find)


async def _cardless_admin(bus: Bus, service_bus: Bus, reviewer: str, swctl: Swctl) -> str:
    """A cardless enterprise registered and approved; its administrator logged in with swctl,
    scope declared. Its USCC."""
    content = application(password=PASSWORD)
    uscc, account = content["enterprise"]["uscc"], content["admin"]["account"]
    submitted = await bus.call(registration.SUBMIT_CARDLESS, content)
    task = await _task(bus, reviewer, submitted.application_id)
    await bus.call(review.DECIDE_TASK, {"token": reviewer, "task_id": task, "decision": "approve"})

    async def registered() -> bool | None:
        check = await service_bus.call(
            accounts.ONBOARDING_CHECK, {"uscc": uscc, "account": "nobody_x"}
        )
        return True if check.uscc_registered else None

    await eventually(registered)
    login = swctl("login", "--account", account, "--password-stdin", stdin=PASSWORD + "\n")
    assert login.code == 0, login.stderr
    assert swctl("scope", "set", "import_export_consignee").code == 0
    return str(uscc)


async def _filed_events(found: dict[str, str], wanted: int) -> list[dict[str, Any]]:
    """The `filed` events on SW_FILING, as an integrating system reads them (with the
    subscriber's credentials)."""
    nc = await nats.connect(
        found["url"],
        user=found["user"],
        password=found["password"],
        inbox_prefix="_INBOX_subscriber",
    )
    events: list[dict[str, Any]] = []
    try:
        subscription = await nc.jetstream().subscribe(
            "sw.events.filing.filed.v1",
            stream="SW_FILING",
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        async with asyncio.timeout(15):
            while len(events) < wanted:
                message = await subscription.next_msg(timeout=15)
                events.append(json.loads(message.data))
    finally:
        await nc.close()
    return events


async def test_cardless_enterprises_file_and_two_approvals_at_once_get_distinct_codes(
    platform: Platform, nats_bus: Bus, registration_bus: Bus, reviewer: str, tmp_path: Path
) -> None:
    first, second = (
        Swctl(platform.config.nats_url, tmp_path / name, platform.config.data_dir)
        for name in ("first", "second")
    )
    usccs = [
        await _cardless_admin(nats_bus, registration_bus, reviewer, swctl)
        for swctl in (first, second)
    ]

    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"application_type": "file", "unit_type": "temporary"}))
    refused = first("filing", "submit", "--file", str(incomplete), "--json")
    assert refused.code == 1
    named = {f["path"] for f in json.loads(refused.stdout)["error"]["fields"]}
    assert {"division", "postal_code", "legal_representative.id_number"} <= named
    assert first("filing", "status").code == 1  # nothing was stored

    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    branch = tmp_path / "branch.json"
    parent = {"customs_code": "5000969999", "name": "无此单位"}
    branch.write_text(
        json.dumps(example | {"unit_type": "consignee_branch", "parent_unit": parent}),
        encoding="utf-8",
    )
    orphan = second("filing", "submit", "--file", str(branch), "--json")
    assert orphan.code == 1
    assert [f["path"] for f in json.loads(orphan.stdout)["error"]["fields"]] == [
        "parent_unit.customs_code"
    ]
    temporary = tmp_path / "temporary.json"
    temporary.write_text(json.dumps(example | {"unit_type": "temporary"}), encoding="utf-8")
    english = second("filing", "submit", "--file", str(temporary), "--json")
    assert english.code == 1
    assert {f["path"] for f in json.loads(english.stdout)["error"]["fields"]} == {
        "name_en",
        "address_en",
    }

    filings = []
    for swctl in (first, second):
        submitted = swctl("filing", "submit", "--file", str(EXAMPLE), "--json")
        assert submitted.code == 0, submitted.stderr
        assert submitted.json()["state"] == "pending"
        filings.append(submitted.json()["filing_id"])
    tasks = [await _task(nats_bus, reviewer, filing_id) for filing_id in filings]
    shown = await nats_bus.call(review.SHOW_TASK, {"token": reviewer, "task_id": tasks[0]})
    assert shown.kind == "filing"
    assert shown.submission["form"]["legal_representative"]["id_number"] == "110105********002X"
    await asyncio.gather(
        *(
            nats_bus.call(
                review.DECIDE_TASK, {"token": reviewer, "task_id": task, "decision": "approve"}
            )
            for task in tasks
        )
    )

    async def filed(swctl: Swctl) -> dict[str, Any] | None:
        shown = await asyncio.to_thread(swctl, "filing", "show", "--json")
        assert shown.code == 0, shown.stderr
        record: dict[str, Any] = shown.json()
        return record if record["status"] == "filed" else None

    records = [await eventually(partial(filed, swctl)) for swctl in (first, second)]
    codes = [record["customs_code"] for record in records]
    assert len(set(codes)) == 2
    # examples/filing.json: division 500000, economic zone 9 (general), economic type 6
    assert all(len(code) == 10 and code.startswith("500096") for code in codes)
    assert records[0]["applications"][0]["state"] == "approved"

    async def shown_on_enterprise() -> str | None:
        me = await asyncio.to_thread(first, "account", "show", "--json")
        code: str | None = me.json().get("customs_code")
        return code

    assert await eventually(shown_on_enterprise) == codes[0]
    status = first("filing", "status")
    assert status.code == 0
    assert f"customs code: {codes[0]}" in status.stdout

    async def apply(kind: str, content: dict[str, Any], wanted: str) -> dict[str, Any]:
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
        submitted = first("filing", "submit", "--file", str(path), "--json")
        assert submitted.code == 0, submitted.stderr
        task = await _task(nats_bus, reviewer, submitted.json()["filing_id"])
        await nats_bus.call(
            review.DECIDE_TASK, {"token": reviewer, "task_id": task, "decision": "approve"}
        )

        async def applied() -> dict[str, Any] | None:
            shown = await asyncio.to_thread(first, "filing", "show", "--json")
            record: dict[str, Any] = shown.json()
            return record if record["applications"][0]["state"] == "approved" else None

        record = await eventually(applied)
        assert record["status"] == wanted
        return record

    changed = await apply(
        "change", example | {"application_type": "change", "postal_code": "400010"}, "filed"
    )
    assert (changed["form"]["postal_code"], changed["customs_code"]) == ("400010", codes[0])
    declaration = example["declaration"]
    cancel = {"application_type": "cancel", "cancel_reason": "业务终止", "declaration": declaration}
    await apply("cancel", cancel, "cancelled")

    subscriber = json.loads(platform.config.credentials_file("subscriber").read_text())
    events = await _filed_events(subscriber, wanted=2)
    assert {(e["subject"], e["data"]["customs_code"]) for e in events} >= set(
        zip(usccs, codes, strict=True)
    )
    assert all(e["type"] == "cn.singlewindow.filing.filed.v1" for e in events)


async def test_a_platform_administrator_imports_records_line_by_line(
    platform: Platform, reviewer: str, tmp_path: Path
) -> None:
    swctl = Swctl(platform.config.nats_url, tmp_path / "chief", platform.config.data_dir)
    login = swctl("staff", "login", "--account", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    assert login.code == 0, login.stderr
    form = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    del form["application_type"], form["declaration"]
    good = {"enterprise_name": "重庆既往备案有限公司", "customs_code": "5000969001", "form": form}
    records = tmp_path / "records.jsonl"
    records.write_text(
        "\n".join(
            [
                json.dumps(good | {"uscc": make_uscc()}, ensure_ascii=False),
                "{not json",
                json.dumps(good | {"uscc": make_uscc(), "form": form | {"postal_code": "4"}}),
            ]
        ),
        encoding="utf-8",
    )
    first = swctl("filing", "import", "--file", str(records), "--json")
    assert first.code == 0, first.stderr
    report = first.json()
    assert [(o["line"], o["outcome"]) for o in report["outcomes"]] == [
        (1, "imported"),
        (2, "refused"),
        (3, "refused"),
    ]
    assert report["outcomes"][2]["fields"][0]["path"] == "form.postal_code"
    again = swctl("filing", "import", "--file", str(records))
    assert again.code == 0, again.stderr
    assert "0 imported, 1 unchanged, 2 refused" in again.stdout


async def test_a_data_entry_operator_saves_a_draft_but_only_a_declaration_operator_submits(
    platform: Platform, nats_bus: Bus, registration_bus: Bus, reviewer: str, tmp_path: Path
) -> None:
    admin = Swctl(platform.config.nats_url, tmp_path / "admin", platform.config.data_dir)
    await _cardless_admin(nats_bus, registration_bus, reviewer, admin)
    operator = json.loads((EXAMPLE.parent / "operator.json").read_text(encoding="utf-8"))

    def operator_logged_in(level: str) -> tuple[str, Swctl]:
        """An operator of `level` added by the administrator, logged in with 88888888 and its
        password changed."""
        account = make_account(level[:5])
        path = tmp_path / f"{account}.json"
        content = {"operator": operator["operator"] | {"account": account, "level": level}}
        path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
        added = admin("operators", "add", "--file", str(path), "--json")
        assert added.code == 0, added.stderr
        assert added.json()["operator_level"] == level
        swctl = Swctl(platform.config.nats_url, tmp_path / account, platform.config.data_dir)
        first = swctl("login", "--account", account, "--password-stdin", stdin=DEFAULT + "\n")
        assert first.code == 0, first.stderr
        changed = swctl(
            "password", "change", "--password-stdin", stdin=f"{DEFAULT}\n{OPERATOR_PASSWORD}\n"
        )
        assert changed.code == 0, changed.stderr
        return account, swctl

    _, entry = operator_logged_in("entry")
    saved = entry("filing", "drafts", "save", "--file", str(EXAMPLE), "--json")
    assert saved.code == 0, saved.stderr
    shown = admin("filing", "drafts", "show", "--json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["form"]["postal_code"] == "401120"
    refused = entry("filing", "submit", "--file", str(EXAMPLE), "--json")
    assert refused.code == 1, refused.stdout
    error = refused.json()["error"]
    assert error["code"] == "forbidden"
    assert "data-entry operator may save it as a draft" in error["message"]
    assert entry("filing", "status").code == 1  # nothing was submitted

    declarant, declaration = operator_logged_in("declaration")
    submitted = declaration("filing", "submit", "--file", str(EXAMPLE), "--json")
    assert submitted.code == 0, submitted.stderr
    assert submitted.json()["state"] == "pending"
    status = admin("filing", "status", "--json")
    assert status.json()["applicant"] == declarant


async def test_a_card_enterprise_queries_its_imported_record_and_may_change_but_not_file_it(
    platform: Platform, nats_bus: Bus, reviewer: str, authority: CardAuthority, tmp_path: Path
) -> None:
    form = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    del form["application_type"], form["declaration"]
    usccs = {"ours": make_uscc(), "odd": make_uscc()}
    swctls = {}
    for name, uscc in usccs.items():  # two legal-person cards, each carrying a customs code
        code = "5000969101" if name == "ours" else "5000969199"
        card = authority.issue(uscc=uscc).with_data(customs_code=code)
        account = make_account("card")
        proof = card.answer(await challenge(nats_bus))
        await nats_bus.call(accounts.REGISTER_CARD_ADMIN, proof | {"admin": holder(account)})
        swctl = Swctl(platform.config.nats_url, tmp_path / name, platform.config.data_dir)
        login = swctl("login", "--account", account, "--password-stdin", stdin=PASSWORD + "\n")
        assert login.code == 0, login.stderr
        assert swctl("scope", "set", "import_export_consignee").code == 0
        swctls[name] = swctl

    chief = Swctl(platform.config.nats_url, tmp_path / "chief", platform.config.data_dir)
    staff = chief("staff", "login", "--account", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    assert staff.code == 0, staff.stderr
    records = tmp_path / "card-records.jsonl"
    lines = [
        {
            "uscc": uscc,
            "enterprise_name": "重庆某某贸易有限公司",
            "customs_code": code,
            "form": form,
        }
        for uscc, code in ((usccs["ours"], "5000969101"), (usccs["odd"], "5000969102"))
    ]
    records.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines))
    imported = chief("filing", "import", "--file", str(records))
    assert imported.code == 0, imported.stderr
    assert "2 imported" in imported.stdout

    ours = swctls["ours"]
    query = ours("filing", "query")
    assert query.code == 0, query.stderr
    assert "customs code: 5000969101" in query.stdout
    assert "from import" in query.stdout
    assert "warning" not in query.stdout
    first = ours("filing", "submit", "--file", str(EXAMPLE), "--json")
    assert first.code == 1, first.stdout
    assert first.json()["error"]["code"] == "conflict"
    change = tmp_path / "card-change.json"
    content = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    content |= {"application_type": "change", "postal_code": "400010"}
    change.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    changed = ours("filing", "submit", "--file", str(change), "--json")
    assert changed.code == 0, changed.stderr
    assert (changed.json()["application_type"], changed.json()["state"]) == ("change", "pending")

    odd = swctls["odd"]  # its card says 5000969199, the registry 5000969102
    flagged = odd("filing", "query", "--json").json()
    assert (flagged["customs_code"], flagged["card_customs_code"]) == ("5000969102", "5000969199")
    assert "carries customs code 5000969199" in flagged["card_code_problem"]
    refused = odd("filing", "submit", "--file", str(change), "--json")
    assert refused.code == 1
    assert [f["path"] for f in refused.json()["error"]["fields"]] == ["customs_code"]
