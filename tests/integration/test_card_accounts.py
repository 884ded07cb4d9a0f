"""Card login, card administrator registration and card operators, against the real accounts service.

The cards here are made in-process (`tests.support.cards`): each signs its challenge with its own
SM2 key exactly as card-gateway has a card do it, so every check the accounts service makes runs
for real, over the real bus, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel
from singlewindow.cardcrypto import (
    SM2PrivateKey,
    card_certificate_fields,
    issue_card_certificate,
)
from singlewindow.contracts import accounts, registration
from singlewindow.contracts.accounts import (
    CardChallenge,
    CardStatusView,
    OnboardingCheckView,
    OperatorView,
    SessionView,
)
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.swctl.platform import Platform

from tests.integration.test_exactly_once import events_of
from tests.support.cards import Card, CardAuthority, challenge, holder
from tests.support.identifiers import application, make_account, make_uscc
from tests.support.platform import Bus, eventually, running_platform

PASSWORD = "Chongqing-Trade-2026"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CardAuthority:
    """The card CA this module's platform trusts."""
    return CardAuthority(tmp_path_factory.mktemp("card-ca"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    authority: CardAuthority,
) -> Iterator[Platform]:
    """The platform with accounts trusting `authority`."""
    data_dir: Path = tmp_path_factory.mktemp(f"platform-{request.param}")
    with running_platform(
        request.param,
        data_dir,
        SW_ACCOUNTS_CARD_TRUST_ANCHOR=str(authority.anchor_path),
        SW_ACCOUNTS_CARD_CRL=str(authority.crl_path),
    ) as running:
        yield running


ReplyT = TypeVar("ReplyT", bound=BaseModel | None)


async def card_request(
    bus: Bus, endpoint: Endpoint[Any, ReplyT], card: Card, **extra: Any
) -> ReplyT:
    """A card request answering a fresh challenge."""
    proof = card.answer(await challenge(bus))
    return await bus.call(endpoint, proof | extra)


async def register_admin(bus: Bus, card: Card, account: str | None = None) -> SessionView:
    session: SessionView = await card_request(
        bus,
        accounts.REGISTER_CARD_ADMIN,
        card,
        admin=holder(account or make_account()),
    )
    return session


async def card_login(bus: Bus, card: Card) -> SessionView:
    session: SessionView = await card_request(bus, accounts.LOGIN_CARD, card)
    return session


async def refused(call: Any) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await call
    return raised.value


async def ready_admin(bus: Bus, authority: CardAuthority) -> tuple[str, SessionView]:
    """A card-registered administrator with the business scope declared."""
    uscc = make_uscc()
    session = await register_admin(bus, authority.issue(uscc=uscc))
    await bus.call(
        accounts.SET_SCOPE,
        {"token": session.token, "codes": ["customs_broker"]},
    )
    return uscc, session


async def audited_card_attempts(bus: Bus, uscc: str, count: int) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        events = await events_of(
            bus, accounts.AUDIT_STREAM.name, accounts.AUTHENTICATION_ATTEMPTED.subject, uscc
        )
        data = [event["data"] for event, _message in events]
        return data if len(data) >= count else None

    return await eventually(found)


# Registration


async def test_a_legal_person_card_registers_an_active_administrator_without_review(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    card = authority.issue(uscc=uscc)
    account = make_account()
    session = await register_admin(nats_bus, card, account)
    assert session.account == account
    assert session.role == "admin"
    assert (session.uscc, session.enterprise_name) == (uscc, card.data["enterprise_name"])
    assert (session.method, session.card_number) == ("card", card.data["card_number"])
    assert session.required_actions == ("business_scope",)
    # Active at once: the card logs in, and so does the password the administrator chose.
    assert (await card_login(nats_bus, card)).account == account
    password_session = await nats_bus.call(
        accounts.LOGIN_PASSWORD, {"account": account, "password": PASSWORD}
    )
    assert password_session.method == "password"

    async def registered() -> list[Any] | None:
        events = await events_of(
            nats_bus, accounts.STREAM.name, accounts.ENTERPRISE_REGISTERED.subject, uscc
        )
        return events or None

    [(event, _message)] = await eventually(registered)
    assert event["data"]["via"] == "card"
    assert event["data"]["admin_account"] == account
    assert event["data"]["application_id"] is None


async def test_an_enterprise_with_an_administrator_is_told_to_log_in_instead(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    before: CardStatusView = await nats_bus.call(accounts.CARD_STATUS, {"uscc": uscc})
    assert not before.has_administrator
    await register_admin(nats_bus, authority.issue(uscc=uscc))
    second_card = authority.issue(uscc=uscc, holder_name="王五")
    after: CardStatusView = await nats_bus.call(
        accounts.CARD_STATUS,
        {"uscc": uscc, "card_number": second_card.data["card_number"]},
    )
    assert (after.has_administrator, after.card_bound) == (True, False)
    conflict = await refused(register_admin(nats_bus, second_card))
    assert conflict.code is ErrorCode.CONFLICT
    assert conflict.message == "enterprise already has an administrator; log in instead"
    # Nor can the enterprise now be registered cardless.
    content = application(uscc=uscc)
    cardless = await refused(nats_bus.call(registration.SUBMIT_CARDLESS, content))
    assert cardless.code is ErrorCode.CONFLICT
    assert "already has an administrator" in cardless.message


async def test_two_legal_person_cards_registering_at_once_make_one_administrator(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    for _round in range(3):
        uscc = make_uscc()
        cards = [authority.issue(uscc=uscc, holder_name=f"法人{i}") for i in range(4)]
        proofs = [card.answer(await challenge(nats_bus)) for card in cards]
        outcomes = await asyncio.gather(
            *(
                nats_bus.call(
                    accounts.REGISTER_CARD_ADMIN,
                    proof | {"admin": holder(make_account())},
                )
                for proof in proofs
            ),
            return_exceptions=True,
        )
        sessions = [o for o in outcomes if isinstance(o, SessionView)]
        refusals = [o for o in outcomes if isinstance(o, DomainError)]
        assert len(sessions) == 1, outcomes
        assert len(refusals) == 3, outcomes
        assert {(r.code, r.message) for r in refusals} == {
            (ErrorCode.CONFLICT, "enterprise already has an administrator; log in instead")
        }
        check: OnboardingCheckView = await nats_bus.call(
            accounts.ONBOARDING_CHECK, {"uscc": uscc, "account": "nobody_x"}
        )
        assert check.uscc_registered


async def test_an_operator_card_cannot_register_an_administrator(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    card = authority.issue(uscc=make_uscc(), card_type="operator", level="declaration")
    refusal = await refused(register_admin(nats_bus, card))
    assert refusal.code is ErrorCode.CARD_REFUSED
    assert "only a legal-person card registers" in refusal.message


async def test_a_card_whose_certificate_states_no_type_cannot_register_an_administrator(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    card = authority.issue(
        uscc=make_uscc(), card_type="operator", level="entry", certify_type=False
    )
    claimed = card.with_data(card_type="legal-person", operator_level=None)
    refusal = await refused(register_admin(nats_bus, claimed))
    assert (refusal.code, refusal.message) == (
        ErrorCode.CARD_REFUSED,
        "certificate does not state the card type",
    )
    status: CardStatusView = await nats_bus.call(
        accounts.CARD_STATUS, {"uscc": card.data["enterprise_uscc"]}
    )
    assert not status.has_administrator


async def test_a_weak_administrator_password_is_refused_without_spending_the_challenge(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    card = authority.issue(uscc=make_uscc())
    issued = await challenge(nats_bus)
    refusal = await refused(
        nats_bus.call(
            accounts.REGISTER_CARD_ADMIN,
            card.answer(issued) | {"admin": holder(make_account(), password="password")},
        )
    )
    assert refusal.code is ErrorCode.INVALID
    assert [f.path for f in refusal.fields] == ["admin.password"]
    # The challenge was not spent on a request that could not succeed.
    session = await nats_bus.call(
        accounts.REGISTER_CARD_ADMIN,
        card.answer(issued) | {"admin": holder(make_account())},
    )
    assert session.role == "admin"


# Card login and what it checks


async def test_an_unbound_card_is_told_to_register_or_bind(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    refusal = await refused(card_login(nats_bus, authority.issue(uscc=make_uscc())))
    assert refusal.code is ErrorCode.CARD_REFUSED
    assert refusal.message == (
        "this card is not bound to an account; register with it or bind it under My IC card"
    )


async def test_a_card_from_an_untrusted_ca_is_refused(
    nats_bus: Bus, authority: CardAuthority, tmp_path: Path
) -> None:
    uscc = make_uscc()
    genuine = authority.issue(uscc=uscc)
    await register_admin(nats_bus, genuine)
    # A look-alike CA (same name, own key) issues a card with the genuine card's identity.
    impostor_ca = CardAuthority(tmp_path / "impostor")
    forged = impostor_ca.issue(uscc=uscc)
    forged.data = genuine.data
    forged.certificate = _same_subject(impostor_ca, genuine, forged)
    refusal = await refused(card_login(nats_bus, forged))
    assert refusal.code is ErrorCode.CARD_REFUSED
    assert refusal.message == "certificate is not issued by a trusted CA"


async def test_an_expired_certificate_is_refused(nats_bus: Bus, authority: CardAuthority) -> None:
    refusal = await refused(register_admin(nats_bus, authority.expired(uscc=make_uscc())))
    assert refusal.code is ErrorCode.CARD_REFUSED
    assert refusal.message == "certificate has expired"


async def test_a_revoked_certificate_is_refused_as_soon_as_the_crl_says_so(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    card = authority.issue(uscc=make_uscc())
    await register_admin(nats_bus, card)
    assert (await card_login(nats_bus, card)).method == "card"
    authority.revoke(card)  # a new CRL file; the service is not restarted
    refusal = await refused(card_login(nats_bus, card))
    assert refusal.code is ErrorCode.CARD_REFUSED
    assert refusal.message == "certificate has been revoked"


async def test_card_data_that_differs_from_the_certificate_is_refused(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    card = authority.issue(uscc=uscc)
    await register_admin(nats_bus, card)
    cases = {
        "holder name": card.with_data(holder_name="赵六"),
        "enterprise USCC": card.with_data(enterprise_uscc=make_uscc()),
        "enterprise name": card.with_data(enterprise_name="另一家公司"),
        "card number": card.with_data(card_number="8800000000000001"),
        "card type": card.with_data(card_type="operator", operator_level="declaration"),
    }
    for what, edited in cases.items():
        refusal = await refused(card_login(nats_bus, edited))
        assert refusal.code is ErrorCode.CARD_REFUSED
        assert refusal.message == (
            f"card data does not match the card's certificate: the {what} differs"
        )


async def test_an_operator_level_raised_in_the_data_file_is_refused(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    uscc, admin = await ready_admin(nats_bus, authority)
    card = authority.issue(uscc=uscc, card_type="operator", level="entry")
    refusal = await refused(
        card_request(
            nats_bus,
            accounts.ADD_CARD_OPERATOR,
            card.with_data(operator_level="declaration"),
            token=admin.token,
            operator=holder(make_account("operator")),
        )
    )
    assert refusal.code is ErrorCode.CARD_REFUSED
    assert refusal.message.endswith("the operator level differs")


async def test_a_replayed_answer_is_refused(nats_bus: Bus, authority: CardAuthority) -> None:
    card = authority.issue(uscc=make_uscc())
    await register_admin(nats_bus, card)
    proof = card.answer(await challenge(nats_bus))
    await nats_bus.call(accounts.LOGIN_CARD, proof)
    refusal = await refused(nats_bus.call(accounts.LOGIN_CARD, proof))
    assert refusal.code is ErrorCode.CARD_REFUSED
    assert refusal.message == "challenge was already used; ask for a new one"


async def test_an_unknown_challenge_is_refused(nats_bus: Bus, authority: CardAuthority) -> None:
    card = authority.issue(uscc=make_uscc())
    made_up = CardChallenge(
        challenge_id="chl_" + "A" * 32,
        challenge=base64.b64encode(bytes(32)).decode(),
        expires_at=_now(),
    )
    refusal = await refused(nats_bus.call(accounts.LOGIN_CARD, card.answer(made_up)))
    assert refusal.message == "challenge is unknown; ask for a new one"


async def test_a_signature_that_does_not_match_the_certificate_is_refused(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    card = authority.issue(uscc=make_uscc())
    await register_admin(nats_bus, card)
    stolen_certificate = Card(card.data, SM2PrivateKey.generate(), card.certificate)
    cases = {
        "another key": stolen_certificate.answer(await challenge(nats_bus)),
        "other bytes": card.answer(await challenge(nats_bus))
        | {"signature": base64.b64encode(card.key.sign(b"something else")).decode()},
    }
    for case, proof in cases.items():
        refusal = await refused(nats_bus.call(accounts.LOGIN_CARD, proof))
        assert refusal.code is ErrorCode.CARD_REFUSED, case
        assert refusal.message == "signature does not match the certificate", case


async def test_every_card_attempt_is_audited_without_secrets(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    card = authority.issue(uscc=uscc)
    session = await register_admin(nats_bus, card)
    await card_login(nats_bus, card)
    await refused(card_login(nats_bus, card.with_data(holder_name="赵六")))
    attempts = await audited_card_attempts(nats_bus, uscc, 3)
    assert [(a["purpose"], a["outcome"]) for a in attempts] == [
        ("register-admin", "succeeded"),
        ("login", "succeeded"),
        ("login", "failed"),
    ]
    assert all(a["method"] == "card" for a in attempts)
    assert all(a["card_number"] == card.data["card_number"] for a in attempts)
    assert attempts[0]["account"] == session.account
    assert attempts[2]["reason"].startswith("card data does not match")
    assert PASSWORD not in str(attempts)
    assert card.data["holder_id_number"] not in str(attempts)


async def test_a_card_session_ends_when_the_crl_revokes_its_card(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    card = authority.issue(uscc=make_uscc())
    session = await register_admin(nats_bus, card)
    shown: SessionView = await nats_bus.call(accounts.SHOW_SESSION, {"token": session.token})
    assert shown.method == "card"
    authority.revoke(card)  # a new CRL file; the service is not restarted
    refusal = await refused(nats_bus.call(accounts.SHOW_SESSION, {"token": session.token}))
    assert (refusal.code, refusal.message) == (
        ErrorCode.UNAUTHENTICATED,
        "the card of this session has been revoked; the session has ended",
    )


def test_the_accounts_service_refuses_to_start_in_production_without_a_crl(
    authority: CardAuthority, tmp_path: Path
) -> None:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SW_ACCOUNTS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}",
        "SW_ACCOUNTS_CARD_TRUST_ANCHOR": str(authority.anchor_path),
    }
    started = subprocess.run(
        [sys.executable, "-m", "singlewindow.accounts"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-1] == (
        "accounts service not started: card login needs the card CA's revocation list: set "
        "SW_ACCOUNTS_CARD_CRL (or leave SW_ACCOUNTS_CARD_TRUST_ANCHOR unset for no card login; "
        "SW_ACCOUNTS_ENVIRONMENT=development allows no CRL, for development only)"
    )
    assert "Traceback" not in started.stderr


async def test_a_card_session_ends_with_the_account_like_any_other(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    card = authority.issue(uscc=make_uscc())
    await register_admin(nats_bus, card)
    session = await card_login(nats_bus, card)
    shown: SessionView = await nats_bus.call(accounts.SHOW_SESSION, {"token": session.token})
    assert (shown.method, shown.card_number) == ("card", card.data["card_number"])
    assert await nats_bus.raw(accounts.LOGOUT, json.dumps({"token": session.token}).encode()) == {
        "result": None
    }
    ended = await refused(nats_bus.call(accounts.SHOW_SESSION, {"token": session.token}))
    assert ended.code is ErrorCode.UNAUTHENTICATED


# Card operators


async def test_an_administrator_adds_an_operator_with_an_operator_card_of_the_enterprise(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    uscc, admin = await ready_admin(nats_bus, authority)
    card = authority.issue(uscc=uscc, card_type="operator", level="entry", holder_name="周七")
    account = make_account("operator")
    operator: OperatorView = await card_request(
        nats_bus,
        accounts.ADD_CARD_OPERATOR,
        card,
        token=admin.token,
        operator=holder(account) | {"name": "周七", "level": "entry"},
    )
    assert (operator.account, operator.role, operator.operator_level) == (
        account,
        "operator",
        "entry",
    )
    assert (operator.uscc, operator.status) == (uscc, "active")
    assert operator.card_number == card.data["card_number"]
    assert operator.id_number_masked == "110105********002X"
    session = await card_login(nats_bus, card)
    assert (session.account, session.role, session.operator_level) == (
        account,
        "operator",
        "entry",
    )
    assert session.required_actions == ()

    async def added() -> list[Any] | None:
        events = await events_of(
            nats_bus, accounts.STREAM.name, accounts.OPERATOR_ADDED.subject, uscc
        )
        return events or None

    [(event, _message)] = await eventually(added)
    assert event["data"] | {"card_number": None} == {
        "uscc": uscc,
        "account": account,
        "name": "周七",
        "level": "entry",
        "via": "card",
        "card_number": None,
        "added_by": admin.account,
    }


async def test_an_operator_card_of_another_enterprise_is_refused(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    _uscc, admin = await ready_admin(nats_bus, authority)
    foreign = authority.issue(uscc=make_uscc(), card_type="operator", level="entry")
    refusal = await refused(
        card_request(
            nats_bus,
            accounts.ADD_CARD_OPERATOR,
            foreign,
            token=admin.token,
            operator=holder(make_account("operator")),
        )
    )
    assert refusal.code is ErrorCode.CARD_REFUSED
    assert refusal.message == "this card belongs to another enterprise"


async def test_operator_cards_are_added_by_a_ready_administrator_only(
    nats_bus: Bus, authority: CardAuthority
) -> None:
    uscc = make_uscc()
    fresh_admin = await register_admin(nats_bus, authority.issue(uscc=uscc))
    card = authority.issue(uscc=uscc, card_type="operator", level="declaration")

    async def add(token: str, card: Card) -> OperatorView:
        view: OperatorView = await card_request(
            nats_bus,
            accounts.ADD_CARD_OPERATOR,
            card,
            token=token,
            operator=holder(make_account("operator")),
        )
        return view

    pending = await refused(add(fresh_admin.token, card))
    assert pending.code is ErrorCode.ACTION_REQUIRED  # the business scope comes first
    await nats_bus.call(
        accounts.SET_SCOPE,
        {"token": fresh_admin.token, "codes": ["customs_broker"]},
    )
    operator = await add(fresh_admin.token, card)
    assert operator.operator_level == "declaration"
    operator_session = await card_login(nats_bus, card)
    another = authority.issue(uscc=uscc, card_type="operator", level="entry")
    forbidden = await refused(add(operator_session.token, another))
    assert forbidden.code is ErrorCode.FORBIDDEN
    again = await refused(add(fresh_admin.token, card))
    assert again.code is ErrorCode.CONFLICT
    assert "already bound" in again.message
    legal_person = authority.issue(uscc=uscc, holder_name="另一位法人")
    wrong_kind = await refused(add(fresh_admin.token, legal_person))
    assert wrong_kind.code is ErrorCode.CARD_REFUSED
    assert "operator is added with their own operator card" in wrong_kind.message


def _same_subject(impostor: CardAuthority, genuine: Card, forged: Card) -> bytes:
    """A certificate by `impostor` for the forged card's key, with the genuine card's subject."""
    identity = card_certificate_fields(genuine.certificate).identity
    return issue_card_certificate(
        impostor.key, impostor.certificate, forged.key.public_key, identity
    )


def _now() -> datetime:
    return datetime.now(UTC)
