"""Card registration, login and operators end to end, as a user drives them with swctl.

Everything is real: swctl as its own process, card-gateway reaching virtual E-Port cards through
pyscard, pcscd and the vpcd reader, the accounts service checking each card's answer against the
platform's development CA, NATS and the database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from singlewindow.contracts import accounts, card_gateway
from singlewindow.contracts.accounts import CardChallenge, SessionView
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.swctl.platform import Platform
from singlewindow.virtual_card.issuing import DevCA

from tests.support.cards import holder
from tests.support.identifiers import make_account, make_uscc
from tests.support.platform import Bus, running_platform
from tests.support.swctl import Result, Swctl

PIN = "88888888"
ENTERPRISE = "重庆某某贸易有限公司"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The platform with card-gateway, pcscd with the vpcd reader, and the development CA."""
    data_dir: Path = tmp_path_factory.mktemp(f"platform-cards-{request.param}")
    with running_platform(request.param, data_dir, with_cards=True) as running:
        if running.pcscd is None:
            pytest.fail(f"pcscd with the vpcd reader is needed: {running.pcscd_problem}")
        yield running


@dataclass
class Desk:
    """A workstation: swctl with its own saved session, and the platform's card readers."""

    platform: Platform
    swctl: Swctl

    @property
    def data_dir(self) -> list[str]:
        return ["--data-dir", str(self.platform.config.data_dir)]

    def reader_port(self, reader: int) -> str:
        assert self.platform.pcscd is not None
        return str(self.platform.pcscd.port_of(self.platform.pcscd.readers[reader]))

    def reader_name(self, reader: int) -> str:
        assert self.platform.pcscd is not None
        return self.platform.pcscd.readers[reader]

    def issue(self, uscc: str, *extra: str, holder_name: str = "张三") -> str:
        """`swctl card issue`: a new virtual card from the platform's development CA."""
        issued = self.swctl(
            "card",
            "issue",
            *self.data_dir,
            "--uscc",
            uscc,
            "--enterprise-name",
            ENTERPRISE,
            "--holder-name",
            holder_name,
            "--holder-id",
            "11010519491231002X",
            "--json",
            *(extra or ("--type", "legal-person")),
        )
        assert issued.code == 0, issued.stderr
        number: str = issued.json()["card_number"]
        return number

    def insert(self, card: str, reader: int = 0, *, data_dir: list[str] | None = None) -> None:
        inserted = self.swctl(
            "card",
            "insert",
            *(data_dir or self.data_dir),
            card,
            "--reader-port",
            self.reader_port(reader),
        )
        assert inserted.code == 0, inserted.stderr

    def remove(self, reader: int = 0) -> None:
        self.swctl("card", "remove", *self.data_dir, "--reader-port", self.reader_port(reader))

    def details(self, key: str, account: str, **extra: Any) -> str:
        path = self.swctl.config_dir / f"{key}-{account}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({key: holder(account) | extra}, ensure_ascii=False))
        return str(path)

    def register(self, account: str, reader: int = 0) -> Result:
        return self.swctl(
            "register",
            "card",
            "--file",
            self.details("admin", account),
            "--reader",
            self.reader_name(reader),
            "--pin-stdin",
            "--json",
            stdin=PIN + "\n",
        )

    def login(self, pin: str = PIN) -> Result:
        return self.swctl("login", "--card", "--pin-stdin", "--json", stdin=pin + "\n")


@pytest.fixture
def desk(platform: Platform, tmp_path: Path) -> Iterator[Desk]:
    desk = Desk(platform, Swctl(platform.config.nats_url, tmp_path / "swctl"))
    try:
        yield desk
    finally:
        desk.remove(0)
        desk.remove(1)


def other_desk(desk: Desk, name: str) -> Desk:
    return Desk(desk.platform, Swctl(desk.swctl.nats_url, desk.swctl.config_dir.parent / name))


def test_a_legal_person_card_registers_its_administrator_who_adds_a_card_operator(
    desk: Desk,
) -> None:
    uscc = make_uscc()
    desk.insert(desk.issue(uscc))
    admin = make_account()
    registered = desk.register(admin)
    assert registered.code == 0, registered.stderr
    session = registered.json()
    assert (session["account"], session["role"], session["method"]) == (admin, "admin", "card")
    assert "Enterprise, from the card (not editable)" in registered.stderr
    assert uscc in registered.stderr
    # The session was saved, as a password login's is.
    assert desk.swctl("whoami", "--json").json()["account"] == admin
    assert desk.swctl("scope", "set", "customs_broker").code == 0

    logged_in = desk.login()
    assert logged_in.code == 0, logged_in.stderr
    assert logged_in.json()["account"] == admin

    operator_card = desk.issue(uscc, "--type", "operator", "--level", "entry", holder_name="周七")
    desk.insert(operator_card)
    operator = make_account("operator")
    added = desk.swctl(
        "operators",
        "add-card",
        "--file",
        desk.details("operator", operator, name="周七"),
        "--pin-stdin",
        "--json",
        stdin=PIN + "\n",
    )
    assert added.code == 0, added.stderr
    assert (added.json()["account"], added.json()["operator_level"]) == (operator, "entry")

    operator_login = desk.login()
    assert operator_login.code == 0, operator_login.stderr
    assert operator_login.json()["account"] == operator
    assert operator_login.json()["operator_level"] == "entry"


def test_an_enterprise_with_an_administrator_is_offered_login_instead(desk: Desk) -> None:
    uscc = make_uscc()
    desk.insert(desk.issue(uscc))
    assert desk.register(make_account()).code == 0
    desk.insert(desk.issue(uscc, holder_name="王五"))
    again = desk.register(make_account())
    assert again.code == 1
    assert "already has an administrator; log in instead: swctl login --card" in again.stderr
    assert again.json()["error"]["code"] == "conflict"


def test_two_legal_person_cards_of_one_enterprise_registering_at_once_make_one_admin(
    desk: Desk,
) -> None:
    uscc = make_uscc()
    desk.insert(desk.issue(uscc, holder_name="法人甲"), reader=0)
    desk.insert(desk.issue(uscc, holder_name="法人乙"), reader=1)
    second = other_desk(desk, "second-desk")

    async def both() -> list[Result]:
        return list(
            await asyncio.gather(
                asyncio.to_thread(desk.register, make_account(), 0),
                asyncio.to_thread(second.register, make_account(), 1),
            )
        )

    results = asyncio.run(both())
    assert sorted(r.code for r in results) == [0, 1], [r.stderr for r in results]
    [refused] = [r for r in results if r.code == 1]
    assert "already has an administrator; log in instead" in refused.stderr
    assert refused.json()["error"]["code"] == "conflict"


def test_a_revoked_card_no_longer_logs_in(desk: Desk) -> None:
    card = desk.issue(make_uscc())
    desk.insert(card)
    assert desk.register(make_account()).code == 0
    assert desk.login().code == 0
    revoked = desk.swctl("card", "revoke", *desk.data_dir, card)
    assert revoked.code == 0, revoked.stderr
    refused = desk.login()
    assert refused.code == 1
    assert "refused: certificate has been revoked" in refused.stderr


def test_a_card_session_is_refused_once_the_dev_ca_revokes_its_card(desk: Desk) -> None:
    card = desk.issue(make_uscc())
    desk.insert(card)
    assert desk.register(make_account()).code == 0
    assert desk.login().code == 0
    assert desk.swctl("whoami").code == 0
    revoked = desk.swctl("card", "revoke", *desk.data_dir, card)
    assert revoked.code == 0, revoked.stderr
    ended = desk.swctl("whoami", "--json")
    assert ended.code == 1
    assert ended.json()["error"] == {
        "code": "unauthenticated",
        "message": "the card of this session has been revoked; the session has ended",
        "fields": [],
    }


def test_a_card_whose_certificate_states_no_type_cannot_register(desk: Desk) -> None:
    ca = DevCA.open(desk.platform.config.dev_ca_dir)
    issued = ca.issue_card(
        desk.platform.config.cards_dir,
        card_type="legal-person",
        uscc=make_uscc(),
        enterprise_name=ENTERPRISE,
        holder_name="张三",
        holder_id_number="11010519491231002X",
        certify_card_type=False,
    )
    desk.insert(str(issued.path))
    refused = desk.register(make_account())
    assert refused.code == 1
    assert "refused: certificate does not state the card type" in refused.stderr


def test_the_last_pin_try_is_used_only_when_asked_for(desk: Desk) -> None:
    desk.insert(desk.issue(make_uscc(), "--type", "legal-person", "--tries", "2"))
    assert desk.register(make_account()).code == 0
    assert desk.login("12345678").json()["error"]["code"] == "pin_incorrect"  # 1 try left
    held_back = desk.login()
    assert held_back.code == 1
    assert held_back.json()["error"]["code"] == "action_required"
    assert "--last-pin-try" in held_back.stderr
    used = desk.swctl(
        "login", "--card", "--pin-stdin", "--last-pin-try", "--json", stdin=PIN + "\n"
    )
    assert used.code == 0, used.stderr


def test_an_expired_card_cannot_register(desk: Desk) -> None:
    desk.insert(desk.issue(make_uscc(), "--type", "legal-person", "--expired"))
    refused = desk.register(make_account())
    assert refused.code == 1
    assert "refused: certificate has expired" in refused.stderr


def test_a_card_from_another_ca_is_refused(desk: Desk, tmp_path: Path) -> None:
    elsewhere = ["--data-dir", str(tmp_path / "another-platform")]
    issued = desk.swctl(
        "card",
        "issue",
        *elsewhere,
        "--type",
        "legal-person",
        "--uscc",
        make_uscc(),
        "--enterprise-name",
        ENTERPRISE,
        "--holder-name",
        "张三",
        "--holder-id",
        "11010519491231002X",
        "--json",
    )
    assert issued.code == 0, issued.stderr
    desk.insert(issued.json()["card_number"], data_dir=elsewhere)
    try:
        refused = desk.register(make_account())
    finally:
        desk.swctl("card", "remove", *elsewhere, "--reader-port", desk.reader_port(0))
    assert refused.code == 1
    assert "refused: certificate is not issued by a trusted CA" in refused.stderr


def test_a_wrong_pin_is_refused_by_the_card_before_anything_reaches_accounts(desk: Desk) -> None:
    desk.insert(desk.issue(make_uscc()))
    assert desk.register(make_account()).code == 0
    wrong = desk.login("12345678")
    assert wrong.code == 1
    assert "tries left" in wrong.stderr
    assert wrong.json()["error"]["code"] == "pin_incorrect"
    malformed = desk.login("1234")
    assert malformed.code == 1
    assert "PIN" in malformed.stderr
    assert desk.login().code == 0


async def test_a_replayed_card_signature_is_refused(desk: Desk, nats_bus: Bus) -> None:
    desk.insert(desk.issue(make_uscc()))
    assert (await asyncio.to_thread(desk.register, make_account())).code == 0
    issued: CardChallenge = await nats_bus.call(accounts.CARD_CHALLENGE, {})
    signed = await nats_bus.call(
        card_gateway.SIGN_CHALLENGE,
        {"pin": PIN, "challenge": issued.challenge},
    )
    proof = {
        "challenge_id": issued.challenge_id,
        "certificate_pem": signed.certificate_pem,
        "card": signed.card.model_dump(mode="json"),
        "signature": signed.signature,
    }
    first: SessionView = await nats_bus.call(accounts.LOGIN_CARD, proof)
    assert first.method == "card"
    with pytest.raises(DomainError) as replayed:
        await nats_bus.call(accounts.LOGIN_CARD, proof)
    assert replayed.value.code is ErrorCode.CARD_REFUSED
    assert replayed.value.message == "challenge was already used; ask for a new one"
