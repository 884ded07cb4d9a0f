"""Validation, normalisation and masking of the identifiers the platform accepts.

Administrative division codes are checked against the GB/T 2260 table python-stdnum ships
(`stdnum/cn/loc.dat`, the one `stdnum.cn.ric` reads for birth places), so upgrading python-stdnum
refreshes them.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import re
import unicodedata
from array import array
from importlib import resources
from typing import Annotated, Final, NamedTuple

import phonenumbers
from phonenumbers import PhoneNumberType
from pydantic import AfterValidator, Field
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

__all__ = [
    "CardPin",
    "CustomsDistrict",
    "DivisionCode",
    "InspectionNumber",
    "InvalidIdentifier",
    "MobileNumber",
    "ResidentIdNumber",
    "Uscc",
    "division_exists",
    "division_is_current",
    "is_valid_organisation_code",
    "mask_id_number",
    "mask_mobile",
    "normalise_card_pin",
    "normalise_customs_district",
    "normalise_division",
    "normalise_inspection_number",
    "normalise_mobile",
    "normalise_resident_id",
    "normalise_uscc",
    "organisation_code_check_digit",
    "refuse_division_outside_uscc",
    "visible_text",
]


class InvalidIdentifier(ValueError):
    """An identifier that breaks its rule; the message says which rule, in plain English."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORGANISATION_CODE_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORGANISATION_CODE_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_MOBILE_TYPES: Final = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_DIGITS: Final = re.compile(r"[0-9]+")
_DIVISION: Final = re.compile(r"[0-9]{6}")
# One entry of a county in loc.dat: "朝阳区" (never changed) or "[1997-2025]渝北区" (years in force).
_DIVISION_PERIOD: Final = re.compile(r"\[(?P<start>[0-9]*)-(?P<end>[0-9]*)\]")
# A line of stdnum's cn/loc.dat: indent, number, properties (key="value" ...).
_TABLE_LINE: Final = re.compile(r"( *)([0-9]+)\s+(.*)")
_TABLE_PROPERTY: Final = re.compile(r'([0-9a-zA-Z_-]+)="([^"]*)"')
_EARLIEST_BIRTH_YEAR: Final = 1900
_DIGITS_AND_LETTERS: Final = re.compile(r"[0-9A-Z]+")
# phonenumbers would otherwise read letters as a keypad vanity number and accept extensions.
_PHONE_CHARACTERS: Final = re.compile(r"[0-9 ()+\-]+")


def _tidy(value: str) -> str:
    # NFKC folds the full-width digits and letters a Chinese input method types into ASCII.
    return unicodedata.normalize("NFKC", value).strip().upper()


def _refuse_characters_outside(
    name: str, value: str, allowed: str, *, first_position: int = 1, reason: str = ""
) -> None:
    for position, character in enumerate(value, start=first_position):
        if character not in allowed:
            raise InvalidIdentifier(
                f"{name} character {character!r} at position {position} is not allowed{reason}"
            )


def organisation_code_check_digit(code8: str) -> str:
    """Return the GB 11714 check digit ('0'-'9' or 'X') of an 8-character organisation code."""
    body = _tidy(code8)
    if len(body) != 8:
        raise InvalidIdentifier(
            f"organisation code body must be 8 characters, got {len(body)}",
        )
    _refuse_characters_outside("organisation code", body, _ORGANISATION_CODE_ALPHABET)
    total = sum(
        _ORGANISATION_CODE_ALPHABET.index(character) * weight
        for character, weight in zip(body, _ORGANISATION_CODE_WEIGHTS, strict=True)
    )
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def is_valid_organisation_code(code9: str) -> bool:
    """Tell whether a 9-character GB 11714 organisation code carries the right check digit."""
    code = _tidy(code9)
    if len(code) != 9:
        return False
    try:
        return organisation_code_check_digit(code[:8]) == code[8]
    except InvalidIdentifier:
        return False


def _uscc_check_character(code17: str) -> str:
    # stdnum's weights and alphabet are right; only its validate() is too strict on chars 1-2.
    return uscc.calc_check_digit(code17)


def normalise_uscc(value: str) -> str:
    """Return the Unified Social Credit Code in canonical form, or raise InvalidIdentifier."""
    code = _tidy(value)
    if len(code) != 18:
        raise InvalidIdentifier(f"USCC must be 18 characters, got {len(code)}")
    _refuse_characters_outside("USCC", code, _USCC_ALPHABET)
    _refuse_characters_outside(
        "USCC",
        code[2:8],
        "0123456789",
        first_position=3,
        reason=" (characters 3-8 are the administrative division and must be digits)",
    )
    if not is_valid_organisation_code(code[8:17]):
        raise InvalidIdentifier(
            "USCC organisation code (characters 9-17) check digit does not match"
        )
    if code[17] != _uscc_check_character(code[:17]):
        raise InvalidIdentifier("USCC check character does not match")
    return code


def normalise_resident_id(value: str) -> str:
    """Return the 18-character mainland resident ID number with an upper-case X, or raise."""
    number = _tidy(value)
    if len(number) != 18:
        raise InvalidIdentifier(f"resident ID number must be 18 characters, got {len(number)}")
    if not _DIGITS.fullmatch(number[:17]) or not re.fullmatch(r"[0-9X]", number[17]):
        raise InvalidIdentifier(
            "resident ID number must be 17 digits followed by a digit or X",
        )
    # Any code the table has ever held: the region is where the household was registered when
    # the number was issued (often years after birth) and a number outlives its region's code,
    # so stdnum's own match of the code against the birth year would refuse real people.
    if not division_exists(number[:6]):
        raise InvalidIdentifier(
            "resident ID number region (characters 1-6) is not an administrative division code",
        )
    try:
        birth_date = ric.get_birth_date(number)
    except ValidationError:
        raise InvalidIdentifier(
            "resident ID number birth date (characters 7-14) is not a real date"
        ) from None
    if birth_date.year < _EARLIEST_BIRTH_YEAR:
        raise InvalidIdentifier(
            f"resident ID number birth date (characters 7-14) is before {_EARLIEST_BIRTH_YEAR}"
        )
    if birth_date > datetime.date.today():
        raise InvalidIdentifier("resident ID number birth date (characters 7-14) is in the future")
    if number[17] != ric.calc_check_digit(number):
        raise InvalidIdentifier("resident ID number check character does not match")
    return number


def normalise_mobile(value: str) -> str:
    """Return the 11-digit national number of a mainland China mobile phone, or raise."""
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise InvalidIdentifier("mobile number is empty")
    if not _PHONE_CHARACTERS.fullmatch(text) or text.count("+") > 1:
        raise InvalidIdentifier("mobile number may hold only digits, spaces, '-', '(', ')' and '+'")
    try:
        parsed = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        raise InvalidIdentifier("mobile number is not a phone number") from None
    if phonenumbers.region_code_for_number(parsed) != "CN":
        raise InvalidIdentifier("mobile number must be a mainland China (+86) number")
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidIdentifier("mobile number is not a valid mainland China number")
    if phonenumbers.number_type(parsed) not in _MOBILE_TYPES:
        raise InvalidIdentifier("mobile number must be a mobile, not a landline")
    return str(parsed.national_number)


def _exact(name: str, value: str, length: int, pattern: re.Pattern[str], what: str) -> str:
    text = _tidy(value)
    if len(text) != length or not pattern.fullmatch(text):
        raise InvalidIdentifier(f"{name} must be exactly {length} {what}")
    return text


class _Divisions(NamedTuple):
    codes: array[int]  # every code GB/T 2260 has listed, ascending
    ends: array[int]  # for each, the year it went out of force; 0 while any entry is in force
    provinces: dict[str, str]  # a province's two digits: its name


@functools.cache
def _divisions() -> _Divisions:
    """python-stdnum's GB/T 2260 table, read once, line by line, into two arrays of numbers.

    `numdb.get("cn/loc")` keeps the file's parsed tree for good (a tuple, a dict and strings for
    each of its some 7,000 lines: about 4 MiB in every service that checks a division), and
    building that tree only to let it go leaves as much behind, freed but scattered. Read a line
    at a time, the table costs some 60 KiB. The file is a 2-digit province line followed by its
    4-digit county lines, ascending; a test pins every answer against `numdb`'s own `info()`.
    """
    codes: array[int] = array("i")
    ends: array[int] = array("i")
    provinces: dict[str, str] = {}
    prefix = ""
    with resources.files("stdnum").joinpath("cn/loc.dat").open(encoding="utf-8") as lines:
        for line in lines:
            match = _TABLE_LINE.fullmatch(line.rstrip("\n"))
            if match is None:  # a comment
                continue
            indent, number, rest = match.groups()
            props = dict(_TABLE_PROPERTY.findall(rest))
            if not indent:
                prefix = number
                if "province" in props:
                    provinces[number] = props["province"]
            elif (end := _end_year(props.get("county"))) >= 0:
                codes.append(int(prefix + number))
                ends.append(end)
    return _Divisions(codes, ends, provinces)


def _end_year(county: str | None) -> int:
    # Only a county entry (which the table also has for PP0000 and PPCC00) makes a code a
    # division, and the code is out of force once every one of its entries has an end year.
    # -1: not a division; 0: in force.
    if not county:
        return -1
    ends: list[int] = []
    for entry in county.split(","):
        period = _DIVISION_PERIOD.match(entry)
        if period is None or not period["end"]:
            return 0
        ends.append(int(period["end"]))
    return max(ends)


def _end_of(code: str) -> int:
    """The year `code` went out of force, 0 while in force, -1 if GB/T 2260 never listed it."""
    if not _DIVISION.fullmatch(code):
        return -1
    table = _divisions()
    number = int(code)
    at = bisect.bisect_left(table.codes, number)
    if at < len(table.codes) and table.codes[at] == number:
        return table.ends[at]
    return -1


def _province_name(code: str) -> str | None:
    return _divisions().provinces.get(code[:2])


def _abolished_in(code: str) -> int | None:
    # The year the code went out of force, or None while any entry of it is still in force.
    end = _end_of(code)
    return end if end > 0 else None


def division_exists(code: str) -> bool:
    """Whether GB/T 2260 (python-stdnum's table) has ever listed `code`, in force or abolished."""
    return _end_of(code) >= 0


def division_is_current(code: str) -> bool:
    """Whether `code` is in GB/T 2260 and still in force (the table gives it no end year)."""
    return division_exists(code) and _abolished_in(code) is None


def normalise_division(value: str) -> str:
    """Return an enterprise's current 6-digit administrative division code, or raise.

    The code must be in force today: python-stdnum's GB/T 2260 table records when each code was
    abolished, and an enterprise's division is where it is now, so an abolished code (500112
    渝北区, out of force since 2025) is refused with a request for the current one. Province (PP0000) and
    prefecture (PPCC00) codes are divisions too and are accepted. Identifiers issued once and
    kept for life (the USCC's characters 3-8, a resident ID's region) accept abolished codes.
    """
    code = _exact("administrative division code", value, 6, _DIGITS, "digits")
    if not division_exists(code):
        raise InvalidIdentifier(
            f"administrative division code {code} does not exist in GB/T 2260",
        )
    abolished = _abolished_in(code)
    if abolished is not None:
        raise InvalidIdentifier(
            f"administrative division code {code} was abolished in {abolished}; "
            "give the current code",
        )
    return code


def refuse_division_outside_uscc(division: str, uscc_code: str) -> None:
    """Raise InvalidIdentifier if `division` is outside the province of the USCC's authority.

    USCC characters 3-8 are the administrative division of the registering authority, which may
    sit at province (500000), prefecture or county level; the enterprise lies within it. Only the
    province (the first two digits) is compared: a USCC is never reissued, while prefectures
    merge (莱芜 3712xx joined 济南 as 370116 and 370117 in 2018), counties become districts
    under new codes (500222 綦江县 became 500110 綦江区) and an enterprise may move within its
    province, so a finer comparison would refuse real enterprises. A USCC whose characters 3-4
    name no province (a national-level authority's 100000, say) constrains nothing.
    """
    authority = uscc_code[2:8]
    authority_province = _province_name(authority)
    if authority_province is None or division[:2] == authority[:2]:
        return
    division_province = _province_name(division) or "no province"
    raise InvalidIdentifier(
        f"administrative division code {division} ({division_province}) is outside the "
        f"province of the USCC's registering authority, {authority} ({authority_province})",
    )


def normalise_customs_district(value: str) -> str:
    """Return a 4-digit customs district code, or raise InvalidIdentifier."""
    return _exact("customs district code", value, 4, _DIGITS, "digits")


def normalise_inspection_number(value: str) -> str:
    """Return a 10-character inspection registration number (digits, A-Z), or raise."""
    return _exact(
        "inspection registration number", value, 10, _DIGITS_AND_LETTERS, "digits or letters"
    )


def normalise_card_pin(value: str) -> str:
    """Return an 8-digit card PIN, or raise InvalidIdentifier without echoing it."""
    return _exact("card PIN", value, 8, _DIGITS, "digits")


_HIDDEN_CATEGORIES: Final = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (bidirectional control, zero-width, ...)",
    "Cs": "a lone surrogate, not a character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def visible_text(value: str) -> str:
    """Return `value` unless it holds characters that hide or reorder what a reader sees.

    Refused by Unicode category, not a hand list: controls (Cc), formatting characters (Cf: the
    bidirectional embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks
    U+200E/U+200F, zero-width space and joiners, soft hyphen, BOM), lone surrogates (Cs) and
    line/paragraph separators. Private-use characters stay allowed (rare characters of Chinese
    names are still typed through private-use code points), and so do code points unassigned in
    this Python's Unicode version (CJK extensions newer than it).
    """
    for position, character in enumerate(value, start=1):
        kind = _HIDDEN_CATEGORIES.get(unicodedata.category(character))
        if kind is not None:
            name = unicodedata.name(character, "")
            described = f"U+{ord(character):04X}" + (f" {name}" if name else "")
            raise InvalidIdentifier(
                f"character {described} at position {position} is not allowed: it is {kind}"
            )
    return value


def mask_id_number(value: str) -> str:
    """Mask an ID number for logs and events, keeping only its first 6 and last 4 characters."""
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_mobile(value: str) -> str:
    """Mask a mobile number for logs and events, keeping only its first 3 and last 4 digits."""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


Uscc = Annotated[str, Field(strict=True), AfterValidator(normalise_uscc)]
ResidentIdNumber = Annotated[str, Field(strict=True), AfterValidator(normalise_resident_id)]
MobileNumber = Annotated[str, Field(strict=True), AfterValidator(normalise_mobile)]
DivisionCode = Annotated[str, Field(strict=True), AfterValidator(normalise_division)]
CustomsDistrict = Annotated[str, Field(strict=True), AfterValidator(normalise_customs_district)]
InspectionNumber = Annotated[str, Field(strict=True), AfterValidator(normalise_inspection_number)]
CardPin = Annotated[str, Field(strict=True), AfterValidator(normalise_card_pin)]
