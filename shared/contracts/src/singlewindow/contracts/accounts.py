"""Contracts of the accounts service: enterprises, accounts, sessions, business scope, audit."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from singlewindow.contracts import notify, registration
from singlewindow.contracts.card_gateway import CardData, CardType, OperatorLevel
from singlewindow.contracts.common import (
    AccountHolder,
    AccountName,
    Email,
    Identified,
    Password,
    PersonName,
)
from singlewindow.contracts.endpoints import Audience, Endpoint, Subscription
from singlewindow.contracts.events import DAY, MIB, Discard, EventData, EventSpec, StreamSpec
from singlewindow.contracts.identifiers import MobileNumber, Uscc
from singlewindow.contracts.wire import AuthenticatedRequest, Request

SERVICE = "accounts"
QUEUE = "accounts"
STREAM = StreamSpec(
    name="SW_ACCOUNTS",
    subjects=("sw.events.accounts.>",),
    description=(
        "Enterprises, accounts and business scope. Kept 90 days, the oldest dropped when full:"
        " every reader follows it through its own durable consumer, and the accounts database,"
        " not the stream, is the record"
    ),
    max_age_seconds=90 * DAY,
    max_bytes=512 * MIB,
    discard=Discard.OLD,
)
AUDIT_STREAM = StreamSpec(
    name="SW_AUDIT",
    subjects=("sw.audit.>",),
    description=(
        "Audit trail: authentication attempts and administrative changes (not public). Kept"
        " 400 days (over the six months China's Cybersecurity Law asks of network logs); no"
        " record may be deleted or purged, and a full trail refuses new records rather than"
        " dropping old ones (the outbox keeps them until an operator makes room)"
    ),
    max_age_seconds=400 * DAY,
    max_bytes=2048 * MIB,
    discard=Discard.NEW,
    deny_delete=True,
    deny_purge=True,
)


ChallengeId = Annotated[str, Field(strict=True, pattern=r"^chl_[A-Za-z0-9_-]{16,64}$")]
CertificatePem = Annotated[str, Field(strict=True, min_length=1, max_length=16_000)]
Signature = Annotated[
    str,
    Field(
        strict=True,
        pattern=r"^[A-Za-z0-9+/]{4,200}={0,2}$",
        description="base64 of the DER SM2 signature",
    ),
]


class Role(StrEnum):
    """Kinds of account."""

    ADMIN = "admin"
    OPERATOR = "operator"
    INDIVIDUAL = "individual"


class RequiredAction(StrEnum):
    """What a session must do first, in this order, before anything else."""

    CHANGE_PASSWORD = "change_password"
    BUSINESS_SCOPE = "business_scope"


class BusinessScope(StrEnum):
    """The business an enterprise actually does: it drives default permissions and policies."""

    IMPORT_EXPORT_CONSIGNEE = "import_export_consignee"
    CUSTOMS_BROKER = "customs_broker"
    PROCESSING_TRADE = "processing_trade"
    CROSS_BORDER_ECOMMERCE = "cross_border_ecommerce"
    FREIGHT_FORWARDING = "freight_forwarding"
    WAREHOUSING_LOGISTICS = "warehousing_logistics"
    TRANSPORT_CARRIER = "transport_carrier"
    BONDED_ZONE = "bonded_zone"
    INSPECTION_DECLARATION = "inspection_declaration"
    EXPORT_TAX_REFUND = "export_tax_refund"


SCOPE_LABELS: dict[BusinessScope, tuple[str, str]] = {
    BusinessScope.IMPORT_EXPORT_CONSIGNEE: (
        "进出口货物收发货人",
        "Import/export consignee or consignor",
    ),
    BusinessScope.CUSTOMS_BROKER: ("报关企业", "Customs declaration enterprise (broker)"),
    BusinessScope.PROCESSING_TRADE: ("加工贸易", "Processing trade"),
    BusinessScope.CROSS_BORDER_ECOMMERCE: ("跨境电子商务", "Cross-border e-commerce"),
    BusinessScope.FREIGHT_FORWARDING: ("国际货运代理", "International freight forwarding"),
    BusinessScope.WAREHOUSING_LOGISTICS: ("仓储物流", "Warehousing and logistics"),
    BusinessScope.TRANSPORT_CARRIER: ("运输工具负责人", "Conveyance operator (carrier)"),
    BusinessScope.BONDED_ZONE: (
        "保税区/综合保税区企业",
        "Bonded or comprehensive bonded zone enterprise",
    ),
    BusinessScope.INSPECTION_DECLARATION: ("报检", "Inspection declaration"),
    BusinessScope.EXPORT_TAX_REFUND: ("出口退税", "Export tax refund"),
}


class LoginWithPassword(Request):
    """Open a session with an account name and password."""

    account: Annotated[str, Field(strict=True, min_length=1, max_length=64)]
    password: Password


class SessionView(BaseModel):
    """An open session: its token and what it must do first."""

    model_config = ConfigDict(frozen=True)

    token: str
    account: str
    role: Role
    uscc: str | None
    enterprise_name: str | None
    required_actions: tuple[RequiredAction, ...]
    expires_at: datetime
    idle_expires_at: datetime
    method: str = "password"
    """How the session was opened: `password` or `card`."""
    card_number: str | None = None
    """The card a card session is bound to."""
    operator_level: OperatorLevel | None = None


class Logout(AuthenticatedRequest):
    """End the session."""


class ShowSession(AuthenticatedRequest):
    """Show the current session."""


class ShowAccount(AuthenticatedRequest):
    """Show the session's own account."""


class AccountView(BaseModel):
    """An account as its owner sees it (ID number masked)."""

    model_config = ConfigDict(frozen=True)

    account: str
    role: Role
    name: str
    id_number_masked: str
    mobile_masked: str
    email: str | None
    uscc: str | None
    enterprise_name: str | None
    business_scope: tuple[BusinessScope, ...]
    created_at: datetime
    landline: str | None = None  # issue 9: account update
    customs_code: str | None = None
    """The enterprise's customs code, once its filing is approved (issue 11)."""


class ScopeOptions(AuthenticatedRequest):
    """List the business scope choices."""


class ScopeOption(BaseModel):
    """One business scope choice, with whether the enterprise has it now."""

    model_config = ConfigDict(frozen=True)

    code: BusinessScope
    name_zh: str
    name_en: str
    selected: bool


class ScopeOptionList(BaseModel):
    """Every business scope choice."""

    model_config = ConfigDict(frozen=True)

    options: tuple[ScopeOption, ...]


class SetScope(AuthenticatedRequest):
    """Declare the enterprise's business scope (replaces the current one; history is kept)."""

    codes: tuple[BusinessScope, ...]

    @field_validator("codes")
    @classmethod
    def _at_least_one(cls, codes: tuple[BusinessScope, ...]) -> tuple[BusinessScope, ...]:
        if not codes:
            raise ValueError("choose at least one business scope")
        return tuple(dict.fromkeys(codes))


class ScopeDeclared(BaseModel):
    """The business scope now in force, and the session's remaining required actions."""

    model_config = ConfigDict(frozen=True)

    codes: tuple[BusinessScope, ...]
    version: int
    required_actions: tuple[RequiredAction, ...]


class OnboardingCheck(Request):
    """Ask whether an enterprise and an account name are still free to register."""

    uscc: Uscc
    account: str


class OnboardingCheckView(BaseModel):
    """Whether the USCC already has an administrator, and whether the account name is taken."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    uscc_registered: bool
    account_taken: bool


class RequestCardChallenge(Request):
    """Ask for a fresh challenge for a card to sign."""


class CardChallenge(BaseModel):
    """A single-use challenge: have the card sign `challenge` and send it back before it expires."""

    model_config = ConfigDict(frozen=True)

    challenge_id: str
    challenge: str
    """Base64 of 32 random bytes: exactly what the card signs."""
    expires_at: datetime


class CardProof(Request):
    """A card's answer to a challenge: what card-gateway's SIGN_CHALLENGE returned."""

    challenge_id: ChallengeId
    certificate_pem: CertificatePem
    card: CardData
    signature: Signature


class LoginWithCard(CardProof):
    """Open a session for the account the card is bound to."""


class OperatorInfo(AccountHolder):
    """An operator and the account they ask for; a card operator's level comes from the card."""

    level: OperatorLevel | None = None


class RegisterCardAdmin(CardProof):
    """Register, with a legal-person card, the enterprise on the card and its administrator."""

    admin: AccountHolder


class AddCardOperator(CardProof):
    """Add an operator bound to an operator card of the caller's enterprise (administrator only)."""

    token: str
    operator: OperatorInfo


class CardStatus(Request):
    """Ask whether an enterprise already has an administrator, and whether a card is bound."""

    uscc: Uscc
    card_number: Annotated[str, Field(strict=True, min_length=1, max_length=40)] | None = None


class CardStatusView(BaseModel):
    """Whether the enterprise has an administrator (log in, do not register) and the card is bound."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    uscc: str
    enterprise_registered: bool
    has_administrator: bool
    card_bound: bool


class OperatorView(BaseModel):
    """An operator account as its administrator sees it."""

    model_config = ConfigDict(frozen=True)

    account: str
    role: Role
    operator_level: OperatorLevel | None
    name: str
    id_number_masked: str
    mobile_masked: str
    email: str | None
    uscc: str | None
    enterprise_name: str | None
    status: str
    card_number: str | None
    created_at: datetime


class EnterpriseRegistered(EventData):
    """An enterprise and its administrator were created, active."""

    uscc: str
    name: str
    admin_account: str
    admin_name: str
    via: str
    application_id: str | None


class BusinessScopeDeclared(EventData):
    """An enterprise declared (or changed) its business scope."""

    uscc: str
    codes: tuple[str, ...]
    version: int
    declared_by: str


class OperatorAdded(EventData):
    """An administrator added an operator account to their enterprise."""

    uscc: str
    account: str
    name: str
    level: str | None
    via: str
    card_number: str | None
    added_by: str


class AuthenticationAttempted(EventData):
    """Someone tried to log in or prove a card (audit; never carries a password or PIN)."""

    account: str
    method: str
    outcome: str
    reason: str | None
    card_number: str | None = None
    purpose: str | None = None
    """For card proofs: `login`, `register-admin` or `add-operator`."""


ENTERPRISE_REGISTERED = EventSpec(SERVICE, "enterprise-registered", 1, EnterpriseRegistered)
OPERATOR_ADDED = EventSpec(SERVICE, "operator-added", 1, OperatorAdded)
BUSINESS_SCOPE_DECLARED = EventSpec(SERVICE, "business-scope-declared", 1, BusinessScopeDeclared)
AUTHENTICATION_ATTEMPTED = EventSpec(
    SERVICE, "authentication-attempted", 1, AuthenticationAttempted, audit=True
)


LOGIN_PASSWORD = Endpoint(
    SERVICE, "login.password", LoginWithPassword, SessionView, Audience.PUBLIC, changes_state=True
)
LOGOUT: Endpoint[Logout, None] = Endpoint(
    SERVICE, "logout", Logout, None, Audience.SESSION, changes_state=True
)
SHOW_SESSION = Endpoint(SERVICE, "session.show", ShowSession, SessionView, Audience.SESSION)
SHOW_ACCOUNT = Endpoint(SERVICE, "account.show", ShowAccount, AccountView, Audience.SESSION)
SCOPE_OPTIONS = Endpoint(SERVICE, "scope.options", ScopeOptions, ScopeOptionList, Audience.SESSION)
SET_SCOPE = Endpoint(
    SERVICE, "scope.set", SetScope, ScopeDeclared, Audience.SESSION, changes_state=True
)
ONBOARDING_CHECK = Endpoint(
    SERVICE, "onboarding.check", OnboardingCheck, OnboardingCheckView, Audience.SERVICE
)
CARD_CHALLENGE = Endpoint(
    SERVICE,
    "card.challenge",
    RequestCardChallenge,
    CardChallenge,
    Audience.PUBLIC,
    changes_state=True,
)
CARD_STATUS = Endpoint(SERVICE, "card.status", CardStatus, CardStatusView, Audience.PUBLIC)
LOGIN_CARD = Endpoint(
    SERVICE, "login.card", LoginWithCard, SessionView, Audience.PUBLIC, changes_state=True
)
REGISTER_CARD_ADMIN = Endpoint(
    SERVICE,
    "card.register-admin",
    RegisterCardAdmin,
    SessionView,
    Audience.PUBLIC,
    changes_state=True,
)
ADD_CARD_OPERATOR = Endpoint(
    SERVICE,
    "operators.add-card",
    AddCardOperator,
    OperatorView,
    Audience.SESSION,
    changes_state=True,
)

REGISTRATION_APPROVALS = Subscription(
    SERVICE,
    registration.STREAM,
    registration.APPROVED,
    "accounts-registration-approved",
    "Create the enterprise and its administrator of each approved application",
)


# Staff: the platform's own people (reviewers, supervisors, platform administrators), apart from
# enterprise accounts: their own names, sessions and audit events.


class StaffRole(StrEnum):
    """What a staff account does on the platform."""

    REVIEWER = "reviewer"
    """Claims and decides review tasks."""
    SUPERVISOR = "supervisor"
    """A reviewer who also sees all work and reassigns tasks."""
    PLATFORM_ADMIN = "platform-admin"
    """Manages staff accounts and imports reference data."""


class StaffStatus(StrEnum):
    """Whether a staff account may log in."""

    ACTIVE = "active"
    DISABLED = "disabled"


class StaffLogin(Request):
    """Open a staff session with a staff account name and password."""

    account: Annotated[str, Field(strict=True, min_length=1, max_length=64)]
    password: Password


class StaffSessionView(BaseModel):
    """An open staff session: its token and what it must do first."""

    model_config = ConfigDict(frozen=True)

    token: str
    account: str
    role: StaffRole
    required_actions: tuple[RequiredAction, ...]
    expires_at: datetime
    idle_expires_at: datetime


class StaffLogout(AuthenticatedRequest):
    """End the staff session."""


class ChangeStaffPassword(AuthenticatedRequest):
    """Change the caller's own staff password; every session of the account ends, a new one opens."""

    current_password: Password
    new_password: Password


class AddStaff(AuthenticatedRequest):
    """Add a staff account with a one-time password (platform administrators only)."""

    account: AccountName
    role: StaffRole


class ListStaff(AuthenticatedRequest):
    """List the staff accounts (platform administrators only)."""


class DisableStaff(AuthenticatedRequest):
    """Disable a staff account: its sessions end and it cannot log in (platform administrators)."""

    account: AccountName


class EnableStaff(AuthenticatedRequest):
    """Enable a disabled staff account again (platform administrators only)."""

    account: AccountName


class StaffView(BaseModel):
    """A staff account as a platform administrator sees it."""

    model_config = ConfigDict(frozen=True)

    account: str
    role: StaffRole
    status: StaffStatus
    password_must_change: bool
    created_at: datetime
    created_by: str


class StaffAdded(BaseModel):
    """A new staff account and the one-time password to hand its holder."""

    model_config = ConfigDict(frozen=True)

    staff: StaffView
    one_time_password: str
    """Shown once; the holder must change it at first login."""


class StaffList(BaseModel):
    """Every staff account, by name."""

    model_config = ConfigDict(frozen=True)

    staff: tuple[StaffView, ...]


class ResolveStaffSession(Request):
    """Say who a staff token belongs to, if its session is live (the idle clock restarts)."""

    token: str


class StaffCaller(BaseModel):
    """The staff member behind a live session."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    account: str
    role: StaffRole


class ShowStaffMember(Request):
    """Say whether a staff account exists, its role and whether it is active."""

    account: Annotated[str, Field(strict=True, min_length=1, max_length=64)]


class StaffMember(BaseModel):
    """A staff account as other services see it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    account: str
    role: StaffRole
    status: StaffStatus


class StaffAuthenticationAttempted(EventData):
    """Someone tried to log in as staff (audit; never carries a password or token)."""

    account: str
    outcome: str
    reason: str | None


class StaffChanged(EventData):
    """A staff account was created, disabled, enabled or changed its password (audit)."""

    account: str
    change: str
    """`bootstrapped`, `added`, `disabled`, `enabled` or `password-changed`."""
    role: StaffRole
    by: str
    """The staff account that made the change (the deployment, for `bootstrapped`)."""


STAFF_AUTHENTICATION_ATTEMPTED = EventSpec(
    SERVICE, "staff-authentication-attempted", 1, StaffAuthenticationAttempted, audit=True
)
STAFF_CHANGED = EventSpec(SERVICE, "staff-changed", 1, StaffChanged, audit=True)

STAFF_LOGIN = Endpoint(
    SERVICE, "staff.login", StaffLogin, StaffSessionView, Audience.PUBLIC, changes_state=True
)
STAFF_LOGOUT: Endpoint[StaffLogout, None] = Endpoint(
    SERVICE, "staff.logout", StaffLogout, None, Audience.BACK_OFFICE, changes_state=True
)
STAFF_PASSWORD = Endpoint(
    SERVICE,
    "staff.password",
    ChangeStaffPassword,
    StaffSessionView,
    Audience.BACK_OFFICE,
    changes_state=True,
)
STAFF_ADD = Endpoint(
    SERVICE, "staff.add", AddStaff, StaffAdded, Audience.BACK_OFFICE, changes_state=True
)
STAFF_LIST = Endpoint(SERVICE, "staff.list", ListStaff, StaffList, Audience.BACK_OFFICE)
STAFF_DISABLE = Endpoint(
    SERVICE, "staff.disable", DisableStaff, StaffView, Audience.BACK_OFFICE, changes_state=True
)
STAFF_ENABLE = Endpoint(
    SERVICE, "staff.enable", EnableStaff, StaffView, Audience.BACK_OFFICE, changes_state=True
)
RESOLVE_STAFF_SESSION = Endpoint(
    SERVICE, "staff.session.resolve", ResolveStaffSession, StaffCaller, Audience.SERVICE
)
SHOW_STAFF_MEMBER = Endpoint(
    SERVICE, "staff.member.show", ShowStaffMember, StaffMember, Audience.SERVICE
)


# --- My IC card (issue 9) ---
# An account binds one card of its own enterprise (a legal-person card for the administrator, an
# operator card at the operator's level for an operator); that card then logs in to that account
# only. Unbinding takes the account's current password and ends every session of that card.


class BindCard(CardProof):
    """Bind the card that answered the challenge to the session's own account (My IC card)."""

    token: str


class UnbindCard(AuthenticatedRequest):
    """End the binding of the account's card, and every session opened with it (password needed)."""

    current_password: Password


class ShowCardBinding(AuthenticatedRequest):
    """Show the card bound to the session's own account, if one is."""


class CardBindingView(BaseModel):
    """A card bound to an account: what it is and the certificate it was bound with."""

    model_config = ConfigDict(frozen=True)

    account: str
    card_number: str
    card_type: CardType
    operator_level: OperatorLevel | None
    bound_at: datetime
    certificate_serial: str
    """The certificate's serial number, hexadecimal (as `swctl card issue` prints it)."""
    certificate_not_before: datetime | None
    certificate_not_after: datetime | None
    """The certificate's validity; unknown (None) for cards bound before it was kept."""


class MyCard(BaseModel):
    """The account's card binding, or None: no card is bound."""

    model_config = ConfigDict(frozen=True)

    account: str
    binding: CardBindingView | None


class CardUnbound(BaseModel):
    """The binding that ended, and how many sessions of the card ended with it."""

    model_config = ConfigDict(frozen=True)

    account: str
    card_number: str
    sessions_ended: int
    this_session_ended: bool
    """Whether the session that asked was opened with the card, and so has ended too."""


class CardBindingChanged(EventData):
    """A card was bound to or unbound from an account (public: no secret, no ID number)."""

    uscc: str
    account: str
    card_number: str
    card_type: str


class CardBindingAudited(EventData):
    """Who bound or unbound which card of which account (audit)."""

    uscc: str
    account: str
    change: str
    """`bound` or `unbound`."""
    card_number: str
    card_type: str
    by: str
    """The account whose session made the change (the account itself)."""
    session_method: str
    sessions_ended: int = 0


CARD_BOUND = EventSpec(SERVICE, "card-bound", 1, CardBindingChanged)
CARD_UNBOUND = EventSpec(SERVICE, "card-unbound", 1, CardBindingChanged)
CARD_BINDING_AUDITED = EventSpec(SERVICE, "card-binding-changed", 1, CardBindingAudited, audit=True)

CARD_BIND = Endpoint(
    SERVICE, "card.bind", BindCard, CardBindingView, Audience.SESSION, changes_state=True
)
CARD_UNBIND = Endpoint(
    SERVICE, "card.unbind", UnbindCard, CardUnbound, Audience.SESSION, changes_state=True
)
CARD_SHOW = Endpoint(SERVICE, "card.show", ShowCardBinding, MyCard, Audience.SESSION)


# --- one-time codes, mobile, individuals (issue 9) ---
# A one-time code goes out on the notification stream alone (`contracts.notify`): the requests
# below carry it in, no reply or event carries it out, and every verify attempt is audited as an
# `authentication-attempted` with method `one-time-code` (without the code).

NOTIFY_STREAM = notify.STREAM
"""Accounts declares (creates) the notification stream: it sends the platform's messages."""
MESSAGE_REQUESTED = notify.message_requested(SERVICE)

OneTimeCode = Annotated[
    str, Field(strict=True, pattern=r"^[0-9]{6}$", description="the 6-digit one-time code")
]


class CodePurpose(StrEnum):
    """What a one-time code proves."""

    MOBILE_CHANGE = "mobile_change"
    INDIVIDUAL_ACTIVATION = "individual_activation"


class ChangeMobile(AuthenticatedRequest):
    """Send a one-time code to a new mobile number, to make it the account's."""

    mobile: MobileNumber


class VerifyMobile(AuthenticatedRequest):
    """Make the new mobile number the account's, with the code sent to it."""

    code: OneTimeCode


class CodeSent(BaseModel):
    """A one-time code was sent; it is good until `expires_at`, for `tries` attempts."""

    model_config = ConfigDict(frozen=True)

    account: str
    purpose: CodePurpose
    to_masked: str
    expires_at: datetime
    tries: int


class MobileChanged(EventData):
    """An account's mobile number changed, proven by a code sent to the new one (audit)."""

    account: str
    uscc: str | None
    mobile_masked: str
    previous_mobile_masked: str


class RegisterIndividual(AccountHolder):
    """Register an individual user (no enterprise); a code to the mobile activates it."""


class ActivateIndividual(Request):
    """Activate a registered individual account with the code sent to its mobile."""

    account: Annotated[str, Field(strict=True, min_length=1, max_length=64)]
    code: OneTimeCode


class IndividualActivated(BaseModel):
    """The individual account is active: log in with its name and password."""

    model_config = ConfigDict(frozen=True)

    account: str
    role: Role
    status: str
    activated_at: datetime


class IndividualRegistered(EventData):
    """An individual user's account became active (its mobile proven); no full ID number."""

    account: str
    name: str
    id_type: str
    id_number_masked: str
    activated_at: datetime


MOBILE_CHANGED = EventSpec(SERVICE, "mobile-changed", 1, MobileChanged, audit=True)
INDIVIDUAL_REGISTERED = EventSpec(SERVICE, "individual-registered", 1, IndividualRegistered)

MOBILE_CHANGE = Endpoint(
    SERVICE, "mobile.change", ChangeMobile, CodeSent, Audience.SESSION, changes_state=True
)
MOBILE_VERIFY = Endpoint(
    SERVICE, "mobile.verify", VerifyMobile, AccountView, Audience.SESSION, changes_state=True
)
REGISTER_INDIVIDUAL = Endpoint(
    SERVICE,
    "individuals.register",
    RegisterIndividual,
    CodeSent,
    Audience.PUBLIC,
    changes_state=True,
)
ACTIVATE_INDIVIDUAL = Endpoint(
    SERVICE,
    "individuals.activate",
    ActivateIndividual,
    IndividualActivated,
    Audience.PUBLIC,
    changes_state=True,
)


# --- operators, password, account update (issue 9) ---
# Cardless operators: added by their enterprise's administrator with a one-time password (the
# guide's 88888888 by default, or a random one sent to the operator's mobile), changed, disabled,
# enabled, deleted; every account's own details and password. Who may do what is
# `accounts.authorization.PERMISSIONS`; every change is an `account-changed` audit event.

Landline = Annotated[
    str,
    Field(strict=True, description="a landline number: digits, spaces and + - ( ), 5-30"),
    StringConstraints(strip_whitespace=True, pattern=r"^[0-9+()\- ]{5,30}$"),
]

NOT_EDITABLE = ("account", "id_type", "id_number")
"""An account's name and identity document are fixed once it exists."""


class _RefusesIdentity(Request):
    """Changes that name the fields they may not change, to refuse them by name."""

    account: object = Field(default=None, exclude=True, json_schema_extra={"deprecated": True})
    id_type: object = Field(default=None, exclude=True, json_schema_extra={"deprecated": True})
    id_number: object = Field(default=None, exclude=True, json_schema_extra={"deprecated": True})

    @field_validator(*NOT_EDITABLE, mode="before")
    @classmethod
    def _not_editable(cls, value: object) -> object:
        raise ValueError("cannot be changed once the account exists")


class UpdateAccount(_RefusesIdentity):
    """Change the caller's own name, e-mail or landline (what is given; null clears e-mail and
    landline). The account name and ID number are not editable."""

    token: str
    name: PersonName | None = None
    email: Email | None = None
    landline: Landline | None = None


class ChangePassword(AuthenticatedRequest):
    """Change the caller's own password: every other session of the account ends."""

    current_password: Password
    new_password: Password


class CardlessOperator(Identified):
    """An operator without a card: who they are, their account name and level; no password (the
    platform gives a one-time one)."""

    account: AccountName
    email: Email | None = None
    landline: Landline | None = None
    level: OperatorLevel
    password: object = Field(default=None, exclude=True, json_schema_extra={"deprecated": True})

    @field_validator("password", mode="before")
    @classmethod
    def _no_password(cls, value: object) -> object:
        raise ValueError(
            "leave it out: a cardless operator's first password is a one-time one the platform"
            " gives"
        )


class AddOperator(AuthenticatedRequest):
    """Add a cardless operator to the caller's enterprise (administrator only)."""

    operator: CardlessOperator


class OperatorName(AuthenticatedRequest):
    """Name one operator of the caller's enterprise (administrator only)."""

    account: Annotated[str, Field(strict=True, min_length=1, max_length=64)]


class ListOperators(AuthenticatedRequest):
    """List the operators of the caller's enterprise (administrator only)."""


class ShowOperator(OperatorName):
    """Show one operator of the caller's enterprise."""


class DisableOperator(OperatorName):
    """Disable an operator: its sessions end at once and it cannot log in."""


class EnableOperator(OperatorName):
    """Enable a disabled operator again."""


class DeleteOperator(OperatorName):
    """Delete an operator: its sessions end, its history stays, its login is refused."""


class ResetOperatorPassword(OperatorName):
    """Give an operator a new one-time password (it must be changed at the next login)."""


class OperatorChanges(_RefusesIdentity):
    """What to change of an operator: what is given (null clears e-mail and landline); the
    account name and ID number are not editable."""

    name: PersonName | None = None
    email: Email | None = None
    landline: Landline | None = None
    level: OperatorLevel | None = None
    """A cardless operator's level; a card operator's level is its card's."""


class UpdateOperator(OperatorName):
    """Change an operator's name, e-mail, landline or (cardless) level."""

    changes: OperatorChanges


class OperatorDetails(BaseModel):
    """An operator as their administrator sees it, with its one-time password's state (never
    the password)."""

    model_config = ConfigDict(frozen=True)

    account: str
    role: Role
    operator_level: OperatorLevel | None
    name: str
    id_number_masked: str
    mobile_masked: str
    email: str | None
    landline: str | None
    uscc: str | None
    enterprise_name: str | None
    status: str
    card_number: str | None
    password_must_change: bool
    password_expires_at: datetime | None
    """Until when an unused one-time password logs in."""
    initial_password: str
    """How the one-time password was given: `default` (the guide's 88888888), `random` (sent to
    the operator's mobile), or `none` (the operator set their own)."""
    created_at: datetime


class OperatorList(BaseModel):
    """The enterprise's operators (deleted ones left out), by account name."""

    model_config = ConfigDict(frozen=True)

    operators: tuple[OperatorDetails, ...]


class OperatorChanged(EventData):
    """An administrator changed an operator's details: which fields (not their values)."""

    uscc: str
    account: str
    fields: tuple[str, ...]
    level: str | None
    by: str


class OperatorStatusChanged(EventData):
    """An operator was disabled, enabled or deleted by their administrator."""

    uscc: str
    account: str
    by: str


class AccountChanged(EventData):
    """An administrative change to an account, or an account's change to itself (audit): who did
    what to whom. Never a password, code or full ID number."""

    account: str
    uscc: str | None
    change: str
    """`operator-added`, `operator-changed`, `operator-disabled`, `operator-enabled`,
    `operator-deleted`, `password-reset`, `password-changed` or `account-updated`."""
    by: str
    fields: tuple[str, ...] = ()
    """The fields changed, by name."""


OPERATOR_CHANGED = EventSpec(SERVICE, "operator-changed", 1, OperatorChanged)
OPERATOR_DISABLED = EventSpec(SERVICE, "operator-disabled", 1, OperatorStatusChanged)
OPERATOR_ENABLED = EventSpec(SERVICE, "operator-enabled", 1, OperatorStatusChanged)
OPERATOR_DELETED = EventSpec(SERVICE, "operator-deleted", 1, OperatorStatusChanged)
ACCOUNT_CHANGED = EventSpec(SERVICE, "account-changed", 1, AccountChanged, audit=True)

UPDATE_ACCOUNT = Endpoint(
    SERVICE, "account.update", UpdateAccount, AccountView, Audience.SESSION, changes_state=True
)
CHANGE_PASSWORD = Endpoint(
    SERVICE, "password.change", ChangePassword, SessionView, Audience.SESSION, changes_state=True
)
ADD_OPERATOR = Endpoint(
    SERVICE, "operators.add", AddOperator, OperatorDetails, Audience.SESSION, changes_state=True
)
LIST_OPERATORS = Endpoint(SERVICE, "operators.list", ListOperators, OperatorList, Audience.SESSION)
SHOW_OPERATOR = Endpoint(SERVICE, "operators.show", ShowOperator, OperatorDetails, Audience.SESSION)
UPDATE_OPERATOR = Endpoint(
    SERVICE,
    "operators.update",
    UpdateOperator,
    OperatorDetails,
    Audience.SESSION,
    changes_state=True,
)
DISABLE_OPERATOR = Endpoint(
    SERVICE,
    "operators.disable",
    DisableOperator,
    OperatorDetails,
    Audience.SESSION,
    changes_state=True,
)
ENABLE_OPERATOR = Endpoint(
    SERVICE,
    "operators.enable",
    EnableOperator,
    OperatorDetails,
    Audience.SESSION,
    changes_state=True,
)
DELETE_OPERATOR = Endpoint(
    SERVICE,
    "operators.delete",
    DeleteOperator,
    OperatorDetails,
    Audience.SESSION,
    changes_state=True,
)
RESET_OPERATOR_PASSWORD = Endpoint(
    SERVICE,
    "operators.reset-password",
    ResetOperatorPassword,
    OperatorDetails,
    Audience.SESSION,
    changes_state=True,
)


# --- customs filing (issue 11): who is calling, for another service's checks ---


class ResolveSession(Request):
    """Say whose live enterprise session a token is, for another service's own checks."""

    token: str


# --- qualifications and permissions (issue 10) ---
# My qualifications: the enterprise's basic information (read-only) and its inspection
# qualification, edited with optimistic versioning. The inspection password goes in with a save
# and never comes out: replies say whether it is set, events say "password changed".
# My application permissions: a catalogue of business applications (data, in the accounts
# service), defaults from the business scope, the administrator's revocations and restores.
# The decision API (`permissions.check`, `session.introspect`) is for the business systems.

RegistrationNumber = Annotated[
    str,
    Field(
        strict=True,
        pattern=r"^[0-9]{10}$",
        description="the 10-digit inspection registration number (报检单位注册号)",
    ),
]
AuthorityCode = Annotated[
    str, Field(strict=True, pattern=r"^[0-9A-Z]{2,10}$", description="an accepting authority code")
]
ApplicationId = Annotated[str, Field(strict=True, pattern=r"^[a-z_]{2,40}$")]
Version = Annotated[int, Field(strict=True, ge=0)]


class PermissionAction(StrEnum):
    """What an account may do in a business application."""

    QUERY = "query"
    ENTRY = "entry"
    DECLARE = "declare"


class InspectionQualificationInput(Request):
    """The inspection qualification as a save gives it; `password` left out keeps the current."""

    registration_number: RegistrationNumber | None = None
    declaration_account: Annotated[str, Field(strict=True, min_length=1, max_length=64)] | None = (
        None
    )
    password: Annotated[str, Field(strict=True, min_length=1, max_length=128)] | None = None
    authority: AuthorityCode | None = None


class ShowQualifications(AuthenticatedRequest):
    """Show the enterprise's qualifications (any account of the enterprise)."""


class EditQualifications(AuthenticatedRequest):
    """Open the qualifications for editing (administrator): the record and its version."""


class SaveQualifications(AuthenticatedRequest):
    """Save the qualifications opened at `version`; refused if someone saved since."""

    version: Version
    inspection: InspectionQualificationInput


class ListAuthorities(Request):
    """List the accepting authorities (受理机关) an inspection qualification may name."""


class EnterpriseBasics(BaseModel):
    """The enterprise's basic information, from its card or approved registration (read-only)."""

    model_config = ConfigDict(frozen=True)

    uscc: str
    name: str
    name_en: str | None
    division: str
    address: str | None
    legal_rep_name: str | None
    registered_via: str
    registered_at: datetime


class InspectionQualification(BaseModel):
    """The inspection qualification as shown: never the password, only whether it is set."""

    model_config = ConfigDict(frozen=True)

    registration_number: str | None
    declaration_account: str | None
    password_set: bool
    authority: str | None
    authority_name: str | None


class QualificationsView(BaseModel):
    """My qualifications: basics, the inspection qualification, its version and who saved it."""

    model_config = ConfigDict(frozen=True)

    basics: EnterpriseBasics
    inspection: InspectionQualification
    version: int
    """0 until the first save; a save must name the version it was opened at."""
    updated_by: str | None
    updated_at: datetime | None
    editable: bool
    """Whether the caller may edit (the administrator)."""


class Authority(BaseModel):
    """An accepting authority: its code and name."""

    model_config = ConfigDict(frozen=True)

    code: str
    name_zh: str
    name_en: str


class AuthorityList(BaseModel):
    """The accepting authorities."""

    model_config = ConfigDict(frozen=True)

    authorities: tuple[Authority, ...]


class FieldChange(BaseModel):
    """One field a change touched: old and new values, none for the secret."""

    model_config = ConfigDict(frozen=True)

    field: str
    old: str | None = None
    new: str | None = None
    note: str | None = None
    """For the secret: "password changed" (its values are never recorded)."""


class QualificationsChanged(EventData):
    """The enterprise's qualifications were saved (audit): who, the version, what changed."""

    uscc: str
    version: int
    changed_by: str
    changes: tuple[FieldChange, ...]


class ListPermissions(AuthenticatedRequest):
    """List the application permissions of the enterprise, or of one of its operators."""

    operator: AccountName | None = None


class ChangePermission(AuthenticatedRequest):
    """Revoke or restore an application (one action, or all) for the enterprise or an operator."""

    application: ApplicationId
    action: PermissionAction | None = None
    """None: every action of the application."""
    operator: AccountName | None = None
    """None: for the whole enterprise."""


class PermissionEntry(BaseModel):
    """Whether an application's action is granted, and why."""

    model_config = ConfigDict(frozen=True)

    application: str
    name_zh: str
    name_en: str
    action: PermissionAction
    granted: bool
    reason: str


class PermissionList(BaseModel):
    """Every application and action, granted or not, for the enterprise or an operator."""

    model_config = ConfigDict(frozen=True)

    uscc: str
    operator: str | None
    operator_level: OperatorLevel | None
    permissions: tuple[PermissionEntry, ...]


class PermissionsChanged(EventData):
    """An enterprise's permissions changed: business systems drop their cached answers."""

    uscc: str
    operator: str | None
    """The operator it changed for; None: the enterprise (every account)."""
    application: str | None
    """None: several applications (a business scope change)."""
    actions: tuple[str, ...]
    change: str
    """`revoked`, `restored` or `scope-changed`."""
    changed_by: str


class CheckPermission(Request):
    """May this session (`token`) or account (`account`) take `action` in `application`?"""

    token: str | None = None
    account: AccountName | None = None
    application: ApplicationId
    action: PermissionAction


class PermissionDecision(BaseModel):
    """Allowed or refused, with the reason."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str
    account: str | None = None
    uscc: str | None = None


class IntrospectSession(Request):
    """Whether a session token is active and whose it is (RFC 7662 token introspection)."""

    token: str


class EnterpriseCaller(BaseModel):
    """The enterprise account behind a live session, as other services see it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    account: str
    role: Role
    uscc: str
    enterprise_name: str
    operator_level: OperatorLevel | None
    registered_via: str
    """How the enterprise was registered: `card` or `cardless`."""
    card_customs_code: str | None = None
    """The customs code the legal-person card that registered the enterprise carries, if any:
    its imported filing record must have the same one."""


RESOLVE_SESSION = Endpoint(
    SERVICE, "session.resolve", ResolveSession, EnterpriseCaller, Audience.SERVICE
)


# The customs code an approved filing assigned, shown on the enterprise (filing's `filed` event).
from singlewindow.contracts import filing as _filing  # noqa: E402

FILING_RECORDS = Subscription(
    SERVICE,
    _filing.STREAM,
    _filing.FILED,
    "accounts-filing-filed",
    "Keep each enterprise's customs code once its first filing is approved",
)


class Introspection(BaseModel):
    """RFC 7662's answer: `active`, and for an active token whose it is and until when."""

    model_config = ConfigDict(frozen=True)

    active: bool
    sub: str | None = None
    """The account's id."""
    username: str | None = None
    """The account name."""
    token_type: str | None = None
    enterprise: str | None = None
    """The enterprise's USCC."""
    role: Role | None = None
    level: OperatorLevel | None = None
    method: str | None = None
    iat: int | None = None
    exp: int | None = None
    """When the session ends if it stays active (its idle limit), seconds since the epoch."""


QUALIFICATIONS_CHANGED = EventSpec(
    SERVICE, "qualifications-changed", 1, QualificationsChanged, audit=True
)
PERMISSIONS_CHANGED = EventSpec(SERVICE, "permissions-changed", 1, PermissionsChanged)
PERMISSIONS_AUDITED = EventSpec(
    SERVICE, "application-permissions-changed", 1, PermissionsChanged, audit=True
)

QUALIFICATIONS_SHOW = Endpoint(
    SERVICE, "qualifications.show", ShowQualifications, QualificationsView, Audience.SESSION
)
QUALIFICATIONS_EDIT = Endpoint(
    SERVICE, "qualifications.edit", EditQualifications, QualificationsView, Audience.SESSION
)
QUALIFICATIONS_SAVE = Endpoint(
    SERVICE,
    "qualifications.save",
    SaveQualifications,
    QualificationsView,
    Audience.SESSION,
    changes_state=True,
)
AUTHORITIES_LIST = Endpoint(
    SERVICE, "qualifications.authorities", ListAuthorities, AuthorityList, Audience.PUBLIC
)
PERMISSIONS_LIST = Endpoint(
    SERVICE, "permissions.list", ListPermissions, PermissionList, Audience.SESSION
)
PERMISSIONS_REVOKE = Endpoint(
    SERVICE,
    "permissions.revoke",
    ChangePermission,
    PermissionList,
    Audience.SESSION,
    changes_state=True,
)
PERMISSIONS_RESTORE = Endpoint(
    SERVICE,
    "permissions.restore",
    ChangePermission,
    PermissionList,
    Audience.SESSION,
    changes_state=True,
)
PERMISSIONS_CHECK = Endpoint(
    SERVICE, "permissions.check", CheckPermission, PermissionDecision, Audience.SERVICE
)
SESSION_INTROSPECT = Endpoint(
    SERVICE, "session.introspect", IntrospectSession, Introspection, Audience.SERVICE
)
DECISIONS = (PERMISSIONS_CHECK, SESSION_INTROSPECT)
"""The business systems' requests (the `business` NATS user's)."""
