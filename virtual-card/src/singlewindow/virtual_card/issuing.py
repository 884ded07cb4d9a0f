"""The development CA and the virtual E-Port cards it issues.

The CA lives in one directory, created on first use::

    ca.key.pem   the CA's SM2 private key (PKCS#8 PEM), readable by its owner only
    ca.pem       the self-signed CA certificate (PEM): the trust anchor the platform is given
    crl.pem      the CA's current revocation list (PEM), re-signed on every revocation
    ca.json      the register: every card issued (number → serial) and every revocation
    .lock        serialises writers (two `swctl card issue` at once, `swctl up` creating the CA)

A card is a card file (``singlewindow.virtual_card.card``) holding its data, a fresh SM2 key, the
certificate the CA signed over the key (SM2 with SM3; the card type and operator level are in the
certificate's subject title, so editing the data file cannot raise a level) and the PIN record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from singlewindow.cardcrypto import (
    CardIdentity,
    RevokedCertificate,
    SM2PrivateKey,
    card_certificate_fields,
    certificate_from_pem,
    certificate_to_pem,
    crl_to_pem,
    issue_ca_certificate,
    issue_card_certificate,
    issue_crl,
)
from singlewindow.contracts.identifiers import (
    InvalidIdentifier,
    normalise_resident_id,
    normalise_uscc,
)
from singlewindow.virtual_card.applet import MAX_PIN_TRIES, PinRecord, is_valid_pin
from singlewindow.virtual_card.card import (
    CardData,
    CardFile,
    CardType,
    OperatorLevel,
    save_card_file,
)
from singlewindow.virtual_card.defaults import DEFAULT_PIN as DEFAULT_PIN
from singlewindow.virtual_card.defaults import DEFAULT_TRIES as DEFAULT_TRIES
from singlewindow.virtual_card.signer import key_record

CA_COMMON_NAME: Final = "Single Window Development CA"
CA_ORGANIZATION: Final = "Single Window Development"
CRL_VALIDITY: Final = timedelta(days=30)
CRL_REFRESH_BEFORE: Final = timedelta(days=7)
"""A CRL this close to its nextUpdate is re-signed when the CA is opened."""

KEY_FILE: Final = "ca.key.pem"
CERTIFICATE_FILE: Final = "ca.pem"
CRL_FILE: Final = "crl.pem"
REGISTER_FILE: Final = "ca.json"

_CARD_NUMBER: Final = re.compile(r"EP[0-9]{14}")
_CUSTOMS_CODE: Final = re.compile(r"[0-9A-Z]{10}")
MAX_NAME_LENGTH: Final = 100


class IssuingError(ValueError):
    """A card cannot be issued or revoked as asked; the message says why, in plain words."""


@dataclass(frozen=True)
class IssuedCard:
    """A card the CA has just issued, and where its card file is."""

    path: Path
    card: CardFile
    serial_number: int
    not_before: datetime
    not_after: datetime

    @property
    def number(self) -> str:
        return self.card.data.card_number

    @property
    def certificate_pem(self) -> str:
        return certificate_to_pem(self.card.certificate)


@dataclass(frozen=True)
class Revocation:
    """A card certificate the CA has revoked."""

    card_number: str | None
    serial_number: int
    revoked_at: datetime


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class DevCA:
    """The development CA kept in ``directory``; ``DevCA.open`` creates it on first use."""

    def __init__(self, directory: Path, key: SM2PrivateKey, certificate: bytes) -> None:
        self.directory = directory
        self._key = key
        self.certificate = certificate

    @property
    def certificate_path(self) -> Path:
        return self.directory / CERTIFICATE_FILE

    @property
    def crl_path(self) -> Path:
        return self.directory / CRL_FILE

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def certificate_pem(self) -> str:
        return certificate_to_pem(self.certificate)

    @classmethod
    def open(cls, directory: Path) -> DevCA:
        """The CA in ``directory``, created (key, certificate, empty CRL) if there is none yet;
        its CRL is re-signed when it is close to its next update."""
        directory = directory.resolve()
        with _locked(directory):
            key_path = directory / KEY_FILE
            if not key_path.exists():
                return cls._create(directory)
            try:
                key = SM2PrivateKey.from_pem(key_path.read_text(encoding="ascii"))
                certificate = certificate_from_pem(
                    (directory / CERTIFICATE_FILE).read_text(encoding="ascii")
                )
            except (OSError, ValueError) as exc:
                raise IssuingError(
                    f"the development CA in {directory} is unreadable: {exc}"
                ) from exc
            ca = cls(directory, key, certificate)
            register = ca._read_register()
            next_update = datetime.fromisoformat(register["crl_next_update"])
            if next_update - _now() < CRL_REFRESH_BEFORE or not ca.crl_path.exists():
                ca._publish_crl(register)
                ca._write_register(register)
            return ca

    @classmethod
    def _create(cls, directory: Path) -> DevCA:
        key = SM2PrivateKey.generate()
        certificate = issue_ca_certificate(
            key, common_name=CA_COMMON_NAME, organization=CA_ORGANIZATION
        )
        fd = os.open(directory / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(key.to_pem())
        _write_atomically(directory / CERTIFICATE_FILE, certificate_to_pem(certificate))
        ca = cls(directory, key, certificate)
        register: dict[str, Any] = {"crl_number": 0, "issued": {}, "revoked": []}
        ca._publish_crl(register)
        ca._write_register(register)
        return ca

    def _read_register(self) -> dict[str, Any]:
        try:
            register: dict[str, Any] = json.loads(
                (self.directory / REGISTER_FILE).read_text(encoding="utf-8")
            )
        except (OSError, ValueError) as exc:
            raise IssuingError(f"the CA register {REGISTER_FILE} is unreadable: {exc}") from exc
        return register

    def _write_register(self, register: dict[str, Any]) -> None:
        text = json.dumps(register, ensure_ascii=False, indent=2) + "\n"
        _write_atomically(self.directory / REGISTER_FILE, text)

    def _publish_crl(self, register: dict[str, Any]) -> None:
        register["crl_number"] = int(register["crl_number"]) + 1
        this_update = _now() - timedelta(minutes=5)
        next_update = this_update + CRL_VALIDITY
        revoked = [
            RevokedCertificate(
                int(entry["serial"], 16), datetime.fromisoformat(entry["revoked_at"])
            )
            for entry in register["revoked"]
        ]
        crl = issue_crl(
            self._key,
            self.certificate,
            revoked,
            crl_number=register["crl_number"],
            this_update=this_update,
            next_update=next_update,
        )
        _write_atomically(self.crl_path, crl_to_pem(crl))
        register["crl_next_update"] = next_update.isoformat()

    def issued(self) -> dict[str, int]:
        """Every card number the CA has issued, with its certificate's serial number."""
        return {
            number: int(entry["serial"], 16)
            for number, entry in self._read_register()["issued"].items()
        }

    def revoked(self) -> list[Revocation]:
        """Every revocation, oldest first."""
        return [
            Revocation(
                entry.get("card_number"),
                int(entry["serial"], 16),
                datetime.fromisoformat(entry["revoked_at"]),
            )
            for entry in self._read_register()["revoked"]
        ]

    def issue_card(
        self,
        directory: Path,
        *,
        card_type: CardType,
        uscc: str,
        enterprise_name: str,
        holder_name: str,
        holder_id_number: str,
        operator_level: OperatorLevel | None = None,
        customs_code: str | None = None,
        pin: str = DEFAULT_PIN,
        tries: int = DEFAULT_TRIES,
        expired: bool = False,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        certify_card_type: bool = True,
    ) -> IssuedCard:
        """Make a virtual card: data, SM2 key, certificate and PIN, saved as
        ``directory/<card number>.json``. ``expired`` backdates the certificate so that it has
        already run out, and ``certify_card_type=False`` leaves the card type (and operator
        level) out of the certificate, as older CAs did: both to try the platform's refusals."""
        data = _card_data(
            card_type=card_type,
            operator_level=operator_level,
            uscc=uscc,
            enterprise_name=enterprise_name,
            holder_name=holder_name,
            holder_id_number=holder_id_number,
            customs_code=customs_code,
        )
        if not is_valid_pin(pin):
            raise IssuingError("the PIN must be exactly 8 digits")
        if not 1 <= tries <= MAX_PIN_TRIES:
            raise IssuingError(f"PIN tries must be between 1 and {MAX_PIN_TRIES}")
        if expired:
            not_before = not_before or _now() - timedelta(days=731)
            not_after = not_after or _now() - timedelta(days=1)
        key = SM2PrivateKey.generate()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(self.directory):
            register = self._read_register()
            number = _new_card_number(register["issued"], directory)
            data = replace(data, card_number=number)
            serial = secrets.randbits(126) | (1 << 126)
            certificate = issue_card_certificate(
                self._key,
                self.certificate,
                key.public_key,
                CardIdentity(
                    holder_name=data.holder_name,
                    enterprise_name=data.enterprise_name,
                    uscc=data.enterprise_uscc,
                    card_number=number,
                    card_type=data.card_type if certify_card_type else None,
                    operator_level=data.operator_level if certify_card_type else None,
                ),
                not_before=not_before,
                not_after=not_after,
                serial_number=serial,
            )
            card = CardFile(
                data=data,
                certificate=certificate,
                pin=PinRecord.new(pin, salt=os.urandom(16), tries_max=tries),
                key=key_record(key),
            )
            path = directory / f"{number}.json"
            save_card_file(path, card)
            fields = card_certificate_fields(certificate)
            register["issued"][number] = {
                "serial": f"{serial:x}",
                "card_type": data.card_type,
                "operator_level": data.operator_level,
                "uscc": data.enterprise_uscc,
                "holder_name": data.holder_name,
                "not_after": fields.not_after.isoformat(),
                "issued_at": _now().isoformat(),
            }
            self._write_register(register)
        return IssuedCard(path, card, serial, fields.not_before, fields.not_after)

    def revoke(self, card: str) -> Revocation:
        """Revoke a card's certificate, named by card number or by serial number (hex, or
        decimal with ``#``), and re-sign the CRL."""
        with _locked(self.directory):
            register = self._read_register()
            issued: dict[str, Any] = register["issued"]
            number: str | None
            if card in issued:
                number = card
                serial = int(issued[card]["serial"], 16)
            elif is_card_number(card):
                raise IssuingError(f"this CA issued no card {card}")
            else:
                serial = _parse_serial(card)
                number = next(
                    (n for n, entry in issued.items() if int(entry["serial"], 16) == serial), None
                )
                if number is None:
                    raise IssuingError(f"this CA issued no card {card!r}")
            for entry in register["revoked"]:
                if int(entry["serial"], 16) == serial:
                    return Revocation(number, serial, datetime.fromisoformat(entry["revoked_at"]))
            revoked_at = _now()
            register["revoked"].append(
                {
                    "serial": f"{serial:x}",
                    "card_number": number,
                    "revoked_at": revoked_at.isoformat(),
                }
            )
            self._publish_crl(register)
            self._write_register(register)
        return Revocation(number, serial, revoked_at)


def _parse_serial(text: str) -> int:
    cleaned = text.strip().lower().replace(":", "")
    try:
        return int(cleaned[1:], 10) if cleaned.startswith("#") else int(cleaned, 16)
    except ValueError:
        raise IssuingError(f"{text!r} is neither a card number nor a serial number") from None


def _new_card_number(issued: dict[str, Any], directory: Path) -> str:
    while True:
        number = f"EP{secrets.randbelow(10**14):014d}"
        if number not in issued and not (directory / f"{number}.json").exists():
            return number


def _text(name: str, value: str) -> str:
    text = value.strip()
    if not text:
        raise IssuingError(f"{name} must not be empty")
    if len(text) > MAX_NAME_LENGTH:
        raise IssuingError(f"{name} must be at most {MAX_NAME_LENGTH} characters")
    return text


def _card_data(
    *,
    card_type: str,
    operator_level: str | None,
    uscc: str,
    enterprise_name: str,
    holder_name: str,
    holder_id_number: str,
    customs_code: str | None,
) -> CardData:
    if card_type not in ("legal-person", "operator"):
        raise IssuingError("the card type must be legal-person or operator")
    if card_type == "operator" and operator_level not in ("entry", "declaration"):
        raise IssuingError("an operator card needs a level: entry or declaration")
    if card_type == "legal-person" and operator_level is not None:
        raise IssuingError("a legal-person card has no operator level")
    try:
        code = normalise_uscc(uscc)
    except InvalidIdentifier as exc:
        raise IssuingError(f"invalid USCC: {exc.message}") from exc
    try:
        id_number = normalise_resident_id(holder_id_number)
    except InvalidIdentifier as exc:
        raise IssuingError(f"invalid holder ID number: {exc.message}") from exc
    if customs_code is not None:
        customs_code = customs_code.strip().upper()
        if not _CUSTOMS_CODE.fullmatch(customs_code):
            raise IssuingError("the customs code must be exactly 10 digits or letters")
    return CardData(
        card_number="EP00000000000000",  # replaced by a fresh number once the register is locked
        card_type=card_type,  # type: ignore[arg-type]
        operator_level=operator_level,  # type: ignore[arg-type]
        holder_name=_text("the holder name", holder_name),
        holder_id_number=id_number,
        enterprise_uscc=code,
        enterprise_name=_text("the enterprise name", enterprise_name),
        organisation_code=code[8:17],
        customs_code=customs_code,
    )


def is_card_number(text: str) -> bool:
    """True for a card number of the form this CA issues (``EP`` + 14 digits)."""
    return _CARD_NUMBER.fullmatch(text) is not None
