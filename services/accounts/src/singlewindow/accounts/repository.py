"""The accounts service's tables and queries."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from singlewindow.accounts.domain import account_key, division_of
from singlewindow.cardcrypto import CardCertificateFields
from singlewindow.contracts.accounts import BusinessScope, Role
from singlewindow.contracts.card_gateway import CardData, CardType, OperatorLevel
from singlewindow.contracts.common import AccountHolder
from singlewindow.contracts.registration import Onboarding
from singlewindow.runtime.db import as_utc
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

metadata = MetaData()

CHALLENGE_MEMORY = timedelta(minutes=10)
"""How long a spent or expired challenge is remembered, to tell "already used" from "unknown"."""

enterprises = Table(
    "enterprises",
    metadata,
    Column("uscc", String(18), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("name_en", String(200)),
    Column("division", String(6), nullable=False),
    # A card does not say these: an enterprise registered by card has them unknown until it files.
    Column("address", String(200)),
    Column("legal_rep_name", String(50)),
    Column("legal_rep_id_type", String(40)),
    Column("legal_rep_id_number", String(40)),
    Column("legal_rep_mobile", String(20)),
    Column("registered_via", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(40), primary_key=True),
    Column("account", String(32), nullable=False),
    Column("account_key", String(32), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("uscc", String(18), ForeignKey("enterprises.uscc")),
    Column("name", String(50), nullable=False),
    Column("id_type", String(40), nullable=False),
    Column("id_number", String(40), nullable=False),
    Column("mobile", String(20), nullable=False),
    Column("email", String(254)),
    Column("password_hash", String(200), nullable=False),
    Column("password_must_change", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("operator_level", String(16)),
)
Index(
    "one_active_admin_per_enterprise",
    accounts.c.uscc,
    unique=True,
    sqlite_where=(accounts.c.role == "admin") & (accounts.c.status == "active"),
    postgresql_where=(accounts.c.role == "admin") & (accounts.c.status == "active"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_digest", String(64), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.account_id"), nullable=False, index=True),
    Column("method", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("card_number", String(40)),
    Column("card_fingerprint", String(64)),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("account_key", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("blocked_until", DateTime(timezone=True), nullable=False),
)

card_challenges = Table(
    "card_challenges",
    metadata,
    Column("challenge_id", String(80), primary_key=True),
    Column("challenge", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("used_at", DateTime(timezone=True)),
)

card_bindings = Table(
    "card_bindings",
    metadata,
    Column("card_number", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.account_id"), nullable=False, index=True),
    Column("card_type", String(16), nullable=False),
    Column("certificate_serial", String(80), nullable=False),
    Column("certificate_fingerprint", String(64), nullable=False),
    Column("bound_at", DateTime(timezone=True), nullable=False),
)

business_scopes = Table(
    "business_scopes",
    metadata,
    Column("uscc", String(18), ForeignKey("enterprises.uscc"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("codes", Text, nullable=False),
    Column("declared_by", String(32), nullable=False),
    Column("declared_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Account:
    """An account row, with its enterprise's name."""

    account_id: str
    account: str
    role: Role
    uscc: str | None
    enterprise_name: str | None
    name: str
    id_number: str
    mobile: str
    email: str | None
    password_hash: str
    password_must_change: bool
    status: str
    created_at: datetime
    operator_level: OperatorLevel | None = None


@dataclass(frozen=True)
class NewAccount:
    """An account to create: who holds it, what it may do, and its credential."""

    holder: AccountHolder
    role: Role
    uscc: str | None
    password_hash: str
    password_must_change: bool
    operator_level: OperatorLevel | None = None


@dataclass(frozen=True)
class Session:
    """A stored session; a card session names the card it is bound to."""

    account_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    method: str = "password"
    card_number: str | None = None
    card_fingerprint: str | None = None


@dataclass(frozen=True)
class CardBinding:
    """A card bound to an account: that card logs in to that account only."""

    card_number: str
    account_id: str
    card_type: CardType
    certificate_serial: str
    certificate_fingerprint: str
    bound_at: datetime


@dataclass(frozen=True)
class StoredChallenge:
    """A card challenge as stored."""

    challenge_id: str
    challenge: str
    expires_at: datetime
    used_at: datetime | None


class Accounts:
    """Enterprises, accounts, sessions, throttling and scope, inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    # Enterprises and accounts

    async def create_enterprise_with_admin(self, onboarding: Onboarding, via: str) -> Account:
        """Create an enterprise and its active administrator."""
        enterprise = onboarding.enterprise
        representative = enterprise.legal_representative
        now = datetime.now(UTC)
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
        account_id = _new_account_id()
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
                status="active",
                created_at=now,
            )
        )
        found = await self.account_by_id(account_id)
        assert found is not None
        return found

    async def create_enterprise_from_card(self, card: CardData, now: datetime) -> None:
        """Create the enterprise a legal-person card names, with what the card says of it."""
        legal_person = card.card_type is CardType.LEGAL_PERSON
        await self.connection.execute(
            insert(enterprises).values(
                uscc=card.enterprise_uscc,
                name=card.enterprise_name,
                division=division_of(card.enterprise_uscc),
                # The legal-person card is the legal representative's own.
                legal_rep_name=card.holder_name if legal_person else None,
                legal_rep_id_number=card.holder_id_number if legal_person else None,
                registered_via="card",
                created_at=now,
            )
        )

    async def create_account(self, new: NewAccount, now: datetime) -> Account:
        """Create an active account."""
        account_id = _new_account_id()
        holder = new.holder
        await self.connection.execute(
            insert(accounts).values(
                account_id=account_id,
                account=holder.account,
                account_key=account_key(holder.account),
                role=new.role.value,
                uscc=new.uscc,
                name=holder.name,
                id_type=holder.id_type.value,
                id_number=holder.id_number,
                mobile=holder.mobile,
                email=holder.email,
                password_hash=new.password_hash,
                password_must_change=new.password_must_change,
                status="active",
                created_at=now,
                operator_level=None if new.operator_level is None else new.operator_level.value,
            )
        )
        found = await self.account_by_id(account_id)
        assert found is not None
        return found

    async def enterprise_has_admin(self, uscc: str) -> bool:
        """Whether `uscc` has an active administrator."""
        count = await self.connection.scalar(
            select(func.count())
            .select_from(accounts)
            .where(
                accounts.c.uscc == uscc, accounts.c.role == "admin", accounts.c.status == "active"
            )
        )
        return bool(count)

    async def enterprise_exists(self, uscc: str) -> bool:
        """Whether `uscc` is a registered enterprise."""
        count = await self.connection.scalar(
            select(func.count()).select_from(enterprises).where(enterprises.c.uscc == uscc)
        )
        return bool(count)

    async def account_taken(self, account: str) -> bool:
        """Whether an account name is in use, in any case."""
        count = await self.connection.scalar(
            select(func.count())
            .select_from(accounts)
            .where(accounts.c.account_key == account_key(account))
        )
        return bool(count)

    async def account_by_name(self, account: str) -> Account | None:
        """An account by its name, in any case."""
        return await self._account(accounts.c.account_key == account_key(account))

    async def account_by_id(self, account_id: str) -> Account | None:
        """An account by id."""
        return await self._account(accounts.c.account_id == account_id)

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        """Replace an account's password hash (a rehash at stronger parameters)."""
        await self.connection.execute(
            update(accounts)
            .where(accounts.c.account_id == account_id)
            .values(password_hash=password_hash)
        )

    async def _account(self, condition: object) -> Account | None:
        query = (
            select(accounts, enterprises.c.name.label("enterprise_name"))
            .select_from(accounts.outerjoin(enterprises, accounts.c.uscc == enterprises.c.uscc))
            .where(condition)  # type: ignore[arg-type]
        )
        row = (await self.connection.execute(query)).mappings().first()
        return None if row is None else _account(row)

    # Sessions

    async def open_session(
        self,
        digest: str,
        account_id: str,
        method: str,
        now: datetime,
        expires_at: datetime,
        *,
        card_number: str | None = None,
        card_fingerprint: str | None = None,
    ) -> None:
        """Store a new session under its token digest (a card session with its card)."""
        await self.connection.execute(
            insert(sessions).values(
                token_digest=digest,
                account_id=account_id,
                method=method,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
                card_number=card_number,
                card_fingerprint=card_fingerprint,
            )
        )

    async def session(self, digest: str) -> Session | None:
        """A session by token digest."""
        row = (
            (
                await self.connection.execute(
                    select(sessions).where(sessions.c.token_digest == digest)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return Session(
            account_id=row["account_id"],
            created_at=as_utc(row["created_at"]),
            last_seen_at=as_utc(row["last_seen_at"]),
            expires_at=as_utc(row["expires_at"]),
            revoked_at=None if row["revoked_at"] is None else as_utc(row["revoked_at"]),
            method=row["method"],
            card_number=row["card_number"],
            card_fingerprint=row["card_fingerprint"],
        )

    async def touch_session(self, digest: str, now: datetime) -> None:
        """Record activity on a session (its idle clock restarts)."""
        await self.connection.execute(
            update(sessions).where(sessions.c.token_digest == digest).values(last_seen_at=now)
        )

    async def revoke_session(self, digest: str, now: datetime) -> None:
        """End a session."""
        await self.connection.execute(
            update(sessions)
            .where(sessions.c.token_digest == digest, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    # Cards

    async def store_challenge(
        self, challenge_id: str, challenge: str, now: datetime, expires_at: datetime
    ) -> None:
        """Keep a new challenge until it is used or expires; forget long-expired ones."""
        await self.connection.execute(
            card_challenges.delete().where(card_challenges.c.expires_at < now - CHALLENGE_MEMORY)
        )
        await self.connection.execute(
            insert(card_challenges).values(
                challenge_id=challenge_id,
                challenge=challenge,
                created_at=now,
                expires_at=expires_at,
            )
        )

    async def use_challenge(self, challenge_id: str, now: datetime) -> str | None:
        """Mark an unused, unexpired challenge used, atomically; return it (None: not usable)."""
        statement = (
            update(card_challenges)
            .where(
                card_challenges.c.challenge_id == challenge_id,
                card_challenges.c.used_at.is_(None),
                card_challenges.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(card_challenges.c.challenge)
        )
        challenge: str | None = (await self.connection.execute(statement)).scalar_one_or_none()
        return challenge

    async def challenge(self, challenge_id: str) -> StoredChallenge | None:
        """A challenge by id, used or not."""
        row = (
            (
                await self.connection.execute(
                    select(card_challenges).where(card_challenges.c.challenge_id == challenge_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return StoredChallenge(
            challenge_id=row["challenge_id"],
            challenge=row["challenge"],
            expires_at=as_utc(row["expires_at"]),
            used_at=None if row["used_at"] is None else as_utc(row["used_at"]),
        )

    async def bind_card(
        self,
        card_number: str,
        account_id: str,
        card_type: CardType,
        certificate: CardCertificateFields,
        now: datetime,
    ) -> None:
        """Bind a card to an account."""
        await self.connection.execute(
            insert(card_bindings).values(
                card_number=card_number,
                account_id=account_id,
                card_type=card_type.value,
                certificate_serial=str(certificate.serial_number),
                certificate_fingerprint=certificate.fingerprint,
                bound_at=now,
            )
        )

    async def card_binding(self, card_number: str) -> CardBinding | None:
        """The binding of a card, if it is bound."""
        row = (
            (
                await self.connection.execute(
                    select(card_bindings).where(card_bindings.c.card_number == card_number)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return CardBinding(
            card_number=row["card_number"],
            account_id=row["account_id"],
            card_type=CardType(row["card_type"]),
            certificate_serial=row["certificate_serial"],
            certificate_fingerprint=row["certificate_fingerprint"],
            bound_at=as_utc(row["bound_at"]),
        )

    # Throttling

    async def blocked_until(self, key: str) -> datetime | None:
        """Until when logins for `key` are refused, if they are."""
        value = await self.connection.scalar(
            select(login_throttle.c.blocked_until).where(login_throttle.c.account_key == key)
        )
        return None if value is None else as_utc(value)

    async def record_failure(self, key: str, now: datetime) -> int:
        """Count one more consecutive failure for `key`, atomically; return the new count."""
        dialect = sqlite if self.connection.dialect.name == "sqlite" else postgresql
        statement = dialect.insert(login_throttle).values(
            account_key=key, failures=1, blocked_until=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=[login_throttle.c.account_key],
            set_={"failures": login_throttle.c.failures + literal(1)},
        ).returning(login_throttle.c.failures)
        failures: int = (await self.connection.execute(statement)).scalar_one()
        return failures

    async def block_until(self, key: str, until: datetime) -> None:
        """Refuse logins for `key` until `until`."""
        await self.connection.execute(
            update(login_throttle)
            .where(login_throttle.c.account_key == key)
            .values(blocked_until=until)
        )

    async def clear_failures(self, key: str) -> None:
        """Forget failures after a successful login."""
        await self.connection.execute(
            login_throttle.delete().where(login_throttle.c.account_key == key)
        )

    # Business scope

    async def current_scope(self, uscc: str) -> tuple[tuple[BusinessScope, ...], int]:
        """The enterprise's business scope in force and its version (0: never declared)."""
        row = (
            await self.connection.execute(
                select(business_scopes.c.codes, business_scopes.c.version)
                .where(business_scopes.c.uscc == uscc)
                .order_by(business_scopes.c.version.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return (), 0
        return tuple(BusinessScope(code) for code in json.loads(row.codes)), row.version

    async def declare_scope(
        self, uscc: str, codes: tuple[BusinessScope, ...], declared_by: str, version: int
    ) -> None:
        """Add a version of the enterprise's business scope; earlier versions stay as history."""
        await self.connection.execute(
            insert(business_scopes).values(
                uscc=uscc,
                version=version,
                codes=json.dumps([code.value for code in codes]),
                declared_by=declared_by,
                declared_at=datetime.now(UTC),
            )
        )


def _new_account_id() -> str:
    return f"acc_{secrets.token_urlsafe(12)}"


def _account(row: RowMapping) -> Account:
    return Account(
        account_id=row["account_id"],
        account=row["account"],
        role=Role(row["role"]),
        uscc=row["uscc"],
        enterprise_name=row["enterprise_name"],
        name=row["name"],
        id_number=row["id_number"],
        mobile=row["mobile"],
        email=row["email"],
        password_hash=row["password_hash"],
        password_must_change=bool(row["password_must_change"]),
        status=row["status"],
        created_at=as_utc(row["created_at"]),
        operator_level=None
        if row["operator_level"] is None
        else OperatorLevel(row["operator_level"]),
    )
