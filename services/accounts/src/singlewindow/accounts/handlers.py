"""The accounts service's handlers: login, sessions, cards, business scope, onboarding."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from singlewindow.accounts.auth import authenticate, login_with_password, session_view
from singlewindow.accounts.cards import (
    add_card_operator,
    card_status,
    issue_challenge,
    login_with_card,
    register_card_admin,
)
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.repository import Accounts
from singlewindow.contracts import accounts as contract
from singlewindow.contracts import registration
from singlewindow.contracts.accounts import (
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
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.identifiers import mask_id_number, mask_mobile
from singlewindow.contracts.registration import (
    ApplicationDecided,
    Onboarding,
    OnboardingDetails,
)
from singlewindow.runtime.routes import Routes
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts")

routes = Routes[AccountsRuntime](contract.SERVICE, asks=(registration.ONBOARDING_DETAILS,))
SCOPE_ONLY = frozenset({RequiredAction.BUSINESS_SCOPE})
ALL_ACTIONS = frozenset(RequiredAction)


@routes.serve(contract.LOGIN_PASSWORD)
async def login_password(request: LoginWithPassword, deps: AccountsRuntime) -> SessionView:
    """Log in with account name and password; the session lists its required actions."""
    return await login_with_password(deps, request.account, request.password)


@routes.serve(contract.CARD_CHALLENGE)
async def card_challenge(request: RequestCardChallenge, deps: AccountsRuntime) -> CardChallenge:
    """Issue a fresh random challenge for a card to sign (single use, short expiry)."""
    return await issue_challenge(deps)


@routes.serve(contract.LOGIN_CARD)
async def login_card(request: LoginWithCard, deps: AccountsRuntime) -> SessionView:
    """Log in with a card bound to an account: its signature over a challenge, and certificate."""
    return await login_with_card(deps, request)


@routes.serve(contract.CARD_STATUS)
async def show_card_status(request: CardStatus, deps: AccountsRuntime) -> CardStatusView:
    """Tell whether an enterprise already has an administrator and whether a card is bound."""
    return await card_status(deps, request)


@routes.serve(contract.REGISTER_CARD_ADMIN)
async def register_admin_by_card(request: RegisterCardAdmin, deps: AccountsRuntime) -> SessionView:
    """Register the enterprise on a legal-person card and its active administrator, no review."""
    return await register_card_admin(deps, request)


@routes.serve(contract.ADD_CARD_OPERATOR)
async def add_operator_by_card(request: AddCardOperator, deps: AccountsRuntime) -> OperatorView:
    """Add an operator bound to an operator card of the administrator's own enterprise."""
    return await add_card_operator(deps, request)


@routes.serve(contract.LOGOUT)
async def logout(request: Logout, deps: AccountsRuntime) -> None:
    """End the session; its token stops working at once."""
    async with deps.service.db.transaction() as connection:
        caller = await authenticate(deps, connection, request.token, allow=ALL_ACTIONS)
        await Accounts(connection).revoke_session(caller.digest, datetime.now(UTC))


@routes.serve(contract.SHOW_SESSION)
async def show_session(request: ShowSession, deps: AccountsRuntime) -> SessionView:
    """Show the current session and its required actions."""
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


@routes.serve(contract.SHOW_ACCOUNT)
async def show_account(request: ShowAccount, deps: AccountsRuntime) -> AccountView:
    """Show the caller's own account."""
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


@routes.serve(contract.SCOPE_OPTIONS)
async def scope_options(request: ScopeOptions, deps: AccountsRuntime) -> ScopeOptionList:
    """List the business scope choices, marking those the enterprise has declared."""
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


@routes.serve(contract.SET_SCOPE)
async def set_scope(request: SetScope, deps: AccountsRuntime) -> ScopeDeclared:
    """Declare the enterprise's business scope (administrator only); earlier ones are kept."""
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
    remaining = tuple(a for a in caller.required_actions if a is not RequiredAction.BUSINESS_SCOPE)
    return ScopeDeclared(codes=codes, version=version + 1, required_actions=remaining)


@routes.serve(contract.ONBOARDING_CHECK)
async def onboarding_check(request: OnboardingCheck, deps: AccountsRuntime) -> OnboardingCheckView:
    """Tell registration whether a USCC has an administrator and an account name is taken."""
    async with deps.service.db.reading() as connection:
        repository = Accounts(connection)
        return OnboardingCheckView(
            uscc_registered=await repository.enterprise_has_admin(request.uscc),
            account_taken=await repository.account_taken(request.account),
        )


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
    """Create the enterprise and its active administrator when an application is approved."""
    repository = Accounts(connection)
    uscc = onboarding.enterprise.uscc
    if await repository.enterprise_exists(uscc) or await repository.account_taken(
        onboarding.admin_account
    ):
        # Registered by another route (a card) since the application was vetted: nothing to create.
        log.error(
            "approved application cannot be applied",
            application_id=onboarding.application_id,
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
            application_id=onboarding.application_id,
        ),
        subject=uscc,
    )
