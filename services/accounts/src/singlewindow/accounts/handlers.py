"""The accounts service's subscribers: login, sessions, cards, business scope, onboarding."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import structlog
from faststream.nats import NatsMessage, NatsRouter
from singlewindow.accounts.auth import authenticate, login_with_password, session_view
from singlewindow.accounts.cards import (
    add_card_operator,
    card_status,
    issue_challenge,
    login_with_card,
    register_card_admin,
)
from singlewindow.accounts.dependencies import AccountsRuntime, Deps
from singlewindow.accounts.repository import Accounts
from singlewindow.shared.contracts import accounts as contract
from singlewindow.shared.contracts import registration
from singlewindow.shared.contracts.accounts import (
    SCOPE_LABELS,
    AccountView,
    AddCardOperator,
    BusinessScope,
    BusinessScopeDeclared,
    CardChallenge,
    CardStatus,
    CardStatusView,
    EnterpriseRegistered,
    LoginWithCard,
    LoginWithPassword,
    Logout,
    OnboardingCheck,
    OnboardingCheckView,
    OperatorView,
    RegisterCardAdmin,
    RequestCardChallenge,
    RequiredAction,
    ScopeDeclared,
    ScopeOption,
    ScopeOptionList,
    ScopeOptions,
    SessionView,
    SetScope,
    ShowAccount,
    ShowSession,
)
from singlewindow.shared.contracts.registration import Onboarding, OnboardingDetails
from singlewindow.shared.errors import DomainError, ErrorCode
from singlewindow.shared.events import CloudEvent
from singlewindow.shared.identifiers import mask_id_number, mask_mobile
from singlewindow.shared.service import event_subscriber, request_subscriber
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts")

router = NatsRouter()

APPROVALS_CONSUMER = "accounts-registration-approved"
SCOPE_ONLY = frozenset({RequiredAction.BUSINESS_SCOPE})
ALL_ACTIONS = frozenset(RequiredAction)


@request_subscriber(router, contract.LOGIN_PASSWORD, contract.QUEUE)
async def login_password(msg: NatsMessage, deps: Deps) -> bytes:
    """Log in with account name and password; the session lists its required actions."""

    async def handle(request: LoginWithPassword) -> SessionView:
        return await login_with_password(deps, request.account, request.password)

    return await deps.service.answer(msg, LoginWithPassword, handle)


@request_subscriber(router, contract.CARD_CHALLENGE, contract.QUEUE)
async def card_challenge(msg: NatsMessage, deps: Deps) -> bytes:
    """Issue a fresh random challenge for a card to sign (single use, short expiry)."""

    async def handle(request: RequestCardChallenge) -> CardChallenge:
        return await issue_challenge(deps)

    return await deps.service.answer(msg, RequestCardChallenge, handle)


@request_subscriber(router, contract.LOGIN_CARD, contract.QUEUE)
async def login_card(msg: NatsMessage, deps: Deps) -> bytes:
    """Log in with a card bound to an account: its signature over a challenge, and certificate."""

    async def handle(request: LoginWithCard) -> SessionView:
        return await login_with_card(deps, request)

    return await deps.service.answer(msg, LoginWithCard, handle)


@request_subscriber(router, contract.CARD_STATUS, contract.QUEUE)
async def show_card_status(msg: NatsMessage, deps: Deps) -> bytes:
    """Tell whether an enterprise already has an administrator and whether a card is bound."""

    async def handle(request: CardStatus) -> CardStatusView:
        return await card_status(deps, request)

    return await deps.service.answer(msg, CardStatus, handle)


@request_subscriber(router, contract.REGISTER_CARD_ADMIN, contract.QUEUE)
async def register_admin_by_card(msg: NatsMessage, deps: Deps) -> bytes:
    """Register the enterprise on a legal-person card and its active administrator, no review."""

    async def handle(request: RegisterCardAdmin) -> SessionView:
        return await register_card_admin(deps, request)

    return await deps.service.answer(msg, RegisterCardAdmin, handle)


@request_subscriber(router, contract.ADD_CARD_OPERATOR, contract.QUEUE)
async def add_operator_by_card(msg: NatsMessage, deps: Deps) -> bytes:
    """Add an operator bound to an operator card of the administrator's own enterprise."""

    async def handle(request: AddCardOperator) -> OperatorView:
        return await add_card_operator(deps, request)

    return await deps.service.answer(msg, AddCardOperator, handle)


@request_subscriber(router, contract.LOGOUT, contract.QUEUE)
async def logout(msg: NatsMessage, deps: Deps) -> bytes:
    """End the session; its token stops working at once."""

    async def handle(request: Logout) -> None:
        async with deps.service.db.transaction() as connection:
            caller = await authenticate(deps, connection, request.token, allow=ALL_ACTIONS)
            await Accounts(connection).revoke_session(caller.digest, datetime.now(UTC))

    return await deps.service.answer(msg, Logout, handle)


@request_subscriber(router, contract.SHOW_SESSION, contract.QUEUE)
async def show_session(msg: NatsMessage, deps: Deps) -> bytes:
    """Show the current session and its required actions."""

    async def handle(request: ShowSession) -> SessionView:
        async with deps.service.db.transaction() as connection:
            caller = await authenticate(deps, connection, request.token, allow=ALL_ACTIONS)
            session = await Accounts(connection).session(caller.digest)
        assert session is not None
        return session_view(
            deps,
            caller.account,
            request.token,
            caller.required_actions,
            datetime.now(UTC),
            session.expires_at,
            method=session.method,
            card_number=session.card_number,
        )

    return await deps.service.answer(msg, ShowSession, handle)


@request_subscriber(router, contract.SHOW_ACCOUNT, contract.QUEUE)
async def show_account(msg: NatsMessage, deps: Deps) -> bytes:
    """Show the caller's own account."""

    async def handle(request: ShowAccount) -> AccountView:
        async with deps.service.db.transaction() as connection:
            caller = await authenticate(deps, connection, request.token)
            account = caller.account
            scope: tuple[BusinessScope, ...] = ()
            if account.uscc:
                scope, _version = await Accounts(connection).current_scope(account.uscc)
        return AccountView(
            account=account.account,
            role=account.role,
            name=account.name,
            id_number_masked=mask_id_number(account.id_number),
            mobile_masked=mask_mobile(account.mobile),
            email=account.email,
            uscc=account.uscc,
            enterprise_name=account.enterprise_name,
            business_scope=scope,
            created_at=account.created_at,
        )

    return await deps.service.answer(msg, ShowAccount, handle)


@request_subscriber(router, contract.SCOPE_OPTIONS, contract.QUEUE)
async def scope_options(msg: NatsMessage, deps: Deps) -> bytes:
    """List the business scope choices, marking those the enterprise has declared."""

    async def handle(request: ScopeOptions) -> ScopeOptionList:
        async with deps.service.db.transaction() as connection:
            caller = await authenticate(deps, connection, request.token, allow=SCOPE_ONLY)
            current: tuple[BusinessScope, ...] = ()
            if caller.account.uscc:
                current, _version = await Accounts(connection).current_scope(caller.account.uscc)
        return ScopeOptionList(
            options=tuple(
                ScopeOption(code=code, name_zh=zh, name_en=en, selected=code in current)
                for code, (zh, en) in SCOPE_LABELS.items()
            )
        )

    return await deps.service.answer(msg, ScopeOptions, handle)


@request_subscriber(router, contract.SET_SCOPE, contract.QUEUE)
async def set_scope(msg: NatsMessage, deps: Deps) -> bytes:
    """Declare the enterprise's business scope (administrator only); earlier ones are kept."""

    async def handle(request: SetScope) -> ScopeDeclared:
        codes = request.codes
        async with deps.service.db.transaction() as connection:
            caller = await authenticate(deps, connection, request.token, allow=SCOPE_ONLY)
            account = caller.account
            if account.role is not contract.Role.ADMIN or account.uscc is None:
                raise DomainError(
                    ErrorCode.FORBIDDEN, "only the enterprise administrator declares business scope"
                )
            repository = Accounts(connection)
            _current, version = await repository.current_scope(account.uscc)
            await repository.declare_scope(account.uscc, codes, account.account, version + 1)
            await deps.service.emit(
                connection,
                contract.BUSINESS_SCOPE_DECLARED,
                BusinessScopeDeclared(
                    uscc=account.uscc,
                    codes=tuple(code.value for code in codes),
                    version=version + 1,
                    declared_by=account.account,
                ),
                subject=account.uscc,
            )
        remaining = tuple(
            a for a in caller.required_actions if a is not RequiredAction.BUSINESS_SCOPE
        )
        return ScopeDeclared(codes=codes, version=version + 1, required_actions=remaining)

    return await deps.service.answer(msg, SetScope, handle)


@request_subscriber(router, contract.ONBOARDING_CHECK, contract.QUEUE)
async def onboarding_check(msg: NatsMessage, deps: Deps) -> bytes:
    """Tell registration whether a USCC has an administrator and an account name is taken."""

    async def handle(request: OnboardingCheck) -> OnboardingCheckView:
        async with deps.service.db.reading() as connection:
            repository = Accounts(connection)
            return OnboardingCheckView(
                uscc_registered=await repository.enterprise_has_admin(request.uscc),
                account_taken=await repository.account_taken(request.account),
            )

    return await deps.service.answer(msg, OnboardingCheck, handle)


@event_subscriber(
    router, registration.STREAM, registration.APPROVED, APPROVALS_CONSUMER, service=contract.SERVICE
)
async def register_approved_enterprise(msg: NatsMessage, deps: Deps) -> None:
    """Create the enterprise and its active administrator when an application is approved."""
    await deps.service.consume(APPROVALS_CONSUMER, msg, partial(_register_enterprise, deps))


async def _register_enterprise(
    deps: AccountsRuntime, connection: AsyncConnection, event: CloudEvent
) -> None:
    approved = registration.APPROVED.parse(event)
    onboarding = await _fetch_onboarding(deps, approved.application_id)
    repository = Accounts(connection)
    uscc = onboarding.enterprise.uscc
    if await repository.enterprise_exists(uscc) or await repository.account_taken(
        onboarding.admin_account
    ):
        # Registered by another route (a card) since the application was vetted: nothing to create.
        log.error(
            "approved application cannot be applied",
            application_id=approved.application_id,
            uscc=uscc,
            reason="enterprise or account already exists",
        )
        return
    admin = await repository.create_enterprise_with_admin(onboarding, via="cardless")
    await deps.service.emit(
        connection,
        contract.ENTERPRISE_REGISTERED,
        EnterpriseRegistered(
            uscc=uscc,
            name=onboarding.enterprise.name,
            admin_account=admin.account,
            admin_name=admin.name,
            via="cardless",
            application_id=approved.application_id,
        ),
        subject=uscc,
    )


async def _fetch_onboarding(deps: AccountsRuntime, application_id: str) -> Onboarding:
    return await deps.service.ask(
        registration.ONBOARDING_DETAILS,
        OnboardingDetails(application_id=application_id),
        Onboarding,
        wait=deps.settings.registration_timeout_seconds,
        who="registration",
    )
