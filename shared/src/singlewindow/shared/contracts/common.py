"""Models shared by more than one service's contracts: people, enterprises, masked views."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from singlewindow.shared.identifiers import (
    DivisionCode,
    MobileNumber,
    Uscc,
    mask_id_number,
    mask_mobile,
    normalise_resident_id,
)
from singlewindow.shared.wire import Request

Text = Annotated[str, Field(strict=True), StringConstraints(strip_whitespace=True, min_length=1)]
PersonName = Annotated[Text, StringConstraints(max_length=50)]
AccountName = Annotated[
    str,
    Field(strict=True, description="4-32 characters: a letter, then letters, digits, _ . -"),
    StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{3,31}$"),
]
Email = Annotated[
    str,
    Field(strict=True),
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]
Password = Annotated[str, Field(strict=True, min_length=1, max_length=256)]

_OTHER_ID = re.compile(r"^[A-Z0-9]{5,20}$")


class IdType(StrEnum):
    """Identity documents the portal accepts."""

    RESIDENT_ID = "resident_id"
    PASSPORT = "passport"
    HK_MACAO_PERMIT = "hk_macao_permit"
    TAIWAN_PERMIT = "taiwan_permit"
    FOREIGN_PERMANENT_RESIDENCE = "foreign_permanent_residence"


class Identified(Request):
    """A person named with an identity document, checked by the document's own rule."""

    name: PersonName
    id_type: IdType
    id_number: Annotated[str, Field(strict=True, max_length=40)]
    mobile: MobileNumber

    @field_validator("id_number")
    @classmethod
    def _check_id_number(cls, value: str, info: ValidationInfo) -> str:
        number = value.strip().upper()
        if info.data.get("id_type") is IdType.RESIDENT_ID:
            return normalise_resident_id(number)
        if not _OTHER_ID.fullmatch(number):
            raise ValueError("must be 5-20 letters or digits")
        return number


class AccountHolder(Identified):
    """A person and the account they ask for: an administrator, or an operator added later."""

    account: AccountName
    email: Email | None = None
    password: Password


class MaskedPerson(BaseModel):
    """A person as events and listings show them: no full ID number, no full mobile."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    id_type: IdType
    id_number_masked: str
    mobile_masked: str

    @classmethod
    def of(cls, person: Identified) -> MaskedPerson:
        """The masked view of `person`."""
        return cls(
            name=person.name,
            id_type=person.id_type,
            id_number_masked=mask_id_number(person.id_number),
            mobile_masked=mask_mobile(person.mobile),
        )


class EnterpriseInfo(Request):
    """An enterprise's basic information, as typed in a cardless application."""

    uscc: Uscc
    name: Annotated[Text, StringConstraints(max_length=100)]
    name_en: Annotated[Text, StringConstraints(max_length=200)] | None = None
    division: DivisionCode
    address: Annotated[Text, StringConstraints(max_length=200)]
    legal_representative: Identified


class MaskedEnterprise(BaseModel):
    """An enterprise as events show it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    uscc: str
    name: str
    name_en: str | None
    division: str
    address: str
    legal_representative: MaskedPerson

    @classmethod
    def of(cls, enterprise: EnterpriseInfo) -> MaskedEnterprise:
        """The masked view of `enterprise`."""
        return cls(
            uscc=enterprise.uscc,
            name=enterprise.name,
            name_en=enterprise.name_en,
            division=enterprise.division,
            address=enterprise.address,
            legal_representative=MaskedPerson.of(enterprise.legal_representative),
        )
