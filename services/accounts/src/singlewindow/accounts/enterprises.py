"""Enterprises and their administrators: from an approved application, or from a legal-person card.

Registration asks whether a USCC and an account name are still free (the onboarding check); an
approved application creates the enterprise and its active administrator; a legal-person card
does the same at once, without review, its administrator bound to the card.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import partial

import structlog
from singlewindow.accounts.cards import Cards, audit, open_card_session, prove_card, refuse
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import (
    Account,
    AccountStatus,
    NewAccount,
    account_key,
    division_of,
    new_account_id,
)
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import account_by_id, accounts, create_account, enterprises
from singlewindow.contracts import accounts as contract
from singlewindow.contracts import registration
from singlewindow.contracts.accounts import (
    EnterpriseRegistered,
    OnboardingCheck,
    OnboardingCheckView,
    RegisterCardAdmin,
    Role,
    SessionView,
)
from singlewindow.contracts.card_gateway import CardData, CardType
from singlewindow.contracts.common import AccountHolder
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.registration import (
    ApplicationDecided,
    ApplicationWithdrawn,
    Onboarding,
    OnboardingDetails,
)
from singlewindow.runtime.db import IntegrityError
from singlewindow.runtime.passwords import policy_problem
from sqlalchemy import Connection, bindparam, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.enterprises")

ADMIN_EXISTS = "enterprise already has an administrator; log in instead"


_CUSTOMS_CODE = re.compile(r"[0-9A-Z]{10}")


def card_customs_code(card: CardData) -> str | None:
    """The customs code the card's data carries, if it is one (10 digits or capital letters);
    a card without one, or with something else there, leaves it unknown (issue 11)."""
    code = (card.customs_code or "").strip().upper()
    if not code:
        return None
    if not _CUSTOMS_CODE.fullmatch(code):
        log.warning("card_customs_code_ignored", reason="not 10 digits or letters")
        return None
    return code


class Enterprises:
    """Enterprises and their administrators, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def create_from_application(
        self, onboarding: Onboarding, now: datetime, *, via: str
    ) -> Account:
        """Create an enterprise and its active administrator, as the application gave them."""
        enterprise = onboarding.enterprise
        representative = enterprise.legal_representative
        await self.connection.execute(
            insert(enterprises).values(
                uscc=enterprise.uscc,
                name=enterprise.name,
                name_en=enterprise.name_en,
                division=enterprise.division,
                address=enterprise.address,
                legal_rep_name=representative.name,
                legal_rep_id_type=representative.id_type.value,
                legal_rep_id_number=representative.id_number,
                legal_rep_mobile=representative.mobile,
                registered_via=via,
                created_at=now,
            )
        )
        account_id = new_account_id()
        await self.connection.execute(
            insert(accounts).values(
                account_id=account_id,
                account=onboarding.admin_account,
                account_key=account_key(onboarding.admin_account),
                role=Role.ADMIN.value,
                uscc=enterprise.uscc,
                name=onboarding.admin_name,
                id_type=onboarding.admin_id_type,
                id_number=onboarding.admin_id_number,
                mobile=onboarding.admin_mobile,
                email=onboarding.admin_email,
                password_hash=onboarding.password_hash,
                password_must_change=False,
                status=AccountStatus.ACTIVE.value,
                created_at=now,
            )
        )
        found = await account_by_id(self.connection, account_id)
        assert found is not None
        return found

    async def create_from_card(self, card: CardData, now: datetime) -> None:
        """Create the enterprise a legal-person card names, with what the card says of it."""
        legal_person = card.card_type is CardType.LEGAL_PERSON
        await self.connection.execute(
            insert(enterprises).values(
                uscc=card.enterprise_uscc,
                name=card.enterprise_name,
                division=division_of(card.enterprise_uscc),
                # The legal-person card is the legal representative's own. Its certificate
                # vouches for the holder's name, not for an ID number: only the card says that.
                legal_rep_name=card.holder_name if legal_person else None,
                legal_rep_id_number=None,
                registered_via="card",
                created_at=now,
                card_customs_code=card_customs_code(card),  # customs filing (issue 11)
            )
        )

    async def add_administrator(self, new: NewAccount, now: datetime) -> Account:
        """Create the enterprise's active administrator."""
        return await create_account(self.connection, new, now)

    async def has_admin(self, uscc: str) -> bool:
        """Whether `uscc` has an active administrator."""
        return bool(await self.connection.scalar(_HAS_ADMIN, {"uscc": uscc}))

    async def exists(self, uscc: str) -> bool:
        """Whether `uscc` is a registered enterprise."""
        return bool(await self.connection.scalar(_EXISTS, {"uscc": uscc}))

    async def account_taken(self, account: str) -> bool:
        """Whether an account name is in use, in any case."""
        return bool(await self.connection.scalar(_TAKEN, {"key": account_key(account)}))

    async def registered_from(self, onboarding: Onboarding) -> bool:
        """Whether the enterprise and administrator `onboarding` asks for exist as it made them:
        the application was applied before."""
        found = await self.connection.scalar(
            _REGISTERED_FROM,
            {"uscc": onboarding.enterprise.uscc, "key": account_key(onboarding.admin_account)},
        )
        return bool(found)


async def unavailable_because(repository: Enterprises, onboarding: Onboarding) -> str | None:
    """Why the enterprise an approved application asks for can no longer be registered, in
    words for the applicant; None if it can."""
    uscc, account = onboarding.enterprise.uscc, onboarding.admin_account
    if await repository.exists(uscc):
        return (
            f"the enterprise {uscc} was registered by other means after this application was"
            " submitted (with its legal-person card, say): its administrator can add you as an"
            " operator"
        )
    if await repository.account_taken(account):
        return (
            f"the account name {account} was taken after this application was submitted:"
            " submit the application again with another account name"
        )
    return None


_HAS_ADMIN = select(
    exists().where(
        accounts.c.uscc == bindparam("uscc"),
        accounts.c.role == Role.ADMIN.value,
        accounts.c.status == AccountStatus.ACTIVE.value,
    )
)
_EXISTS = select(exists().where(enterprises.c.uscc == bindparam("uscc")))
_TAKEN = select(exists().where(accounts.c.account_key == bindparam("key")))
_ONBOARDING = select(
    exists()
    .where(
        accounts.c.uscc == bindparam("uscc"),
        accounts.c.role == Role.ADMIN.value,
        accounts.c.status == AccountStatus.ACTIVE.value,
    )
    .label("uscc_registered"),
    exists().where(accounts.c.account_key == bindparam("key")).label("account_taken"),
)
"""`Enterprises.has_admin` and `Enterprises.account_taken` in one statement."""
_REGISTERED_FROM = select(
    exists().where(
        enterprises.c.uscc == bindparam("uscc"),
        enterprises.c.registered_via == "cardless",
        accounts.c.uscc == enterprises.c.uscc,
        accounts.c.account_key == bindparam("key"),
        accounts.c.role == Role.ADMIN.value,
    )
)


@routes.serve(contract.ONBOARDING_CHECK)
async def onboarding_check(request: OnboardingCheck, deps: AccountsRuntime) -> OnboardingCheckView:
    """Tell registration whether a USCC has an administrator and an account name is taken."""
    return await deps.service.db.read(_onboarding_check, request.uscc, request.account)


def _onboarding_check(connection: Connection, uscc: str, account: str) -> OnboardingCheckView:
    """Both answers in one statement, one trip to the database."""
    row = connection.execute(_ONBOARDING, {"uscc": uscc, "key": account_key(account)}).one()
    return OnboardingCheckView(uscc_registered=bool(row[0]), account_taken=bool(row[1]))


async def _fetch_onboarding(approved: ApplicationDecided, deps: AccountsRuntime) -> Onboarding:
    return await deps.service.ask(
        registration.ONBOARDING_DETAILS,
        OnboardingDetails(application_id=approved.application_id),
        wait=deps.settings.registration_timeout_seconds,
    )


@routes.consume_prepared(contract.REGISTRATION_APPROVALS, _fetch_onboarding)
async def register_approved_enterprise(
    onboarding: Onboarding, event: CloudEvent, connection: AsyncConnection, deps: AccountsRuntime
) -> None:
    """Create the enterprise and its active administrator when an application is approved, or
    withdraw the approval, saying why, when its USCC or account name was taken meanwhile."""
    repository = Enterprises(connection)
    uscc = onboarding.enterprise.uscc
    if await repository.registered_from(onboarding):
        return  # this application's enterprise exists: an approval announced twice
    reason = await unavailable_because(repository, onboarding)
    if reason is not None:
        log.warning(
            "approved application withdrawn",
            application_id=onboarding.application_id,
            uscc=uscc,
            reason=reason,
        )
        await deps.service.emit(
            connection,
            registration.WITHDRAWN,
            ApplicationWithdrawn(
                application_id=onboarding.application_id,
                uscc=uscc,
                admin_account=onboarding.admin_account,
                reason=reason,
            ),
            subject=uscc,
        )
        return
    admin = await repository.create_from_application(
        onboarding, deps.service.clock.now(), via="cardless"
    )
    await deps.service.emit(
        connection,
        contract.ENTERPRISE_REGISTERED,
        EnterpriseRegistered(
            uscc=uscc,
            name=onboarding.enterprise.name,
            admin_account=admin.account,
            admin_name=admin.name,
            via="cardless",
            application_id=onboarding.application_id,
        ),
        subject=uscc,
    )


@routes.serve(contract.REGISTER_CARD_ADMIN)
async def register_admin_by_card(request: RegisterCardAdmin, deps: AccountsRuntime) -> SessionView:
    """Register the enterprise on a legal-person card and its active administrator, no review."""
    check_password(deps, request.admin, "admin")
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
    async with deps.service.db.reading() as connection:
        conflict = await card_account_conflict(connection, card, admin, "admin", admin_rule=True)
    if conflict is not None:
        await refused(conflict.message, conflict.code, conflict.fields)
    password_hash = await deps.passwords.hash(admin.password)
    now = deps.service.clock.now()
    try:
        async with deps.service.db.transaction() as connection:
            repository = Enterprises(connection)
            if not await repository.exists(uscc):
                await repository.create_from_card(card, now)
            account = await repository.add_administrator(
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
            await Cards(connection).bind(
                card.card_number, account.account_id, card.card_type, proven.certificate, now
            )
            session = await open_card_session(deps, connection, account, proven)
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
        async with deps.service.db.reading() as connection:
            conflict = await card_account_conflict(
                connection, card, admin, "admin", admin_rule=True
            )
        if conflict is None:
            raise
        await refused(conflict.message, conflict.code, conflict.fields)
    log.info("enterprise registered by card", uscc=uscc, admin=account.account)
    return session


def check_password(deps: AccountsRuntime, holder: AccountHolder, path: str) -> None:
    """Refuse a password the policy does not accept, naming the field at `path`."""
    problem = policy_problem(
        holder.password, account=holder.account, min_length=deps.settings.password_min_length
    )
    if problem:
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: {path}.password {problem}",
            (FieldError(path=f"{path}.password", message=f"password {problem}"),),
        )


async def card_account_conflict(
    connection: AsyncConnection,
    card: CardData,
    holder: AccountHolder,
    path: str,
    *,
    admin_rule: bool = False,
) -> DomainError | None:
    """Which uniqueness rule a new card account would break, if any."""
    repository = Enterprises(connection)
    if admin_rule and await repository.has_admin(card.enterprise_uscc):
        return DomainError(
            ErrorCode.CONFLICT,
            ADMIN_EXISTS,
            (FieldError(path="card.enterprise_uscc", message="already has an administrator"),),
        )
    if await Cards(connection).is_bound(card.card_number):
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
