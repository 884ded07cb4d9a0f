"""One-time codes: six digits sent to a mobile number, proving that its holder has it.

A code is issued for a purpose and an account, to a number (`issue_code`), and sent through the
notification stream alone. Only a keyed digest is stored. A code is good once, until it expires
(the injected clock), for a few tries; a newer code for the same account and purpose voids the
older one. Issuing is throttled per account and per number, so that tries times codes keeps
guessing hopeless. Every verify attempt, good or bad, is an audit event without the code.

    sent = await issue_code(deps, connection, CodePurpose.MOBILE_CHANGE, account, new_mobile)
    row = await verify_code(deps, CodePurpose.MOBILE_CHANGE, account, request.code, apply)
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import Account
from singlewindow.accounts.notifications import send_message
from singlewindow.accounts.tables import accounts, one_time_codes
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import AuthenticationAttempted, CodePurpose, CodeSent
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.identifiers import mask_mobile
from singlewindow.runtime.db import as_utc
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.codes")

METHOD = "one-time-code"
"""The `method` of a code's `authentication-attempted` audit events."""
DEFAULT_KEY = b"singlewindow one-time code"
KEPT = timedelta(days=1)
"""Codes older than this are deleted (the hourly throttle counts the last hour only)."""
HOUR = timedelta(hours=1)

TEXTS = {
    CodePurpose.MOBILE_CHANGE: "Single Window: {code} is your code to make this number your "
    "account's mobile. It expires in {minutes} minutes. Do not share it.",
    CodePurpose.INDIVIDUAL_ACTIVATION: "Single Window: {code} is your code to activate your "
    "account {account}. It expires in {minutes} minutes. Do not share it.",
}


@dataclass(frozen=True)
class CodePolicy:
    """How long codes live, how many tries they allow, how often they may be issued."""

    ttl: timedelta
    max_tries: int
    min_interval: timedelta
    max_per_hour: int
    key: bytes

    @classmethod
    def of(cls, deps: AccountsRuntime) -> CodePolicy:
        """The policy the accounts settings (`SW_ACCOUNTS_CODE_*`) describe."""
        settings = deps.settings
        secret = settings.code_secret
        return cls(
            ttl=timedelta(seconds=settings.code_ttl_seconds),
            max_tries=settings.code_max_tries,
            min_interval=timedelta(seconds=settings.code_min_interval_seconds),
            max_per_hour=settings.code_max_per_hour,
            key=secret.get_secret_value().encode() if secret else DEFAULT_KEY,
        )

    def digest(self, code_id: str, code: str) -> str:
        """The stored digest of `code`, bound to its row."""
        return hmac.new(self.key, f"{code_id}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class VerifiedCode:
    """A code that was just used: the number it went to."""

    code_id: str
    target: str
    used_at: datetime


def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(1_000_000):06d}"


async def issue_code(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    purpose: CodePurpose,
    account: Account,
    target: str,
) -> CodeSent:
    """Issue a code for `purpose` to the number `target`, in the caller's transaction: void the
    account's earlier code for it, store the digest, stage the message. Throttled per account
    and purpose, and per number (THROTTLED, saying when to ask again)."""
    policy = CodePolicy.of(deps)
    now = deps.service.clock.now()
    # Lock the account's row (PostgreSQL; SQLite has one writer), so two requests at once count
    # each other's codes.
    await connection.execute(
        select(accounts.c.account_id)
        .where(accounts.c.account_id == account.account_id)
        .with_for_update()
    )
    await connection.execute(delete(one_time_codes).where(one_time_codes.c.created_at < now - KEPT))
    # Per account, codes of one purpose: activating an account and then changing its number
    # at once is one person's ordinary morning. Per number, codes of any purpose.
    for within, whose in (
        (
            (one_time_codes.c.account_id == account.account_id)
            & (one_time_codes.c.purpose == purpose.value),
            "this account",
        ),
        (one_time_codes.c.target == target, "this number"),
    ):
        recent = (
            await connection.execute(
                select(func.count(), func.max(one_time_codes.c.created_at)).where(
                    within, one_time_codes.c.created_at > now - HOUR
                )
            )
        ).one()
        count, latest = int(recent[0]), recent[1]
        if latest is not None and as_utc(latest) + policy.min_interval > now:
            wait = as_utc(latest) + policy.min_interval - now
            raise _throttled(f"a code was sent to {whose} just now", wait)
        if count >= policy.max_per_hour:
            oldest = (
                await connection.execute(
                    select(func.min(one_time_codes.c.created_at)).where(
                        within, one_time_codes.c.created_at > now - HOUR
                    )
                )
            ).scalar_one()
            raise _throttled(
                f"{policy.max_per_hour} codes were sent to {whose} within the hour",
                as_utc(oldest) + HOUR - now,
            )
    await connection.execute(
        update(one_time_codes)
        .where(
            one_time_codes.c.account_id == account.account_id,
            one_time_codes.c.purpose == purpose.value,
            one_time_codes.c.used_at.is_(None),
            one_time_codes.c.voided_at.is_(None),
        )
        .values(voided_at=now)
    )
    code_id = str(uuid.uuid4())
    code = new_code()
    expires_at = now + policy.ttl
    await connection.execute(
        insert(one_time_codes).values(
            code_id=code_id,
            purpose=purpose.value,
            account_id=account.account_id,
            target=target,
            digest=policy.digest(code_id, code),
            failures=0,
            created_at=now,
            expires_at=expires_at,
        )
    )
    minutes = max(1, math.ceil(policy.ttl.total_seconds() / 60))
    text = TEXTS[purpose].format(code=code, minutes=minutes, account=account.account)
    await send_message(
        deps, connection, to=target, kind=purpose.value, text=text, account=account.account
    )
    return CodeSent(
        account=account.account,
        purpose=purpose,
        to_masked=mask_mobile(target),
        expires_at=expires_at,
        tries=policy.max_tries,
    )


def _throttled(why: str, wait: timedelta) -> DomainError:
    seconds = max(1, math.ceil(wait.total_seconds()))
    return DomainError(ErrorCode.THROTTLED, f"{why}; ask for a new code in {seconds} seconds")


Apply = Callable[[AsyncConnection, VerifiedCode], Awaitable[None]]


async def verify_code(
    deps: AccountsRuntime,
    purpose: CodePurpose,
    account: Account,
    code: str,
    apply: Apply,
) -> VerifiedCode:
    """Use the account's current code for `purpose`: on a match, mark it used and run `apply`
    in the same transaction. Otherwise refuse (a wrong code says the tries left) after
    committing the failed try; each attempt is audited."""
    policy = CodePolicy.of(deps)
    now = deps.service.clock.now()
    refusal: DomainError | None = None
    verified: VerifiedCode | None = None
    async with deps.service.db.transaction() as connection:
        row = (
            (
                await connection.execute(
                    _LATEST, {"account_id": account.account_id, "purpose": purpose.value}
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            refusal = _refused("no code was sent; ask for one first", ErrorCode.NOT_FOUND)
        elif row["used_at"] is not None:
            refusal = _refused("this code was already used; ask for a new one")
        elif now >= as_utc(row["expires_at"]):
            refusal = _refused("the code has expired; ask for a new one")
        elif row["failures"] >= policy.max_tries:
            refusal = _refused("no tries left for this code; ask for a new one")
        elif not hmac.compare_digest(row["digest"], policy.digest(row["code_id"], code)):
            counted = await connection.execute(
                _FAIL, {"row": row["code_id"], "tries": policy.max_tries}
            )
            left = max(0, policy.max_tries - row["failures"] - counted.rowcount)
            refusal = _refused(
                f"wrong code; {left} {'try' if left == 1 else 'tries'} left"
                if left
                else "wrong code; no tries left, ask for a new one"
            )
        else:
            used = await connection.execute(
                _USE, {"row": row["code_id"], "tries": policy.max_tries, "at": now}
            )
            if used.rowcount == 1:
                verified = VerifiedCode(code_id=row["code_id"], target=row["target"], used_at=now)
                await apply(connection, verified)
            else:  # used or spent by a concurrent attempt
                refusal = _refused("this code was already used; ask for a new one")
        await _audit(deps, connection, account, purpose, refusal)
    if refusal is not None:
        raise refusal
    assert verified is not None
    return verified


def _refused(message: str, code: ErrorCode = ErrorCode.INVALID) -> DomainError:
    return DomainError(code, message, (FieldError(path="code", message=message),))


async def _audit(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    account: Account,
    purpose: CodePurpose,
    refusal: DomainError | None,
) -> None:
    outcome = "failed" if refusal else "succeeded"
    reason = refusal.message if refusal else None
    log.info(
        "one-time code attempt",
        account=account.account,
        purpose=purpose.value,
        outcome=outcome,
        reason=reason,
    )
    await deps.service.emit(
        connection,
        contract.AUTHENTICATION_ATTEMPTED,
        AuthenticationAttempted(
            account=account.account,
            method=METHOD,
            outcome=outcome,
            reason=reason,
            purpose=purpose.value,
        ),
        subject=account.uscc,
    )


_LATEST = (
    select(one_time_codes)
    .where(
        one_time_codes.c.account_id == bindparam("account_id"),
        one_time_codes.c.purpose == bindparam("purpose"),
        one_time_codes.c.voided_at.is_(None),
    )
    .order_by(one_time_codes.c.created_at.desc())
    .limit(1)
)
_FAIL = (
    update(one_time_codes)
    .where(
        one_time_codes.c.code_id == bindparam("row"),
        one_time_codes.c.used_at.is_(None),
        one_time_codes.c.failures < bindparam("tries"),
    )
    .values(failures=one_time_codes.c.failures + 1)
)
_USE = (
    update(one_time_codes)
    .where(
        one_time_codes.c.code_id == bindparam("row"),
        one_time_codes.c.used_at.is_(None),
        one_time_codes.c.failures < bindparam("tries"),
    )
    .values(used_at=bindparam("at"))
)
