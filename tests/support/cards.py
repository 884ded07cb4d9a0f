"""E-Port cards made in-process: a CA the accounts service trusts, cards it issues, their answers.

`Card.answer` does what card-gateway's SIGN_CHALLENGE does with a real (or the virtual) card: sign
the challenge with the card's SM2 key and hand back the card data and certificate with it.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from singlewindow.cardcrypto import (
    CardIdentity,
    RevokedCertificate,
    SM2PrivateKey,
    card_certificate_fields,
    certificate_to_pem,
    crl_to_pem,
    issue_ca_certificate,
    issue_card_certificate,
    issue_crl,
)
from singlewindow.contracts import accounts
from singlewindow.contracts.accounts import CardChallenge

from tests.support.platform import Bus

ENTERPRISE_NAME = "重庆某某贸易有限公司"


@dataclass
class Card:
    """A card: its data file, its SM2 key and its certificate."""

    data: dict[str, Any]
    key: SM2PrivateKey
    certificate: bytes

    @property
    def certificate_pem(self) -> str:
        return certificate_to_pem(self.certificate)

    @property
    def serial_number(self) -> int:
        return card_certificate_fields(self.certificate).serial_number

    def answer(self, challenge: CardChallenge) -> dict[str, Any]:
        """The card's proof for `challenge`: what the accounts card requests carry."""
        signature = self.key.sign(base64.b64decode(challenge.challenge))
        return {
            "challenge_id": challenge.challenge_id,
            "certificate_pem": self.certificate_pem,
            "card": self.data,
            "signature": base64.b64encode(signature).decode(),
        }

    def with_data(self, **changes: Any) -> Card:
        """The same key and certificate with an edited data file."""
        return Card(data=self.data | changes, key=self.key, certificate=self.certificate)


@dataclass
class CardAuthority:
    """A development CA with its certificate and CRL written where the accounts service reads."""

    directory: Path
    key: SM2PrivateKey = field(default_factory=SM2PrivateKey.generate)
    certificate: bytes = b""
    revoked: list[RevokedCertificate] = field(default_factory=list)
    crl_number: int = 0

    def __post_init__(self) -> None:
        if not self.certificate:
            self.certificate = issue_ca_certificate(
                self.key, common_name="Single Window Test Card CA", organization="Single Window"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.anchor_path.write_text(certificate_to_pem(self.certificate))
        self.publish_crl()

    @property
    def anchor_path(self) -> Path:
        return self.directory / "card-ca.pem"

    @property
    def crl_path(self) -> Path:
        return self.directory / "card-ca.crl.pem"

    def issue(
        self,
        *,
        uscc: str,
        card_type: str = "legal-person",
        level: str | None = None,
        enterprise_name: str = ENTERPRISE_NAME,
        holder_name: str = "张三",
        certify_type: bool = True,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Card:
        """A new card of this CA (the certificate states its type unless told otherwise)."""
        key = SM2PrivateKey.generate()
        card_number = f"88{secrets.randbelow(10**14):014d}"
        identity = CardIdentity(
            holder_name=holder_name,
            enterprise_name=enterprise_name,
            uscc=uscc,
            card_number=card_number,
        )
        if certify_type:
            identity = replace(identity, card_type=card_type, operator_level=level)
        certificate = issue_card_certificate(
            self.key,
            self.certificate,
            key.public_key,
            identity,
            not_before=not_before,
            not_after=not_after,
        )
        data = {
            "card_number": card_number,
            "card_type": card_type,
            "operator_level": level,
            "holder_name": holder_name,
            "holder_id_number": "11010519491231002X",
            "enterprise_uscc": uscc,
            "enterprise_name": enterprise_name,
            "organisation_code": uscc[8:17],
            "customs_code": None,
        }
        return Card(data=data, key=key, certificate=certificate)

    def expired(self, **kwargs: Any) -> Card:
        """A card whose certificate expired yesterday."""
        start = datetime.now(UTC) - timedelta(days=400)
        return self.issue(
            not_before=start, not_after=datetime.now(UTC) - timedelta(days=1), **kwargs
        )

    def revoke(self, card: Card) -> None:
        """Put the card's certificate on the CRL and publish it (atomically, as a CA would)."""
        self.revoked.append(RevokedCertificate(card.serial_number, datetime.now(UTC)))
        self.publish_crl()

    def publish_crl(self) -> None:
        self.crl_number += 1
        crl = issue_crl(self.key, self.certificate, self.revoked, crl_number=self.crl_number)
        staged = self.crl_path.with_suffix(".tmp")
        staged.write_text(crl_to_pem(crl))
        os.replace(staged, self.crl_path)


async def challenge(bus: Bus) -> CardChallenge:
    """A fresh challenge from the accounts service."""
    issued: CardChallenge = await bus.call(accounts.CARD_CHALLENGE, {})
    return issued


def holder(account: str, *, password: str = "Chongqing-Trade-2026") -> dict[str, Any]:
    """The typed details of an administrator or operator (the `admin` object of an application)."""
    return {
        "account": account,
        "name": "李四",
        "id_type": "resident_id",
        "id_number": "11010519491231002X",
        "mobile": "13900000001",
        "email": None,
        "password": password,
    }
