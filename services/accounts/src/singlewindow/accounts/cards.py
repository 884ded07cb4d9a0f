"""Cards: challenges, card proofs, card login and card status.

Every card request carries a card's answer to a challenge the accounts service issued. Before
anything else the service checks that answer: the challenge is one it issued, unused and
unexpired (and is spent by this very check, whatever its outcome); the certificate chains to the
trusted CA, is within its validity and is not on the CA's revocation list; the signature over the
challenge verifies with the certificate's key; and the card's data file says what its
certificate says. Each refusal names its reason and is audited.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NoReturn

import structlog
from singlewindow import cardcrypto
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import (
    Account,
    AccountStatus,
    card_data_mismatch,
    card_data_problem,
)
from singlewindow.accounts.login import Logins, open_session
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import (
    ACCOUNT_COLUMNS,
    account_from_row,
    accounts,
    card_bindings,
    card_challenges,
    enterprises,
)
from singlewindow.accounts.trust import Trust
from singlewindow.cardcrypto import CertificateError
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AuthenticationAttempted,
    CardChallenge,
    CardProof,
    CardStatus,
    CardStatusView,
    LoginWithCard,
    RequestCardChallenge,
    Role,
    SessionView,
)
from singlewindow.contracts.card_gateway import CardData, CardType
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.runtime.db import as_utc
from sqlalchemy import bindparam, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    from singlewindow.cardcrypto import CardCertificateFields

log = structlog.get_logger("singlewindow.accounts.cards")

CHALLENGE_BYTES = 32
CHALLENGE_MEMORY = timedelta(minutes=10)
"""How long a spent or expired challenge is remembered, to tell "already used" from "unknown"."""
SIGNATURE_MISMATCH = "signature does not match the certificate"
NOT_BOUND = "this card is not bound to an account; register with it or bind it under My IC card"
OTHER_ENTERPRISE = "this card belongs to another enterprise"


@dataclass(frozen=True)
class ProvenCard:
    """A card that answered a challenge and whose data its certificate vouches for."""

    card: CardData
    certificate: CardCertificateFields


@dataclass(frozen=True)
class StoredChallenge:
    """A card challenge as stored."""

    challenge_id: str
    challenge: str
    expires_at: datetime
    used_at: datetime | None


class Cards:
    """Challenges and card bindings, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def store_challenge(
        self, challenge_id: str, challenge: str, now: datetime, expires_at: datetime
    ) -> None:
        """Keep a new challenge until it is used or expires; forget long-expired ones."""
        await self.connection.execute(_FORGET_CHALLENGES, {"before": now - CHALLENGE_MEMORY})
        await self.connection.execute(
            _STORE_CHALLENGE,
            {
                "challenge_id": challenge_id,
                "challenge": challenge,
                "created_at": now,
                "expires_at": expires_at,
            },
        )

    async def use_challenge(self, challenge_id: str, now: datetime) -> str | None:
        """Mark an unused, unexpired challenge used, atomically; return it (None: not usable)."""
        result = await self.connection.execute(_USE_CHALLENGE, {"id": challenge_id, "now": now})
        challenge: str | None = result.scalar_one_or_none()
        return challenge

    async def challenge(self, challenge_id: str) -> StoredChallenge | None:
        """A challenge by id, used or not."""
        result = await self.connection.execute(_CHALLENGE, {"id": challenge_id})
        row = result.mappings().first()
        if row is None:
            return None
        return StoredChallenge(
            challenge_id=row["challenge_id"],
            challenge=row["challenge"],
            expires_at=as_utc(row["expires_at"]),
            used_at=None if row["used_at"] is None else as_utc(row["used_at"]),
        )

    async def bind(
        self,
        card_number: str,
        account_id: str,
        card_type: CardType,
        certificate: CardCertificateFields,
        now: datetime,
    ) -> None:
        """Bind a card to an account: that card logs in to that account only."""
        await self.connection.execute(
            insert(card_bindings).values(
                card_number=card_number,
                account_id=account_id,
                card_type=card_type.value,
                certificate_serial=str(certificate.serial_number),
                certificate_fingerprint=certificate.fingerprint,
                bound_at=now,
                not_before=certificate.not_before,
                not_after=certificate.not_after,
            )
        )

    async def is_bound(self, card_number: str) -> bool:
        """Whether a card is bound to an account."""
        return bool(await self.connection.scalar(_IS_BOUND, {"card_number": card_number}))

    async def bound_account(self, card_number: str) -> Account | None:
        """The account a card is bound to, if it is bound."""
        result = await self.connection.execute(_BOUND_ACCOUNT, {"card_number": card_number})
        row = result.mappings().first()
        return None if row is None else account_from_row(row)

    async def status(self, uscc: str, card_number: str | None) -> CardStatusView:
        """Whether an enterprise is registered and has an administrator, and a card is bound."""
        row = (
            await self.connection.execute(_STATUS, {"uscc": uscc, "card_number": card_number or ""})
        ).one()
        return CardStatusView(
            uscc=uscc,
            enterprise_registered=bool(row.registered),
            has_administrator=bool(row.has_administrator),
            card_bound=card_number is not None and bool(row.card_bound),
        )


_FORGET_CHALLENGES = card_challenges.delete().where(
    card_challenges.c.expires_at < bindparam("before")
)
_STORE_CHALLENGE = insert(card_challenges)
_USE_CHALLENGE = (
    update(card_challenges)
    .where(
        card_challenges.c.challenge_id == bindparam("id"),
        card_challenges.c.used_at.is_(None),
        card_challenges.c.expires_at > bindparam("now"),
    )
    .values(used_at=bindparam("now"))
    .returning(card_challenges.c.challenge)
)
_CHALLENGE = select(card_challenges).where(card_challenges.c.challenge_id == bindparam("id"))
_IS_BOUND = select(exists().where(card_bindings.c.card_number == bindparam("card_number")))
_BOUND_ACCOUNT = (
    select(*ACCOUNT_COLUMNS)
    .select_from(
        card_bindings.join(accounts, accounts.c.account_id == card_bindings.c.account_id).outerjoin(
            enterprises, enterprises.c.uscc == accounts.c.uscc
        )
    )
    .where(card_bindings.c.card_number == bindparam("card_number"))
)
_STATUS = select(
    exists().where(enterprises.c.uscc == bindparam("uscc")).label("registered"),
    exists()
    .where(
        accounts.c.uscc == bindparam("uscc"),
        accounts.c.role == Role.ADMIN.value,
        accounts.c.status == AccountStatus.ACTIVE.value,
    )
    .label("has_administrator"),
    exists().where(card_bindings.c.card_number == bindparam("card_number")).label("card_bound"),
)


@routes.serve(contract.CARD_CHALLENGE)
async def card_challenge(request: RequestCardChallenge, deps: AccountsRuntime) -> CardChallenge:
    """Issue a fresh random challenge for a card to sign (single use, short expiry)."""
    deps.trust.current()  # no challenge when no card could be accepted anyway
    now = deps.service.clock.now()
    expires_at = now + timedelta(seconds=deps.settings.card_challenge_seconds)
    challenge_id = f"chl_{secrets.token_urlsafe(24)}"
    challenge = base64.b64encode(secrets.token_bytes(CHALLENGE_BYTES)).decode("ascii")
    async with deps.service.db.transaction() as connection:
        await Cards(connection).store_challenge(challenge_id, challenge, now, expires_at)
    return CardChallenge(challenge_id=challenge_id, challenge=challenge, expires_at=expires_at)


@routes.serve(contract.CARD_STATUS)
async def card_status(request: CardStatus, deps: AccountsRuntime) -> CardStatusView:
    """Tell whether an enterprise already has an administrator and whether a card is bound."""
    async with deps.service.db.reading() as connection:
        return await Cards(connection).status(request.uscc, request.card_number)


@routes.serve(contract.LOGIN_CARD)
async def login_card(request: LoginWithCard, deps: AccountsRuntime) -> SessionView:
    """Log in with a card bound to an account: its signature over a challenge, and certificate."""
    proven = await prove_card(deps, request, "login")
    card = proven.card
    async with deps.service.db.reading() as connection:
        found = await Cards(connection).bound_account(card.card_number)
    if found is None:
        await refuse(deps, NOT_BOUND, card=card, purpose="login")
    if found.uscc != card.enterprise_uscc:
        await refuse(deps, OTHER_ENTERPRISE, card=card, purpose="login", account=found.account)
    if found.status is not AccountStatus.ACTIVE:
        await refuse(
            deps,
            f"account is {found.status}; ask your administrator",
            card=card,
            purpose="login",
            account=found.account,
            code=ErrorCode.FORBIDDEN,
        )
    async with deps.service.db.transaction() as connection:
        session = await open_card_session(deps, connection, found, proven)
        await audit(deps, connection, card, "login", "succeeded", None, account=found.account)
    return session


async def open_card_session(
    deps: AccountsRuntime, connection: AsyncConnection, account: Account, proven: ProvenCard
) -> SessionView:
    """Open a session of `account` that lives as long as the proven card stays bound to it and
    its certificate is not revoked."""
    return await open_session(
        deps,
        Logins(connection),
        account,
        "card",
        card_number=proven.card.card_number,
        card_fingerprint=proven.certificate.fingerprint,
        card_serial=proven.certificate.serial_number,
    )


async def prove_card(deps: AccountsRuntime, proof: CardProof, purpose: str) -> ProvenCard:
    """Check a card's answer to a challenge (spending the challenge); refuse with the reason."""

    async def refused(reason: str) -> NoReturn:
        await refuse(deps, reason, card=proof.card, purpose=purpose)

    try:
        trust = deps.trust.current()
    except DomainError as exc:
        await refused(exc.message)
    now = deps.service.clock.now()
    async with deps.service.db.transaction() as connection:
        cards = Cards(connection)
        challenge = await cards.use_challenge(proof.challenge_id, now)
        stored = None if challenge is not None else await cards.challenge(proof.challenge_id)
    if challenge is None:
        await refused(_challenge_problem(stored, now))
    try:
        certificate = cardcrypto.certificate_from_pem(proof.certificate_pem)
    except ValueError:
        await refused("certificate is not a PEM certificate")
    try:
        signature = base64.b64decode(proof.signature, validate=True)
    except binascii.Error:
        await refused("signature is not valid base64")
    # SM2 in Python takes milliseconds: keep it off the event loop.
    checked = await asyncio.to_thread(
        _check, certificate, base64.b64decode(challenge), signature, trust, now
    )
    if isinstance(checked, str):
        await refused(checked)
    mismatch = card_data_mismatch(proof.card, checked.identity) or card_data_problem(proof.card)
    if mismatch is not None:
        await refused(mismatch)
    return ProvenCard(card=proof.card, certificate=checked)


def _check(
    certificate: bytes, challenge: bytes, signature: bytes, trust: Trust, now: datetime
) -> CardCertificateFields | str:
    try:
        fields = cardcrypto.verify_certificate(certificate, trust.anchor, at=now)
        if trust.revocations is not None:  # read and checked once per CRL file
            trust.revocations.check(fields.serial_number, at=now)
        if not cardcrypto.verify_challenge_signature(certificate, challenge, signature):
            return SIGNATURE_MISMATCH
    except CertificateError as exc:
        return str(exc.problem.value)
    return fields


def _challenge_problem(stored: StoredChallenge | None, now: datetime) -> str:
    if stored is None:
        return "challenge is unknown; ask for a new one"
    if stored.used_at is not None:
        return "challenge was already used; ask for a new one"
    if stored.expires_at <= now:
        return "challenge has expired; ask for a new one"
    return "challenge was already used; ask for a new one"  # spent by a concurrent request


async def refuse(
    deps: AccountsRuntime,
    reason: str,
    code: ErrorCode = ErrorCode.CARD_REFUSED,
    fields: tuple[FieldError, ...] = (),
    *,
    card: CardData,
    purpose: str,
    account: str | None = None,
) -> NoReturn:
    """Audit a refused card request, then refuse it."""
    async with deps.service.db.transaction() as connection:
        await audit(deps, connection, card, purpose, "failed", reason, account=account)
    raise DomainError(code, reason, fields)


async def audit(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    card: CardData,
    purpose: str,
    outcome: str,
    reason: str | None,
    *,
    account: str | None,
) -> None:
    """Record a card attempt in the audit trail (the card number; never a PIN or ID number)."""
    card_number = card.card_number[:40]
    log.info(
        "card attempt",
        purpose=purpose,
        card_number=card_number,
        account=account,
        outcome=outcome,
        reason=reason,
    )
    await deps.service.emit(
        connection,
        contract.AUTHENTICATION_ATTEMPTED,
        AuthenticationAttempted(
            account=(account or "-")[:64],
            method="card",
            outcome=outcome,
            reason=reason,
            card_number=card_number,
            purpose=purpose,
        ),
        subject=card.enterprise_uscc[:18],
    )
