"""The accounts service's tables (the one `metadata` its migrations describe), and how an account
row is written and read: with its enterprise's name and whether it declared its business scope."""

from __future__ import annotations

from datetime import datetime

from singlewindow.accounts.domain import (
    Account,
    AccountStatus,
    NewAccount,
    account_key,
    new_account_id,
)
from singlewindow.contracts.accounts import Role
from singlewindow.contracts.card_gateway import OperatorLevel
from singlewindow.runtime.db import as_utc, partial_index
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
    bindparam,
    exists,
    insert,
    select,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

metadata = MetaData()

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
    Column("customs_code", String(10)),  # customs filing (issue 11)
    Column("card_customs_code", String(10)),  # issue 11: what its legal-person card says
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
    # --- operators, account update (issue 9) ---
    Column("landline", String(30)),
    # Until when a one-time password (`password_must_change`) logs in; None: no limit.
    Column("password_expires_at", DateTime(timezone=True)),
    # How a one-time password was given: `default`, `random`; None: the holder chose it.
    Column("initial_password", String(16)),
    Column("deleted_at", DateTime(timezone=True)),
)
Index("accounts_by_enterprise", accounts.c.uscc, accounts.c.role)
partial_index(
    "one_active_admin_per_enterprise",
    accounts.c.uscc,
    unique=True,
    where=(accounts.c.role == Role.ADMIN.value) & (accounts.c.status == AccountStatus.ACTIVE.value),
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
    Column("card_serial", String(80)),
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

staff = Table(
    "staff",
    metadata,
    Column("staff_id", String(40), primary_key=True),
    Column("account", String(32), nullable=False),
    Column("account_key", String(32), nullable=False, unique=True),
    Column("role", String(16), nullable=False, index=True),
    Column("password_hash", String(200), nullable=False),
    Column("password_must_change", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(32), nullable=False),
)
"""The platform's own people: apart from enterprise accounts, with their own names."""

staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("token_digest", String(64), primary_key=True),
    Column("staff_id", String(40), ForeignKey("staff.staff_id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)


ACCOUNT_COLUMNS = (
    *accounts.c,
    enterprises.c.name.label("enterprise_name"),
    exists()
    .where(business_scopes.c.uscc == accounts.c.uscc)
    .correlate(accounts)
    .label("scope_declared"),
)
"""An account row's columns, as `account_from_row` reads them."""

WITH_ENTERPRISE = accounts.outerjoin(enterprises, accounts.c.uscc == enterprises.c.uscc)


def account_from_row(row: RowMapping) -> Account:
    """The account in a row of `ACCOUNT_COLUMNS`."""
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
        status=AccountStatus(row["status"]),
        created_at=as_utc(row["created_at"]),
        operator_level=None
        if row["operator_level"] is None
        else OperatorLevel(row["operator_level"]),
        scope_declared=bool(row["scope_declared"]),
        landline=row["landline"],
        password_expires_at=None
        if row["password_expires_at"] is None
        else as_utc(row["password_expires_at"]),
        initial_password=row["initial_password"],
    )


async def create_account(connection: AsyncConnection, new: NewAccount, now: datetime) -> Account:
    """Create an active account; return it as `account_by_id` reads it."""
    account_id = new_account_id()
    holder = new.holder
    await connection.execute(
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
            status=AccountStatus.ACTIVE.value,
            created_at=now,
            operator_level=None if new.operator_level is None else new.operator_level.value,
            landline=getattr(holder, "landline", None),
            password_expires_at=new.password_expires_at,
            initial_password=new.initial_password,
        )
    )
    found = await account_by_id(connection, account_id)
    assert found is not None
    return found


async def account_by_id(connection: AsyncConnection, account_id: str) -> Account | None:
    """An account by id."""
    row = (await connection.execute(_BY_ID, {"account_id": account_id})).mappings().first()
    return None if row is None else account_from_row(row)


_BY_ID = (
    select(*ACCOUNT_COLUMNS)
    .select_from(WITH_ENTERPRISE)
    .where(accounts.c.account_id == bindparam("account_id"))
)


# --- My IC card (issue 9) ---
# A binding keeps its certificate's validity (for `swctl card show`), and an account has one
# card at most: the index decides between two binds racing for one account.
card_bindings.append_column(Column("not_before", DateTime(timezone=True)))
card_bindings.append_column(Column("not_after", DateTime(timezone=True)))
Index("one_card_per_account", card_bindings.c.account_id, unique=True)
# --- one-time codes (issue 9) ---
one_time_codes = Table(
    "one_time_codes",
    metadata,
    Column("code_id", String(40), primary_key=True),
    Column("purpose", String(32), nullable=False),
    Column("account_id", String(40), ForeignKey("accounts.account_id"), nullable=False),
    # The number the code was sent to: the new mobile, or the individual's.
    Column("target", String(20), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("failures", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    # Set when a newer code for the same account and purpose replaced it.
    Column("voided_at", DateTime(timezone=True)),
)
Index(
    "one_time_codes_by_account",
    one_time_codes.c.account_id,
    one_time_codes.c.purpose,
    one_time_codes.c.created_at,
)
Index("one_time_codes_by_target", one_time_codes.c.target, one_time_codes.c.created_at)
# --- qualifications and permissions (issue 10) ---
qualifications = Table(
    "qualifications",
    metadata,
    Column("uscc", String(18), ForeignKey("enterprises.uscc"), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("registration_number", String(10)),
    Column("declaration_account", String(64)),
    # The inspection password: AES-GCM ciphertext (base64 of nonce + ciphertext + tag) and the
    # id of the key it was sealed with; never the password itself.
    Column("password_ciphertext", Text),
    Column("password_key_id", String(40)),
    Column("authority", String(10)),
    Column("updated_by", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

permission_overrides = Table(
    "permission_overrides",
    metadata,
    Column("uscc", String(18), ForeignKey("enterprises.uscc"), primary_key=True),
    # "" for the whole enterprise, else the operator's account id.
    Column("account_id", String(40), primary_key=True),
    Column("application", String(40), primary_key=True),
    Column("action", String(16), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("changed_by", String(32), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
"""The administrator's revocations and restores; defaults come from the business scope."""
