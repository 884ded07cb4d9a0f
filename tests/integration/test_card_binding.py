"""My IC card end to end, as a user drives it with swctl: a cardless administrator binds a
legal-person card of its enterprise, logs in with it, and unbinds it with its password.

Everything is real, as in `test_card_end_to_end`: swctl as its own process, card-gateway reaching
virtual E-Port cards through pyscard, pcscd and the vpcd reader, the accounts service checking each
card's answer against the platform's development CA, NATS and the database (SQLite, PostgreSQL).
"""

from __future__ import annotations

import asyncio

from singlewindow.contracts import accounts

from tests.integration.test_card_end_to_end import PIN, Desk, desk, other_desk, platform
from tests.integration.test_exactly_once import approved_and_registered, events_of
from tests.support.identifiers import application, make_uscc
from tests.support.platform import Bus, eventually
from tests.support.swctl import Result

__all__ = ["desk", "platform"]  # the fixtures: this module's own platform with card readers

PASSWORD = "Chongqing-Trade-2026"


async def test_a_cardless_administrator_binds_its_enterprises_card_and_unbinds_it(
    desk: Desk, nats_bus: Bus, reviewer: str
) -> None:
    content = application(password=PASSWORD)
    account = content["admin"]["account"]
    uscc = await approved_and_registered(nats_bus, content, reviewer)
    swctl = desk.swctl

    async def run(*args: str, stdin: str | None = None) -> Result:
        return await asyncio.to_thread(swctl, *args, stdin=stdin)

    logged_in = await run("login", "--account", account, "--password-stdin", stdin=PASSWORD)
    assert logged_in.code == 0, logged_in.stderr
    assert (await run("scope", "set", "customs_broker")).code == 0
    none = await run("card", "show")
    assert none.stdout.startswith(f"no card bound to {account}")

    # A card of another enterprise is refused.
    desk.insert(await asyncio.to_thread(desk.issue, make_uscc()))
    foreign = await run("card", "bind", "--pin-stdin", "--json", stdin=PIN + "\n")
    assert foreign.code == 1
    assert foreign.json()["error"] == {
        "code": "card_refused",
        "message": "this card belongs to another enterprise",
        "fields": [],
    }

    # The enterprise's legal-person card is bound, once.
    card = await asyncio.to_thread(desk.issue, uscc)
    desk.insert(card)
    bound = await run("card", "bind", "--pin-stdin", "--json", stdin=PIN + "\n")
    assert bound.code == 0, bound.stderr
    assert bound.json()["card_number"] == card
    again = await run("card", "bind", "--pin-stdin", "--json", stdin=PIN + "\n")
    assert again.code == 1
    assert again.json()["error"]["code"] == "conflict"
    assert "already bound to your account" in again.stderr
    shown = await run("card", "show", "--json")
    assert shown.json()["binding"]["card_type"] == "legal-person"
    plain = (await run("card", "show")).stdout
    assert f"card number:  {card}" in plain
    assert "certificate:  serial " in plain

    # The card now logs in to the administrator's account.
    card_desk = other_desk(desk, "card-desk")
    card_login = await asyncio.to_thread(card_desk.login)
    assert card_login.code == 0, card_login.stderr
    assert (card_login.json()["account"], card_login.json()["method"]) == (account, "card")

    # Unbinding takes the current password; then the card's session has ended.
    wrong = await run("card", "unbind", "--password-stdin", "--json", stdin="not-it\n")
    assert wrong.code == 1
    assert wrong.json()["error"]["message"] == "the current password is incorrect"
    no_password = await run("card", "unbind", "--password-stdin")
    assert no_password.code == 2
    assert (await asyncio.to_thread(card_desk.swctl, "whoami")).code == 0
    unbound = await run("card", "unbind", "--password-stdin", stdin=PASSWORD + "\n")
    assert unbound.code == 0, unbound.stderr
    assert f"unbound card {card} from {account}; 1 card session ended" in unbound.stdout
    ended = await asyncio.to_thread(card_desk.swctl, "whoami", "--json")
    assert ended.code == 1
    assert ended.json()["error"]["code"] == "unauthenticated"
    refused = await asyncio.to_thread(card_desk.login)
    assert refused.code == 1
    assert "this card is not bound to an account" in refused.stderr

    async def announced() -> list[str] | None:
        found = [
            event["type"]
            for spec in (accounts.CARD_BOUND, accounts.CARD_UNBOUND)
            for event, _message in await events_of(
                nats_bus, accounts.STREAM.name, spec.subject, uscc
            )
        ]
        return found if len(found) == 2 else None

    assert await eventually(announced) == [accounts.CARD_BOUND.type, accounts.CARD_UNBOUND.type]


async def test_two_cards_bound_to_one_account_at_once_make_one_binding(
    desk: Desk, nats_bus: Bus, reviewer: str
) -> None:
    content = application(password=PASSWORD)
    uscc = await approved_and_registered(nats_bus, content, reviewer)
    swctl = desk.swctl
    login = await asyncio.to_thread(
        swctl, "login", "--account", content["admin"]["account"], "--password-stdin", stdin=PASSWORD
    )
    assert login.code == 0, login.stderr
    assert (await asyncio.to_thread(swctl, "scope", "set", "customs_broker")).code == 0
    for reader, holder_name in ((0, "法人甲"), (1, "法人乙")):
        desk.insert(await asyncio.to_thread(desk.issue, uscc, holder_name=holder_name), reader)

    def bind(reader: int) -> Result:
        return swctl(
            "card",
            "bind",
            "--reader",
            desk.reader_name(reader),
            "--pin-stdin",
            "--json",
            stdin=PIN + "\n",
        )

    results = await asyncio.gather(asyncio.to_thread(bind, 0), asyncio.to_thread(bind, 1))
    assert sorted(r.code for r in results) == [0, 1], [r.stderr for r in results]
    [bound] = [r for r in results if r.code == 0]
    [refused] = [r for r in results if r.code == 1]
    assert refused.json()["error"]["code"] == "conflict"
    assert "one card per account" in refused.stderr
    shown = await asyncio.to_thread(swctl, "card", "show", "--json")
    assert shown.json()["binding"]["card_number"] == bound.json()["card_number"]
