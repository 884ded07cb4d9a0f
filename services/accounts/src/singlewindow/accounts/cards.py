"""Card requests at the unit-of-work level: challenges, card proofs, card login, card registration.

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
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import NoReturn

import structlog
from singlewindow.accounts.auth import authenticate, pending_actions, session_view
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import (
    card_data_mismatch,
    card_data_problem,
    new_session_token,
    token_digest,
)
from singlewindow.accounts.repository import Account, Accounts, NewAccount, StoredChallenge
from singlewindow.accounts.trust import Trust
from singlewindow.cardcrypto import (
    CardCertificateFields,
    CertificateError,
    certificate_from_pem,
    verify_certificate,
    verify_challenge_signature,
)
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AddCardOperator,
    AuthenticationAttempted,
    CardChallenge,
    CardProof,
    CardStatus,
    CardStatusView,
    EnterpriseRegistered,
    LoginWithCard,
    OperatorAdded,
    OperatorView,
    RegisterCardAdmin,
    Role,
    SessionView,
)
from singlewindow.contracts.card_gateway import CardData, CardType
from singlewindow.contracts.common import AccountHolder
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.identifiers import mask_id_number, mask_mobile
from singlewindow.runtime.db import IntegrityError
from singlewindow.runtime.passwords import policy_problem
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.cards")

CHALLENGE_BYTES = 32
SIGNATURE_MISMATCH = "signature does not match the certificate"
NOT_BOUND = "this card is not bound to an account; register with it or bind it under My IC card"
ADMIN_EXISTS = "enterprise already has an administrator; log in instead"
OTHER_ENTERPRISE = "this card belongs to another enterprise"


@dataclass(frozen=True)
class ProvenCard:
    """A card that answered a challenge and whose data its certificate vouches for."""

    card: CardData
    certificate: CardCertificateFields


# Challenges and status


async def issue_challenge(deps: AccountsRuntime) -> CardChallenge:
    """A fresh random challenge, single use, valid for a short while."""
    deps.trust.current()  # no challenge when no card could be accepted anyway
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=deps.settings.card_challenge_seconds)
    challenge_id = f"chl_{secrets.token_urlsafe(24)}"
    challenge = base64.b64encode(secrets.token_bytes(CHALLENGE_BYTES)).decode("ascii")
    async with deps.service.db.transaction() as connection:
        await Accounts(connection).store_challenge(challenge_id, challenge, now, expires_at)
    return CardChallenge(challenge_id=challenge_id, challenge=challenge, expires_at=expires_at)


async def card_status(deps: AccountsRuntime, request: CardStatus) -> CardStatusView:
    """Whether an enterprise has an administrator already, and whether a card is bound."""
    async with deps.service.db.transaction() as connection:
        repository = Accounts(connection)
        bound = request.card_number is not None and (
            await repository.card_binding(request.card_number) is not None
        )
        return CardStatusView(
            uscc=request.uscc,
            enterprise_registered=await repository.enterprise_exists(request.uscc),
            has_administrator=await repository.enterprise_has_admin(request.uscc),
            card_bound=bound,
        )


# Proofs


async def prove_card(deps: AccountsRuntime, proof: CardProof, purpose: str) -> ProvenCard:
    """Check a card's answer to a challenge (spending the challenge); refuse with the reason."""

    async def refused(reason: str) -> NoReturn:
        await refuse(deps, reason, card=proof.card, purpose=purpose)

    try:
        trust = deps.trust.current()
    except DomainError as exc:
        await refused(exc.message)
    now = datetime.now(UTC)
    async with deps.service.db.transaction() as connection:
        repository = Accounts(connection)
        challenge = await repository.use_challenge(proof.challenge_id, now)
        stored = None if challenge is not None else await repository.challenge(proof.challenge_id)
    if challenge is None:
        await refused(_challenge_problem(stored, now))
    try:
        certificate = certificate_from_pem(proof.certificate_pem)
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
        fields = verify_certificate(certificate, trust.anchor, crl_der=trust.crl, at=now)
        if not verify_challenge_signature(certificate, challenge, signature):
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


# Card login


async def login_with_card(deps: AccountsRuntime, request: LoginWithCard) -> SessionView:
    """Open a card session for the account the card is bound to."""
    proven = await prove_card(deps, request, "login")
    card = proven.card
    async with deps.service.db.transaction() as connection:
        repository = Accounts(connection)
        binding = await repository.card_binding(card.card_number)
        found = None if binding is None else await repository.account_by_id(binding.account_id)
    if found is None:
        await refuse(deps, NOT_BOUND, card=card, purpose="login")
    if found.uscc != card.enterprise_uscc:
        await refuse(deps, OTHER_ENTERPRISE, card=card, purpose="login", account=found.account)
    if found.status != "active":
        await refuse(
            deps,
            f"account is {found.status}; ask your administrator",
            card=card,
            purpose="login",
            account=found.account,
            code=ErrorCode.FORBIDDEN,
        )
    async with deps.service.db.transaction() as connection:
        session = await _open_card_session(deps, Accounts(connection), found, proven)
        await audit(deps, connection, card, "login", "succeeded", None, account=found.account)
    return session


async def _open_card_session(
    deps: AccountsRuntime, repository: Accounts, account: Account, proven: ProvenCard
) -> SessionView:
    now = datetime.now(UTC)
    token = new_session_token()
    expires_at = now + deps.sessions.absolute
    await repository.open_session(
        token_digest(token),
        account.account_id,
        "card",
        now,
        expires_at,
        card_number=proven.card.card_number,
        card_fingerprint=proven.certificate.fingerprint,
    )
    actions = await pending_actions(repository, account)
    return session_view(
        deps,
        account,
        token,
        actions,
        now,
        expires_at,
        method="card",
        card_number=proven.card.card_number,
    )


# Card administrator registration


async def register_card_admin(deps: AccountsRuntime, request: RegisterCardAdmin) -> SessionView:
    """Create the enterprise on a legal-person card and its active administrator, bound to it."""
    _check_password(deps, request.admin, "admin")
    proven = await prove_card(deps, request, "register-admin")
    card = proven.card
    uscc = card.enterprise_uscc
    admin = request.admin

    refused = partial(refuse, deps, card=card, purpose="register-admin", account=admin.account)

    if card.card_type is not CardType.LEGAL_PERSON:
        await refused(
            "only a legal-person card registers an enterprise administrator; "
            "this is an operator card",
            ErrorCode.CARD_REFUSED,
        )
    async with deps.service.db.transaction() as connection:
        conflict = await _conflict(Accounts(connection), card, admin, "admin", admin_rule=True)
    if conflict is not None:
        await refused(conflict.message, conflict.code, conflict.fields)
    password_hash = await deps.passwords.hash(admin.password)
    now = datetime.now(UTC)
    try:
        async with deps.service.db.transaction() as connection:
            repository = Accounts(connection)
            if not await repository.enterprise_exists(uscc):
                await repository.create_enterprise_from_card(card, now)
            account = await repository.create_account(
                NewAccount(
                    holder=admin,
                    role=Role.ADMIN,
                    uscc=uscc,
                    password_hash=password_hash,
                    # The administrator chose this password: nothing to change at first login.
                    password_must_change=False,
                ),
                now,
            )
            await repository.bind_card(
                card.card_number, account.account_id, card.card_type, proven.certificate, now
            )
            session = await _open_card_session(deps, repository, account, proven)
            await deps.service.emit(
                connection,
                contract.ENTERPRISE_REGISTERED,
                EnterpriseRegistered(
                    uscc=uscc,
                    name=card.enterprise_name,
                    admin_account=account.account,
                    admin_name=account.name,
                    via="card",
                    application_id=None,
                ),
                subject=uscc,
            )
            await audit(
                deps, connection, card, "register-admin", "succeeded", None, account=account.account
            )
    except IntegrityError:
        # Another registration committed between the check above and this one: say which rule.
        async with deps.service.db.transaction() as connection:
            conflict = await _conflict(Accounts(connection), card, admin, "admin", admin_rule=True)
        if conflict is None:
            raise
        await refused(conflict.message, conflict.code, conflict.fields)
    log.info("enterprise registered by card", uscc=uscc, admin=account.account)
    return session


# Card operators


async def add_card_operator(deps: AccountsRuntime, request: AddCardOperator) -> OperatorView:
    """Add an operator of the administrator's enterprise, bound to their operator card."""
    async with deps.service.db.transaction() as connection:
        caller = (await authenticate(deps, connection, request.token)).account
    if caller.role is not Role.ADMIN or caller.uscc is None:
        raise DomainError(ErrorCode.FORBIDDEN, "only the enterprise administrator adds operators")
    operator = request.operator
    _check_password(deps, operator, "operator")
    proven = await prove_card(deps, request, "add-operator")
    card = proven.card

    refused = partial(refuse, deps, card=card, purpose="add-operator", account=operator.account)

    if card.enterprise_uscc != caller.uscc:
        await refused(OTHER_ENTERPRISE, ErrorCode.CARD_REFUSED)
    if card.card_type is not CardType.OPERATOR or card.operator_level is None:
        await refused(
            "this is a legal-person card; an operator is added with their own operator card",
            ErrorCode.CARD_REFUSED,
        )
    level = card.operator_level
    if operator.level is not None and operator.level is not level:
        await refused(
            f"invalid fields: operator.level the card is a {level.value} card",
            ErrorCode.INVALID,
            (FieldError(path="operator.level", message=f"the card says {level.value}"),),
        )
    async with deps.service.db.transaction() as connection:
        conflict = await _conflict(Accounts(connection), card, operator, "operator")
    if conflict is not None:
        await refused(conflict.message, conflict.code, conflict.fields)
    password_hash = await deps.passwords.hash(operator.password)
    now = datetime.now(UTC)
    try:
        async with deps.service.db.transaction() as connection:
            repository = Accounts(connection)
            account = await repository.create_account(
                NewAccount(
                    holder=operator,
                    role=Role.OPERATOR,
                    uscc=caller.uscc,
                    password_hash=password_hash,
                    # The operator is at the card reader to type the PIN, and types this
                    # password too: it is theirs, not an initial one the administrator knows.
                    password_must_change=False,
                    operator_level=level,
                ),
                now,
            )
            await repository.bind_card(
                card.card_number, account.account_id, card.card_type, proven.certificate, now
            )
            await deps.service.emit(
                connection,
                contract.OPERATOR_ADDED,
                OperatorAdded(
                    uscc=caller.uscc,
                    account=account.account,
                    name=account.name,
                    level=level.value,
                    via="card",
                    card_number=card.card_number,
                    added_by=caller.account,
                ),
                subject=caller.uscc,
            )
            await audit(
                deps, connection, card, "add-operator", "succeeded", None, account=account.account
            )
    except IntegrityError:
        async with deps.service.db.transaction() as connection:
            conflict = await _conflict(Accounts(connection), card, operator, "operator")
        if conflict is None:
            raise
        await refused(conflict.message, conflict.code, conflict.fields)
    return OperatorView(
        account=account.account,
        role=account.role,
        operator_level=account.operator_level,
        name=account.name,
        id_number_masked=mask_id_number(account.id_number),
        mobile_masked=mask_mobile(account.mobile),
        email=account.email,
        uscc=account.uscc,
        enterprise_name=account.enterprise_name,
        status=account.status,
        card_number=card.card_number,
        created_at=account.created_at,
    )


def _check_password(deps: AccountsRuntime, holder: AccountHolder, path: str) -> None:
    problem = policy_problem(
        holder.password, account=holder.account, min_length=deps.settings.password_min_length
    )
    if problem:
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: {path}.password {problem}",
            (FieldError(path=f"{path}.password", message=f"password {problem}"),),
        )


async def _conflict(
    repository: Accounts,
    card: CardData,
    holder: AccountHolder,
    path: str,
    *,
    admin_rule: bool = False,
) -> DomainError | None:
    """Which uniqueness rule a new card account would break, if any."""
    if admin_rule and await repository.enterprise_has_admin(card.enterprise_uscc):
        return DomainError(
            ErrorCode.CONFLICT,
            ADMIN_EXISTS,
            (FieldError(path="card.enterprise_uscc", message="already has an administrator"),),
        )
    if await repository.card_binding(card.card_number) is not None:
        return DomainError(
            ErrorCode.CONFLICT,
            "this card is already bound to an account; log in with it instead",
            (FieldError(path="card.card_number", message="already bound"),),
        )
    if await repository.account_taken(holder.account):
        return DomainError(
            ErrorCode.CONFLICT,
            f"account name {holder.account} is taken; choose another",
            (FieldError(path=f"{path}.account", message="is taken"),),
        )
    return None
