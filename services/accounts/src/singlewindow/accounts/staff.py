"""Staff accounts: the platform's own people, apart from enterprise accounts.

Reviewers, supervisors and platform administrators have their own names, sessions and audit
events. They share the enterprise accounts' password policy, argon2id hashing and login
throttle (`login.reserve_attempt`, under a `staff:` key no enterprise account name can take).
The first platform administrator comes from the deployment (`bootstrap_admin`), with a one-time
password that must be changed before anything else.

    caller = await authorize_staff(deps, connection, request.token, StaffAction.MANAGE_STAFF)
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import structlog
from pydantic import TypeAdapter, ValidationError
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import (
    INCORRECT_CREDENTIALS,
    account_key,
    new_session_token,
    token_digest,
)
from singlewindow.accounts.login import Logins, reserve_attempt, throttled
from singlewindow.accounts.routes import routes
from singlewindow.accounts.tables import sessions, staff, staff_sessions
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AddStaff,
    ChangeStaffPassword,
    DisableStaff,
    EnableStaff,
    ListStaff,
    RequiredAction,
    ResolveStaffSession,
    ShowStaffMember,
    StaffAdded,
    StaffAuthenticationAttempted,
    StaffCaller,
    StaffChanged,
    StaffList,
    StaffLogin,
    StaffLogout,
    StaffMember,
    StaffRole,
    StaffSessionView,
    StaffStatus,
    StaffView,
)
from singlewindow.contracts.common import AccountName
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.runtime.db import as_utc
from singlewindow.runtime.passwords import policy_problem
from sqlalchemy import bindparam, exists, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.staff")

DEPLOYMENT = "deployment"
"""Who `bootstrapped` the first platform administrator, as the audit trail says."""
THROTTLE_PREFIX = "staff:"
"""Staff logins are throttled under `staff:<name>`: no enterprise account name has a colon."""
ENDED = "staff session has expired or was ended; log in again with `swctl staff login`"
CHANGE_FIRST = "first change the one-time password (`swctl staff password`)"
ENTERPRISE_SESSION = "this is an enterprise session; staff requests need a staff session"


class StaffAction(StrEnum):
    """What a staff session asks to do."""

    LOGOUT = "logout"
    CHANGE_PASSWORD = "change_password"
    IDENTIFY = "identify"
    """Tell another service who is calling; that service decides what the role may do there
    (review: reviewers and supervisors)."""
    MANAGE_STAFF = "manage_staff"
    IMPORT_REFERENCE_DATA = "import_reference_data"
    """No endpoint takes it yet: the role holds the permission for when one does."""


@dataclass(frozen=True)
class StaffPermission:
    """Which roles take an action, and whether a session owing a password change may."""

    roles: frozenset[StaffRole]
    before_password_change: bool = False
    forbidden: str = "this staff account may not do that"


ANY_STAFF = frozenset(StaffRole)
PLATFORM_ADMIN = frozenset({StaffRole.PLATFORM_ADMIN})

STAFF_PERMISSIONS: dict[StaffAction, StaffPermission] = {
    StaffAction.LOGOUT: StaffPermission(ANY_STAFF, before_password_change=True),
    StaffAction.CHANGE_PASSWORD: StaffPermission(ANY_STAFF, before_password_change=True),
    StaffAction.IDENTIFY: StaffPermission(ANY_STAFF),
    StaffAction.MANAGE_STAFF: StaffPermission(
        PLATFORM_ADMIN, forbidden="only a platform administrator manages staff"
    ),
    StaffAction.IMPORT_REFERENCE_DATA: StaffPermission(
        PLATFORM_ADMIN, forbidden="only a platform administrator imports reference data"
    ),
}


@dataclass(frozen=True)
class StaffRecord:
    """A staff account as stored."""

    staff_id: str
    account: str
    role: StaffRole
    password_hash: str
    password_must_change: bool
    status: StaffStatus
    created_at: datetime
    created_by: str

    @property
    def required_actions(self) -> tuple[RequiredAction, ...]:
        """What a session of this account must do first."""
        return (RequiredAction.CHANGE_PASSWORD,) if self.password_must_change else ()

    def view(self) -> StaffView:
        """The account as a platform administrator sees it."""
        return StaffView(
            account=self.account,
            role=self.role,
            status=self.status,
            password_must_change=self.password_must_change,
            created_at=self.created_at,
            created_by=self.created_by,
        )


@dataclass(frozen=True)
class StaffCallerRecord:
    """A live staff session and its account."""

    member: StaffRecord
    digest: str


def staff_refusal(member: StaffRecord, action: StaffAction) -> DomainError | None:
    """Why `member` may not take `action` now, or None if it may."""
    permission = STAFF_PERMISSIONS[action]
    if member.password_must_change and not permission.before_password_change:
        return DomainError(ErrorCode.ACTION_REQUIRED, CHANGE_FIRST)
    if member.role not in permission.roles:
        return DomainError(ErrorCode.FORBIDDEN, permission.forbidden)
    return None


def new_staff_id() -> str:
    """A staff account's id: random, telling nothing of the account."""
    return f"stf_{secrets.token_urlsafe(12)}"


def new_one_time_password() -> str:
    """A one-time password: 96 random bits, to be replaced at first login."""
    return secrets.token_urlsafe(12)


def throttle_key(account: str) -> str:
    """The login throttle's key for a staff account name."""
    return THROTTLE_PREFIX + account_key(account)


def _record(row: RowMapping) -> StaffRecord:
    return StaffRecord(
        staff_id=row["staff_id"],
        account=row["account"],
        role=StaffRole(row["role"]),
        password_hash=row["password_hash"],
        password_must_change=bool(row["password_must_change"]),
        status=StaffStatus(row["status"]),
        created_at=as_utc(row["created_at"]),
        created_by=row["created_by"],
    )


class Staff:
    """Staff accounts and sessions, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def by_name(self, account: str) -> StaffRecord | None:
        """The staff account named `account` (any case), if there is one."""
        row = (
            (await self.connection.execute(_BY_KEY, {"key": account_key(account)}))
            .mappings()
            .first()
        )
        return None if row is None else _record(row)

    async def all(self) -> tuple[StaffRecord, ...]:
        """Every staff account, by name."""
        rows = (await self.connection.execute(select(staff).order_by(staff.c.account_key))).all()
        return tuple(_record(row._mapping) for row in rows)

    async def has_platform_admin(self) -> bool:
        """Whether any platform administrator exists, active or not."""
        query = select(exists().where(staff.c.role == StaffRole.PLATFORM_ADMIN.value))
        return bool((await self.connection.execute(query)).scalar_one())

    async def add(
        self,
        account: str,
        role: StaffRole,
        password_hash: str,
        now: datetime,
        created_by: str,
    ) -> StaffRecord:
        """Create an active staff account owing a password change; IntegrityError if taken."""
        await self.connection.execute(
            insert(staff).values(
                staff_id=new_staff_id(),
                account=account,
                account_key=account_key(account),
                role=role.value,
                password_hash=password_hash,
                password_must_change=True,
                status=StaffStatus.ACTIVE.value,
                created_at=now,
                created_by=created_by,
            )
        )
        added = await self.by_name(account)
        assert added is not None
        return added

    async def set_status(self, staff_id: str, status: StaffStatus, now: datetime) -> None:
        """Enable or disable an account; disabling ends its sessions."""
        await self.connection.execute(
            update(staff).where(staff.c.staff_id == staff_id).values(status=status.value)
        )
        if status is StaffStatus.DISABLED:
            await self.revoke_all(staff_id, now)

    async def replace_password(self, staff_id: str, old_hash: str, new_hash: str) -> bool:
        """Set a new password in place of `old_hash`; False if it changed meanwhile."""
        result = await self.connection.execute(
            update(staff)
            .where(staff.c.staff_id == staff_id, staff.c.password_hash == old_hash)
            .values(password_hash=new_hash, password_must_change=False)
        )
        return result.rowcount == 1

    async def rehash(self, staff_id: str, new_hash: str) -> None:
        """Store the password's hash at stronger parameters."""
        await self.connection.execute(
            update(staff).where(staff.c.staff_id == staff_id).values(password_hash=new_hash)
        )

    async def open_session(
        self, digest: str, staff_id: str, now: datetime, expires: datetime
    ) -> None:
        """Store a new session under its token digest."""
        await self.connection.execute(
            insert(staff_sessions).values(
                token_digest=digest,
                staff_id=staff_id,
                created_at=now,
                last_seen_at=now,
                expires_at=expires,
            )
        )

    async def revoke(self, digest: str, now: datetime) -> None:
        """End one session."""
        await self.connection.execute(
            update(staff_sessions)
            .where(staff_sessions.c.token_digest == digest, staff_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_all(self, staff_id: str, now: datetime) -> None:
        """End every session of an account."""
        await self.connection.execute(
            update(staff_sessions)
            .where(staff_sessions.c.staff_id == staff_id, staff_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def session(self, digest: str) -> tuple[StaffRecord, RowMapping] | None:
        """The session stored under `digest` and its account."""
        row = (await self.connection.execute(_SESSION, {"digest": digest})).mappings().first()
        return None if row is None else (_record(row), row)

    async def touch(self, digest: str, now: datetime) -> None:
        """Restart a session's idle clock."""
        await self.connection.execute(_TOUCH, {"digest": digest, "now": now})


_BY_KEY = select(staff).where(staff.c.account_key == bindparam("key"))
_SESSION = (
    select(
        *staff.c,
        staff_sessions.c.last_seen_at.label("session_last_seen_at"),
        staff_sessions.c.expires_at.label("session_expires_at"),
        staff_sessions.c.revoked_at.label("session_revoked_at"),
    )
    .select_from(staff_sessions.join(staff, staff.c.staff_id == staff_sessions.c.staff_id))
    .where(staff_sessions.c.token_digest == bindparam("digest"))
)
_TOUCH = (
    update(staff_sessions)
    .where(staff_sessions.c.token_digest == bindparam("digest"))
    .values(last_seen_at=bindparam("now"))
)
_ENTERPRISE_SESSION = select(exists().where(sessions.c.token_digest == bindparam("digest")))


async def is_enterprise_session(connection: AsyncConnection, digest: str) -> bool:
    """Whether `digest` is an enterprise session's: on a staff subject, the wrong kind."""
    return bool((await connection.execute(_ENTERPRISE_SESSION, {"digest": digest})).scalar_one())


async def authorize_staff(
    deps: AccountsRuntime, connection: AsyncConnection, token: str, action: StaffAction
) -> StaffCallerRecord:
    """The staff member behind `token`, if its session is live and it may take `action`.

    Refuses an enterprise session (WRONG_SESSION), an ended session or disabled account
    (UNAUTHENTICATED), a one-time password not yet changed (ACTION_REQUIRED) and another role
    (FORBIDDEN). The session's idle clock restarts with each request it may make (stored at
    most once a second, `SessionPolicy.touch_due`).
    """
    digest = token_digest(token)
    found = await Staff(connection).session(digest)
    now = deps.service.clock.now()
    if found is None:
        if await is_enterprise_session(connection, digest):
            raise DomainError(ErrorCode.WRONG_SESSION, ENTERPRISE_SESSION)
        raise DomainError(ErrorCode.UNAUTHENTICATED, ENDED)
    member, row = found
    idle_expiry = deps.staff_sessions.idle_expiry(
        as_utc(row["session_last_seen_at"]), as_utc(row["session_expires_at"])
    )
    if (
        row["session_revoked_at"] is not None
        or now >= idle_expiry
        or member.status is not StaffStatus.ACTIVE
    ):
        raise DomainError(ErrorCode.UNAUTHENTICATED, ENDED)
    refused = staff_refusal(member, action)
    if refused is not None:
        raise refused
    if deps.staff_sessions.touch_due(as_utc(row["session_last_seen_at"]), now):
        await Staff(connection).touch(digest, now)
    return StaffCallerRecord(member=member, digest=digest)


async def _open_session(
    deps: AccountsRuntime, repository: Staff, member: StaffRecord, now: datetime
) -> StaffSessionView:
    token = new_session_token()
    expires_at = now + deps.staff_sessions.absolute
    await repository.open_session(token_digest(token), member.staff_id, now, expires_at)
    return StaffSessionView(
        token=token,
        account=member.account,
        role=member.role,
        required_actions=member.required_actions,
        expires_at=expires_at,
        idle_expires_at=deps.staff_sessions.idle_expiry(now, expires_at),
    )


@routes.serve(contract.STAFF_LOGIN)
async def staff_login(request: StaffLogin, deps: AccountsRuntime) -> StaffSessionView:
    """Log in as staff; a one-time password must be changed before anything else."""
    name = request.account
    key = throttle_key(name)
    now = deps.service.clock.now()
    async with deps.service.db.reading() as connection:
        known_block = await Logins(connection).blocked_until(key)
        found = await Staff(connection).by_name(name)
    blocked = await reserve_attempt(deps, key, now, known_block=known_block)
    if blocked is not None:
        async with deps.service.db.transaction() as connection:
            await _audit_login(deps, connection, name, "throttled", "too many login attempts")
        raise throttled(blocked, now)
    # An unknown account is verified against a decoy hash: both refusals take as long.
    matches = await deps.passwords.verify(
        found.password_hash if found else deps.decoy_hash, request.password
    )
    if found is None or not matches:
        async with deps.service.db.transaction() as connection:
            await _audit_login(deps, connection, name, "failed", "incorrect credentials")
        raise DomainError(ErrorCode.UNAUTHENTICATED, INCORRECT_CREDENTIALS)
    if found.status is not StaffStatus.ACTIVE:
        async with deps.service.db.transaction() as connection:
            await _audit_login(deps, connection, name, "failed", f"account {found.status}")
        raise DomainError(ErrorCode.FORBIDDEN, f"staff account is {found.status}")
    rehash = (
        await deps.passwords.hash(request.password)
        if deps.passwords.needs_rehash(found.password_hash)
        else None
    )
    async with deps.service.db.transaction() as connection:
        repository = Staff(connection)
        await Logins(connection).clear_failures(key)
        if rehash:
            await repository.rehash(found.staff_id, rehash)
        session = await _open_session(deps, repository, found, now)
        await _audit_login(deps, connection, found.account, "succeeded", None)
    return session


@routes.serve(contract.STAFF_LOGOUT)
async def staff_logout(request: StaffLogout, deps: AccountsRuntime) -> None:
    """End the staff session; its token stops working at once."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize_staff(deps, connection, request.token, StaffAction.LOGOUT)
        await Staff(connection).revoke(caller.digest, deps.service.clock.now())


@routes.serve(contract.STAFF_PASSWORD)
async def change_staff_password(
    request: ChangeStaffPassword, deps: AccountsRuntime
) -> StaffSessionView:
    """Change the caller's own password: every session of the account ends, a new one opens."""
    async with deps.service.db.transaction() as connection:
        member = (
            await authorize_staff(deps, connection, request.token, StaffAction.CHANGE_PASSWORD)
        ).member
    problem = policy_problem(
        request.new_password, account=member.account, min_length=deps.settings.password_min_length
    )
    if problem:
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: new_password {problem}",
            (FieldError(path="new_password", message=f"password {problem}"),),
        )
    if request.new_password == request.current_password:
        raise DomainError(
            ErrorCode.INVALID,
            "invalid fields: new_password must differ from the current password",
            (FieldError(path="new_password", message="must differ from the current password"),),
        )
    key = throttle_key(member.account)
    now = deps.service.clock.now()
    blocked = await reserve_attempt(deps, key, now)
    if blocked is not None:
        raise throttled(blocked, now)
    if not await deps.passwords.verify(member.password_hash, request.current_password):
        async with deps.service.db.transaction() as connection:
            await _audit_login(
                deps, connection, member.account, "failed", "incorrect current password"
            )
        raise DomainError(
            ErrorCode.UNAUTHENTICATED,
            "the current password is incorrect",
            (FieldError(path="current_password", message="is incorrect"),),
        )
    new_hash = await deps.passwords.hash(request.new_password)
    async with deps.service.db.transaction() as connection:
        repository = Staff(connection)
        if not await repository.replace_password(member.staff_id, member.password_hash, new_hash):
            raise DomainError(
                ErrorCode.CONFLICT, "the password was changed meanwhile; log in again"
            )
        await Logins(connection).clear_failures(key)
        await repository.revoke_all(member.staff_id, now)
        changed = await repository.by_name(member.account)
        assert changed is not None
        session = await _open_session(deps, repository, changed, now)
        await _audit_change(deps, connection, changed, "password-changed", by=changed.account)
    log.info("staff password changed", account=member.account)
    return session


@routes.serve(contract.STAFF_ADD)
async def add_staff(request: AddStaff, deps: AccountsRuntime) -> StaffAdded:
    """Add a staff account with a one-time password (platform administrators only)."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize_staff(deps, connection, request.token, StaffAction.MANAGE_STAFF)
        taken = await Staff(connection).by_name(request.account) is not None
    if taken:
        raise _taken(request.account)
    one_time_password = new_one_time_password()
    password_hash = await deps.passwords.hash(one_time_password)
    try:
        async with deps.service.db.transaction() as connection:
            added = await Staff(connection).add(
                request.account,
                request.role,
                password_hash,
                deps.service.clock.now(),
                created_by=caller.member.account,
            )
            await _audit_change(deps, connection, added, "added", by=caller.member.account)
    except IntegrityError:
        raise _taken(request.account) from None
    log.info("staff added", account=added.account, role=added.role, by=caller.member.account)
    return StaffAdded(staff=added.view(), one_time_password=one_time_password)


@routes.serve(contract.STAFF_LIST)
async def list_staff(request: ListStaff, deps: AccountsRuntime) -> StaffList:
    """List the staff accounts (platform administrators only)."""
    async with deps.service.db.transaction() as connection:
        await authorize_staff(deps, connection, request.token, StaffAction.MANAGE_STAFF)
        members = await Staff(connection).all()
    return StaffList(staff=tuple(member.view() for member in members))


@routes.serve(contract.STAFF_DISABLE)
async def disable_staff(request: DisableStaff, deps: AccountsRuntime) -> StaffView:
    """Disable a staff account and end its sessions (platform administrators only)."""
    return await _set_status(deps, request.token, request.account, StaffStatus.DISABLED)


@routes.serve(contract.STAFF_ENABLE)
async def enable_staff(request: EnableStaff, deps: AccountsRuntime) -> StaffView:
    """Enable a disabled staff account (platform administrators only)."""
    return await _set_status(deps, request.token, request.account, StaffStatus.ACTIVE)


async def _set_status(
    deps: AccountsRuntime, token: str, account: str, status: StaffStatus
) -> StaffView:
    now = deps.service.clock.now()
    async with deps.service.db.transaction() as connection:
        caller = await authorize_staff(deps, connection, token, StaffAction.MANAGE_STAFF)
        repository = Staff(connection)
        member = await repository.by_name(account)
        if member is None:
            raise DomainError(
                ErrorCode.NOT_FOUND,
                f"no staff account {account}",
                (FieldError(path="account", message="no such staff account"),),
            )
        if member.staff_id == caller.member.staff_id and status is StaffStatus.DISABLED:
            raise DomainError(ErrorCode.CONFLICT, "a platform administrator cannot disable itself")
        if member.status is not status:
            await repository.set_status(member.staff_id, status, now)
            change = "disabled" if status is StaffStatus.DISABLED else "enabled"
            await _audit_change(deps, connection, member, change, by=caller.member.account)
        changed = await repository.by_name(account)
    assert changed is not None
    return changed.view()


@routes.serve(contract.RESOLVE_STAFF_SESSION)
async def resolve_staff_session(request: ResolveStaffSession, deps: AccountsRuntime) -> StaffCaller:
    """Say which staff member a live session belongs to, for another service's checks."""
    async with deps.service.db.transaction() as connection:
        caller = await authorize_staff(deps, connection, request.token, StaffAction.IDENTIFY)
    return StaffCaller(account=caller.member.account, role=caller.member.role)


@routes.serve(contract.SHOW_STAFF_MEMBER)
async def show_staff_member(request: ShowStaffMember, deps: AccountsRuntime) -> StaffMember:
    """Say whether a staff account exists, its role and status, for another service's checks."""
    async with deps.service.db.reading() as connection:
        member = await Staff(connection).by_name(request.account)
    if member is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no staff account {request.account}")
    return StaffMember(account=member.account, role=member.role, status=member.status)


def _taken(account: str) -> DomainError:
    return DomainError(
        ErrorCode.CONFLICT,
        f"staff account {account} exists; choose another name",
        (FieldError(path="account", message="is taken"),),
    )


async def _audit_login(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    account: str,
    outcome: str,
    reason: str | None,
) -> None:
    log.info("staff authentication attempt", account=account, outcome=outcome, reason=reason)
    await deps.service.emit(
        connection,
        contract.STAFF_AUTHENTICATION_ATTEMPTED,
        StaffAuthenticationAttempted(account=account[:64], outcome=outcome, reason=reason),
        subject=None,
    )


async def _audit_change(
    deps: AccountsRuntime, connection: AsyncConnection, member: StaffRecord, change: str, *, by: str
) -> None:
    await deps.service.emit(
        connection,
        contract.STAFF_CHANGED,
        StaffChanged(account=member.account, change=change, role=member.role, by=by),
        subject=None,
    )


class BootstrapError(Exception):
    """The deployment's bootstrap administrator settings cannot be used."""


_ACCOUNT_NAME: TypeAdapter[str] = TypeAdapter(AccountName)


def read_bootstrap_password(path: Path, account: str) -> str:
    """The one-time password in `path`: JSON `{"account": ..., "password": ...}` (the account,
    if given, must be `account`) or the bare password, a trailing newline ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BootstrapError(f"cannot read the bootstrap password file {path}: {exc}") from exc
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise BootstrapError(f"the bootstrap password file {path} is not valid JSON") from exc
        password = document.get("password") if isinstance(document, dict) else None
        named = document.get("account", account) if isinstance(document, dict) else account
        if named != account:
            raise BootstrapError(
                f"the bootstrap password file {path} is for {named!r}, not {account!r}"
            )
    else:
        password = text.rstrip("\r\n")
    if not isinstance(password, str) or not password.strip():
        raise BootstrapError(f"the bootstrap password file {path} holds no password")
    return password


async def bootstrap_admin(deps: AccountsRuntime) -> None:
    """Create the deployment's first platform administrator, once, when there is none."""
    settings = deps.settings
    account, path = settings.bootstrap_admin, settings.bootstrap_password_file
    if account is None and path is None:
        return
    if account is None or path is None:
        raise BootstrapError(
            "SW_ACCOUNTS_BOOTSTRAP_ADMIN and SW_ACCOUNTS_BOOTSTRAP_PASSWORD_FILE go together"
        )
    try:
        account = _ACCOUNT_NAME.validate_python(account)
    except ValidationError as exc:
        raise BootstrapError(
            f"SW_ACCOUNTS_BOOTSTRAP_ADMIN {account!r} is not an account name: 4-32 characters, "
            "a letter, then letters, digits, _ . -"
        ) from exc
    async with deps.service.db.reading() as connection:
        if await Staff(connection).has_platform_admin():
            return
    password_hash = await deps.passwords.hash(read_bootstrap_password(path, account))
    try:
        async with deps.service.db.transaction() as connection:
            repository = Staff(connection)
            if await repository.has_platform_admin():
                return
            added = await repository.add(
                account,
                StaffRole.PLATFORM_ADMIN,
                password_hash,
                deps.service.clock.now(),
                created_by=DEPLOYMENT,
            )
            await _audit_change(deps, connection, added, "bootstrapped", by=DEPLOYMENT)
    except IntegrityError:
        # Another replica bootstrapped it first, or a staff account already has the name.
        log.warning("bootstrap platform administrator not created: the name is taken")
        return
    log.info("bootstrap platform administrator created", account=account)
