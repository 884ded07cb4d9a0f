"""The accounts service in the fast tier: its handlers on a temporary SQLite file, a clock the test
moves, argon2id at its cheapest, and a card CA of the test's own.

    async with accounts_runtime(tmp_path, clock, authority) as deps:
        card, session = await card_admin(deps, authority)
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from singlewindow.accounts.cards import card_challenge
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.enterprises import register_admin_by_card, register_approved_enterprise
from singlewindow.accounts.scope import set_scope
from singlewindow.accounts.settings import Settings
from singlewindow.accounts.tables import metadata
from singlewindow.contracts import registration
from singlewindow.contracts.accounts import (
    BusinessScope,
    RegisterCardAdmin,
    RequestCardChallenge,
    SessionView,
    SetScope,
)
from singlewindow.contracts.common import EnterpriseInfo
from singlewindow.contracts.registration import ApplicationDecided, Onboarding
from singlewindow.runtime.clock import ManualClock
from singlewindow.runtime.passwords import Argon2Parameters, PasswordHashing
from sqlalchemy import Connection, event

from tests.support.cards import Card, CardAuthority, holder
from tests.support.handlers import local_service
from tests.support.identifiers import application, make_account, make_uscc

PASSWORD = "Chongqing-Trade-2026"
CHEAP_ARGON2 = Argon2Parameters(memory_kib=64, time_cost=1)
"""Far below any real cost: the fast tier pins rules, not the hash's strength."""


@asynccontextmanager
async def accounts_runtime(
    directory: Path,
    clock: ManualClock,
    authority: CardAuthority,
    *,
    passwords: PasswordHashing | None = None,
    **settings: Any,
) -> AsyncIterator[AccountsRuntime]:
    """The accounts handlers' runtime, as `app.py` builds it, trusting `authority`'s cards."""
    config = Settings(
        card_trust_anchor=authority.anchor_path,
        card_crl=authority.crl_path,
        **({"throttle_free_failures": 3, "throttle_base_seconds": 1.0} | settings),
    )
    hashing = passwords or PasswordHashing(CHEAP_ARGON2, max_concurrent=2)
    async with local_service("accounts", metadata, directory, clock=clock) as service:
        yield AccountsRuntime.of(service, config, hashing)


async def answer(deps: AccountsRuntime, card: Card) -> dict[str, Any]:
    """The card's proof for a fresh challenge of the service."""
    return card.answer(await card_challenge(RequestCardChallenge(), deps))


async def card_admin(
    deps: AccountsRuntime,
    authority: CardAuthority,
    *,
    uscc: str | None = None,
    account: str | None = None,
    declare_scope: bool = True,
) -> tuple[Card, SessionView]:
    """An administrator registered with a legal-person card, scope declared unless told not to."""
    card = authority.issue(uscc=uscc or make_uscc())
    request = RegisterCardAdmin.model_validate(
        await answer(deps, card) | {"admin": holder(account or make_account())}
    )
    session = await register_admin_by_card(request, deps)
    if declare_scope:
        await set_scope(SetScope(token=session.token, codes=(BusinessScope.CUSTOMS_BROKER,)), deps)
    return card, session


async def cardless_admin(
    deps: AccountsRuntime, *, password_hash: str | None = None, uscc: str | None = None
) -> str:
    """An administrator created by an approved application; its account name."""
    content = application(uscc=uscc)
    admin = content["admin"]
    onboarding = Onboarding(
        application_id=f"app_{make_account('x')}",
        enterprise=EnterpriseInfo.model_validate(content["enterprise"]),
        admin_account=admin["account"],
        admin_name=admin["name"],
        admin_id_type=admin["id_type"],
        admin_id_number=admin["id_number"],
        admin_mobile="13900000001",
        admin_email=None,
        password_hash=password_hash or await deps.passwords.hash(PASSWORD),
    )
    approved = ApplicationDecided(
        application_id=onboarding.application_id,
        uscc=onboarding.enterprise.uscc,
        enterprise_name=onboarding.enterprise.name,
        admin_account=onboarding.admin_account,
        reason=None,
    )
    decided = registration.APPROVED.make(approved, subject=approved.uscc, source="urn:test")
    async with deps.service.db.transaction() as connection:
        await register_approved_enterprise(onboarding, decided, connection, deps)
    return onboarding.admin_account


@contextmanager
def statements(deps: AccountsRuntime) -> Iterator[list[str]]:
    """What the service sends its database meanwhile: each statement's verb and table.

    `BEGIN DEFERRED` opens a transaction that only reads, `BEGIN IMMEDIATE` one that writes.
    """
    seen: list[str] = []

    def record(
        _connection: Connection, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any
    ) -> None:
        seen.append(_summary(statement))

    engines = deps.service.db.sync_engines  # the async engine's, and the threads' (run, read)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def _summary(statement: str) -> str:
    words = statement.split()
    verb = words[0].upper()
    if verb == "BEGIN":
        return " ".join(words[:2])
    if verb == "SELECT":
        return "SELECT"
    target = re.search(r"^(?:INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)", statement, re.IGNORECASE)
    return f"{verb} {target.group(1)}" if target else verb
