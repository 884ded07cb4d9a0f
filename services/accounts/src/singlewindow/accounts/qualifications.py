"""My qualifications: the enterprise's basic information (read-only) and its inspection
qualification, saved with optimistic versioning, the inspection password sealed at rest.

The password is sealed with AES-GCM (`cryptography`) under a key the deployment supplies
(`SW_ACCOUNTS_SECRET_KEYS` or `SW_ACCOUNTS_SECRET_KEY_FILE`), the key's id stored beside it and
the enterprise and field bound in as associated data (a ciphertext copied to another row does not
open). It never leaves the service: replies say whether it is set, the audit "password changed".
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import structlog
from singlewindow.accounts.authorization import Action, authorize
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.routes import routes
from singlewindow.accounts.settings import Settings
from singlewindow.accounts.tables import enterprises, qualifications
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    Authority,
    AuthorityList,
    EditQualifications,
    EnterpriseBasics,
    FieldChange,
    InspectionQualification,
    ListAuthorities,
    QualificationsChanged,
    QualificationsView,
    Role,
    SaveQualifications,
    ShowQualifications,
)
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.runtime.db import IntegrityError, as_utc
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.qualifications")
STALE = "changed by someone else since you opened it; open it again (edit) and redo your changes"
PASSWORD_FIELD = "inspection.password"


# Keys


class KeyProblem(Exception):
    """The deployment's secret keys are missing or malformed."""


@dataclass(frozen=True)
class Keyring:
    """The deployment's secret keys: the first seals, every one opens what it sealed."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def current(self) -> str:
        """The id of the key new values are sealed with."""
        return self.keys[0][0]

    def seal(self, plaintext: str, context: str) -> tuple[str, str]:
        """The sealed value (base64 of nonce, ciphertext and tag) and its key's id."""
        # Imported here, as in `open`: `cryptography` adds some 8 MiB to a process that loads it,
        # and an idle accounts service seals and opens nothing.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key_id, key = self.keys[0]
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())
        return base64.b64encode(nonce + sealed).decode(), key_id

    def open(self, sealed: str, key_id: str, context: str) -> str:
        """The value `seal` sealed; KeyProblem if its key is gone or it was tampered with."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = dict(self.keys).get(key_id)
        if key is None:
            raise KeyProblem(f"the key {key_id!r} a value was sealed with is not configured")
        raw = base64.b64decode(sealed)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise KeyProblem(f"a value sealed with key {key_id!r} does not open") from exc


def parse_keys(text: str) -> Keyring:
    """A keyring from `ID:BASE64` entries separated by commas or lines (`#` starts a comment)."""
    keys: list[tuple[str, bytes]] = []
    for entry in text.replace(",", "\n").splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            key = b""
        if not sep or not key_id.strip() or len(key) != 32:
            raise KeyProblem("each secret key entry is ID:BASE64 of 32 random bytes")
        keys.append((key_id.strip(), key))
    if not keys:
        raise KeyProblem("no secret key is configured")
    return Keyring(tuple(keys))


def new_key_entry(key_id: str | None = None) -> str:
    """A fresh `ID:BASE64` entry (32 random bytes), for a key file or Secret."""
    return f"{key_id or 'k' + secrets.token_hex(4)}:{base64.b64encode(os.urandom(32)).decode()}"


def keyring(settings: Settings) -> Keyring:
    """The keys the settings name (the file is read each time: a rotated Secret is seen)."""
    if settings.secret_keys is not None:
        return _parse_cached(settings.secret_keys.get_secret_value())
    if settings.secret_key_file is not None:
        try:
            text = settings.secret_key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyProblem(f"cannot read the secret key file: {exc.strerror or exc}") from exc
        return _parse_cached(text)
    raise KeyProblem(
        "no secret key is configured (SW_ACCOUNTS_SECRET_KEYS or SW_ACCOUNTS_SECRET_KEY_FILE)"
    )


@cache
def _parse_cached(text: str) -> Keyring:
    return parse_keys(text)


def sealing_context(uscc: str) -> str:
    """The associated data a row's password is sealed with: it opens in that row only."""
    return f"qualifications/{uscc}/inspection.password"


# The accepting authorities (data)


@cache
def authorities() -> dict[str, Authority]:
    """The accepting authorities by code, from `data/authorities.json`."""
    text = (
        resources.files("singlewindow.accounts")
        .joinpath("data/authorities.json")
        .read_text(encoding="utf-8")
    )
    return {
        item["code"]: Authority.model_validate(item) for item in json.loads(text)["authorities"]
    }


@routes.serve(contract.AUTHORITIES_LIST)
async def list_authorities(request: ListAuthorities, deps: AccountsRuntime) -> AuthorityList:
    """List the accepting authorities (受理机关) an inspection qualification may name."""
    return _authority_list()


@cache
def _authority_list() -> AuthorityList:
    # The list is data fixed for the process's life: one reply model, not one per request.
    return AuthorityList(authorities=tuple(authorities().values()))


# The record


@dataclass(frozen=True)
class Stored:
    """The inspection qualification as stored (the password sealed)."""

    version: int
    registration_number: str | None
    declaration_account: str | None
    password_ciphertext: str | None
    password_key_id: str | None
    authority: str | None
    updated_by: str | None
    updated_at: datetime | None


NONE_STORED = Stored(0, None, None, None, None, None, None, None)


async def _stored(connection: AsyncConnection, uscc: str) -> Stored:
    row = (
        (await connection.execute(select(qualifications).where(qualifications.c.uscc == uscc)))
        .mappings()
        .first()
    )
    if row is None:
        return NONE_STORED
    return Stored(
        version=row["version"],
        registration_number=row["registration_number"],
        declaration_account=row["declaration_account"],
        password_ciphertext=row["password_ciphertext"],
        password_key_id=row["password_key_id"],
        authority=row["authority"],
        updated_by=row["updated_by"],
        updated_at=as_utc(row["updated_at"]),
    )


async def _basics(connection: AsyncConnection, uscc: str) -> EnterpriseBasics:
    row = (
        (await connection.execute(select(enterprises).where(enterprises.c.uscc == uscc)))
        .mappings()
        .one()
    )
    return EnterpriseBasics(
        uscc=row["uscc"],
        name=row["name"],
        name_en=row["name_en"],
        division=row["division"],
        address=row["address"],
        legal_rep_name=row["legal_rep_name"],
        registered_via=row["registered_via"],
        registered_at=as_utc(row["created_at"]),
    )


def _view(basics: EnterpriseBasics, stored: Stored, editable: bool) -> QualificationsView:
    authority = authorities().get(stored.authority or "")
    return QualificationsView(
        basics=basics,
        inspection=InspectionQualification(
            registration_number=stored.registration_number,
            declaration_account=stored.declaration_account,
            password_set=stored.password_ciphertext is not None,
            authority=stored.authority,
            authority_name=None if authority is None else authority.name_zh,
        ),
        version=stored.version,
        updated_by=stored.updated_by,
        updated_at=stored.updated_at,
        editable=editable,
    )


async def _read(deps: AccountsRuntime, token: str, action: Action) -> QualificationsView:
    async with deps.service.db.transaction() as connection:
        caller = (await authorize(deps, connection, token, action)).account
        uscc = caller.uscc
        assert uscc is not None  # the action acts on the caller's own enterprise
        return _view(
            await _basics(connection, uscc),
            await _stored(connection, uscc),
            caller.role is Role.ADMIN,
        )


@routes.serve(contract.QUALIFICATIONS_SHOW)
async def show_qualifications(
    request: ShowQualifications, deps: AccountsRuntime
) -> QualificationsView:
    """Show the enterprise's qualifications, read-only (any account of the enterprise)."""
    return await _read(deps, request.token, Action.SHOW_QUALIFICATIONS)


@routes.serve(contract.QUALIFICATIONS_EDIT)
async def edit_qualifications(
    request: EditQualifications, deps: AccountsRuntime
) -> QualificationsView:
    """Open the qualifications for editing (administrator): the record and the version to save."""
    return await _read(deps, request.token, Action.EDIT_QUALIFICATIONS)


def _changes(old: Stored, new: dict[str, Any], password_changed: bool) -> tuple[FieldChange, ...]:
    found = [
        FieldChange(field=f"inspection.{name}", old=getattr(old, name), new=value)
        for name, value in new.items()
        if getattr(old, name) != value
    ]
    if password_changed:
        found.append(FieldChange(field=PASSWORD_FIELD, note="password changed"))
    return tuple(found)


@routes.serve(contract.QUALIFICATIONS_SAVE)
async def save_qualifications(
    request: SaveQualifications, deps: AccountsRuntime
) -> QualificationsView:
    """Save the qualifications opened at `version` (administrator); a stale version is refused
    and nothing is written. Every change is audited, the password's as "password changed"."""
    inspection = request.inspection
    if inspection.authority is not None and inspection.authority not in authorities():
        message = "is not an accepting authority code (see `swctl qualifications authorities`)"
        raise DomainError(
            ErrorCode.INVALID,
            f"invalid fields: inspection.authority {message}",
            (FieldError(path="inspection.authority", message=message),),
        )
    try:
        keys = keyring(deps.settings) if inspection.password is not None else None
    except KeyProblem as exc:
        raise DomainError(
            ErrorCode.UNAVAILABLE, f"the inspection password cannot be stored: {exc}"
        ) from exc
    now = deps.service.clock.now()
    try:
        async with deps.service.db.transaction() as connection:
            caller = (
                await authorize(deps, connection, request.token, Action.EDIT_QUALIFICATIONS)
            ).account
            uscc = caller.uscc
            assert uscc is not None  # EDIT_QUALIFICATIONS acts on the caller's own enterprise
            old = await _stored(connection, uscc)
            if request.version != old.version:
                raise DomainError(ErrorCode.CONFLICT, STALE)
            plain = {
                "registration_number": inspection.registration_number,
                "declaration_account": inspection.declaration_account,
                "authority": inspection.authority,
            }
            sealed = {
                "password_ciphertext": old.password_ciphertext,
                "password_key_id": old.password_key_id,
            }
            if keys is not None and inspection.password is not None:
                ciphertext, key_id = keys.seal(inspection.password, sealing_context(uscc))
                sealed = {"password_ciphertext": ciphertext, "password_key_id": key_id}
            version = old.version + 1
            values = plain | sealed | {"version": version, "updated_by": caller.account}
            values["updated_at"] = now
            if old.version == 0:
                await connection.execute(insert(qualifications).values(uscc=uscc, **values))
            else:
                written = await connection.execute(
                    update(qualifications)
                    .where(qualifications.c.uscc == uscc)
                    .where(qualifications.c.version == old.version)
                    .values(**values)
                )
                if written.rowcount != 1:
                    raise DomainError(ErrorCode.CONFLICT, STALE)
            await deps.service.emit(
                connection,
                contract.QUALIFICATIONS_CHANGED,
                QualificationsChanged(
                    uscc=uscc,
                    version=version,
                    changed_by=caller.account,
                    changes=_changes(old, plain, inspection.password is not None),
                ),
                subject=uscc,
            )
            stored = Stored(
                version=version,
                registration_number=inspection.registration_number,
                declaration_account=inspection.declaration_account,
                password_ciphertext=sealed["password_ciphertext"],
                password_key_id=sealed["password_key_id"],
                authority=inspection.authority,
                updated_by=caller.account,
                updated_at=now,
            )
            return _view(await _basics(connection, uscc), stored, True)
    except IntegrityError:
        # Two first saves at once: the other one's row is there now.
        raise DomainError(ErrorCode.CONFLICT, STALE) from None


# Rotation


async def inspection_password(deps: AccountsRuntime, uscc: str) -> str | None:
    """The enterprise's inspection password in clear, for the service's own use only."""
    async with deps.service.db.reading() as connection:
        stored = await _stored(connection, uscc)
    if stored.password_ciphertext is None or stored.password_key_id is None:
        return None
    return keyring(deps.settings).open(
        stored.password_ciphertext, stored.password_key_id, sealing_context(uscc)
    )


async def reseal_secrets(deps: AccountsRuntime) -> int:
    """Seal again, under the current key, every value sealed under an older one; how many.

    Runs at each start: rotating is putting a new key first, restarting, then (once this ran)
    dropping the old key. Without any key configured there is nothing to do.
    """
    try:
        keys = keyring(deps.settings)
    except KeyProblem:
        return 0
    resealed = 0
    async with deps.service.db.transaction() as connection:
        rows = (
            await connection.execute(
                select(
                    qualifications.c.uscc,
                    qualifications.c.password_ciphertext,
                    qualifications.c.password_key_id,
                ).where(qualifications.c.password_key_id != keys.current)
            )
        ).all()
        for uscc, ciphertext, key_id in rows:
            context = sealing_context(uscc)
            try:
                plaintext = keys.open(ciphertext, key_id, context)
            except KeyProblem as exc:
                # Left as it is (the service still starts): put the missing key back to keep it.
                log.warning("a sealed value cannot be re-sealed", uscc=uscc, problem=str(exc))
                continue
            sealed, new_id = keys.seal(plaintext, context)
            await connection.execute(
                update(qualifications)
                .where(qualifications.c.uscc == uscc)
                .values(password_ciphertext=sealed, password_key_id=new_id)
            )
            resealed += 1
    return resealed
