"""The identifier rules of SPEC section 2, pinned value by value."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from singlewindow.contracts.common import EnterpriseInfo
from singlewindow.contracts.identifiers import (
    CardPin,
    CustomsDistrict,
    DivisionCode,
    InspectionNumber,
    InvalidIdentifier,
    MobileNumber,
    ResidentIdNumber,
    Uscc,
    division_exists,
    division_is_current,
    is_valid_organisation_code,
    mask_id_number,
    mask_mobile,
    normalise_card_pin,
    normalise_customs_district,
    normalise_division,
    normalise_inspection_number,
    normalise_mobile,
    normalise_resident_id,
    normalise_uscc,
    organisation_code_check_digit,
    refuse_division_outside_uscc,
    visible_text,
)
from singlewindow.contracts.registration import CardlessApplication
from stdnum import numdb
from stdnum.cn import ric
from stdnum.cn import uscc as stdnum_uscc

from tests.support.identifiers import application, make_uscc

# Built by hand: registering authority and entity type letters, correct check digits throughout.
LETTER_AUTHORITY_USCCS = ["Y1110105MA5U7X1C6A", "N2500103085123455P", "A111000050001234XB"]

# Organisation code MA5U7X1C must end in 6, not 7; char 18 was recomputed so only GB 11714 fails.
BAD_ORGANISATION_CHECK_DIGIT_USCC = "91500000MA5U7X1C7C"

Normalise = Callable[[str], str]


def full_width(ascii_text: str) -> str:
    """What a Chinese input method in full-width mode types for the given ASCII."""
    return "".join(chr(ord(character) + 0xFEE0) for character in ascii_text)


VALID: list[tuple[Normalise, str, str]] = [
    (normalise_uscc, "91500000MA5U7X1C69", "91500000MA5U7X1C69"),
    (normalise_uscc, "91350100M000100Y43", "91350100M000100Y43"),
    (normalise_uscc, "91110000600037341L", "91110000600037341L"),
    (normalise_uscc, " 91110000600037341l\n", "91110000600037341L"),
    (normalise_uscc, "91500000ma5u7x1c69", "91500000MA5U7X1C69"),
    (normalise_uscc, full_width("91110000600037341L"), "91110000600037341L"),
    *[(normalise_uscc, code, code) for code in LETTER_AUTHORITY_USCCS],
    (normalise_uscc, "y1110105ma5u7x1c6a", "Y1110105MA5U7X1C6A"),
    (normalise_resident_id, "11010519491231002X", "11010519491231002X"),
    (normalise_resident_id, " 11010519491231002x ", "11010519491231002X"),
    # 崇文区, abolished in 2010: a number outlives its region's code.
    (normalise_resident_id, "110103196001010014", "110103196001010014"),
    # A Chongqing code (in force from 1997) for someone born in 1960, which stdnum would refuse.
    (normalise_resident_id, "500101196001010014", "500101196001010014"),
    (normalise_resident_id, "810000198001010014", "810000198001010014"),
    (normalise_resident_id, "110105190001010028", "110105190001010028"),
    (normalise_mobile, "13800138000", "13800138000"),
    (normalise_mobile, "+86 138 0013 8000", "13800138000"),
    (normalise_mobile, "+8613800138000", "13800138000"),
    (normalise_mobile, "+86-138-0013-8000", "13800138000"),
    (normalise_mobile, "0086 138 0013 8000", "13800138000"),
    (normalise_mobile, "19912345678", "19912345678"),
    (normalise_division, "500103", "500103"),
    (normalise_division, " 110105 ", "110105"),
    (normalise_division, "500000", "500000"),
    (normalise_division, "440300", "440300"),
    (normalise_division, "500157", "500157"),
    (normalise_division, "370116", "370116"),
    (normalise_customs_district, "8000", "8000"),
    (normalise_inspection_number, "5000601234", "5000601234"),
    (normalise_inspection_number, "50006abcde", "50006ABCDE"),
    (normalise_card_pin, "88888888", "88888888"),
]

INVALID: list[tuple[Normalise, str, str]] = [
    (normalise_uscc, "", "USCC must be 18 characters, got 0"),
    (normalise_uscc, "9111000060003734", "USCC must be 18 characters, got 16"),
    (normalise_uscc, "91110000600037341L0", "USCC must be 18 characters, got 19"),
    (normalise_uscc, "9111000060003734IL", "USCC character 'I' at position 17 is not allowed"),
    (normalise_uscc, "O1110000600037341L", "USCC character 'O' at position 1 is not allowed"),
    (normalise_uscc, "9Z110000600037341L", "USCC character 'Z' at position 2 is not allowed"),
    (normalise_uscc, "91110000S00037341L", "USCC character 'S' at position 9 is not allowed"),
    (normalise_uscc, "91110000600037341V", "USCC character 'V' at position 18 is not allowed"),
    (normalise_uscc, "91110000 600037341", "USCC character ' ' at position 9 is not allowed"),
    (normalise_uscc, "91A10000600037341L", "character 'A' at position 3 is not allowed"),
    (normalise_uscc, "9111000A600037341L", "administrative division and must be digits"),
    (
        normalise_uscc,
        BAD_ORGANISATION_CHECK_DIGIT_USCC,
        "USCC organisation code (characters 9-17) check digit does not match",
    ),
    (normalise_uscc, "91110000600037341M", "USCC check character does not match"),
    (normalise_uscc, "Y1110105MA5U7X1C6B", "USCC check character does not match"),
    (normalise_resident_id, "1101051949123100", "resident ID number must be 18 characters, got 16"),
    (normalise_resident_id, "1101051949123A002X", "17 digits followed by a digit or X"),
    (normalise_resident_id, "11010519491231002Y", "17 digits followed by a digit or X"),
    (
        normalise_resident_id,
        "110105194902300012",
        "birth date (characters 7-14) is not a real date",
    ),
    (normalise_resident_id, "110105299901010014", "birth date (characters 7-14) is in the future"),
    (
        normalise_resident_id,
        "110105194912310021",
        "resident ID number check character does not match",
    ),
    # Correct check characters throughout: only the region or the year is wrong.
    (normalise_resident_id, "000000194912310027", "region (characters 1-6) is not"),
    (normalise_resident_id, "999999194912310025", "region (characters 1-6) is not"),
    (normalise_resident_id, "509999194912310024", "region (characters 1-6) is not"),
    (normalise_resident_id, "110105189912310023", "birth date (characters 7-14) is before 1900"),
    (normalise_resident_id, "110105180001010010", "birth date (characters 7-14) is before 1900"),
    (normalise_mobile, "", "mobile number is empty"),
    (normalise_mobile, "010 6552 9988", "must be a mobile, not a landline"),
    (normalise_mobile, "+86 10 6552 9988", "must be a mobile, not a landline"),
    (normalise_mobile, "1380013800", "not a valid mainland China number"),
    (normalise_mobile, "138001380000", "not a valid mainland China number"),
    (normalise_mobile, "+1 650 253 0000", "must be a mainland China (+86) number"),
    (normalise_mobile, "+852 6123 4567", "must be a mainland China (+86) number"),
    (normalise_mobile, "138OO138OOO", "may hold only digits"),
    (normalise_mobile, "13800138000 ext 5", "may hold only digits"),
    (normalise_division, "50010", "administrative division code must be exactly 6 digits"),
    (normalise_division, "5001034", "administrative division code must be exactly 6 digits"),
    (normalise_division, "50010A", "administrative division code must be exactly 6 digits"),
    (normalise_division, "000000", "administrative division code 000000 does not exist"),
    (normalise_division, "509999", "administrative division code 509999 does not exist"),
    (normalise_division, "100000", "administrative division code 100000 does not exist"),
    (normalise_division, "500112", "500112 was abolished in 2025; give the current code"),
    (normalise_division, "371202", "371202 was abolished in 2018; give the current code"),
    (normalise_division, "110103", "110103 was abolished in 2010; give the current code"),
    (normalise_customs_district, "800", "customs district code must be exactly 4 digits"),
    (normalise_customs_district, "80001", "customs district code must be exactly 4 digits"),
    (normalise_customs_district, "80O0", "customs district code must be exactly 4 digits"),
    (normalise_inspection_number, "500060123", "must be exactly 10 digits or letters"),
    (normalise_inspection_number, "50006-1234", "must be exactly 10 digits or letters"),
    (normalise_card_pin, "8888888", "card PIN must be exactly 8 digits"),
    (normalise_card_pin, "888888888", "card PIN must be exactly 8 digits"),
    (normalise_card_pin, "8888888a", "card PIN must be exactly 8 digits"),
]


@pytest.mark.parametrize(("normalise", "given", "expected"), VALID)
def test_valid_identifier_is_normalised(normalise: Normalise, given: str, expected: str) -> None:
    assert normalise(given) == expected


@pytest.mark.parametrize(("normalise", "given", "reason"), INVALID)
def test_invalid_identifier_is_refused_with_its_reason(
    normalise: Normalise, given: str, reason: str
) -> None:
    with pytest.raises(InvalidIdentifier) as refused:
        normalise(given)
    assert reason in str(refused.value)


def test_stdnum_alone_would_refuse_letter_authorities_and_miss_bad_organisation_codes() -> None:
    assert not any(stdnum_uscc.is_valid(code) for code in LETTER_AUTHORITY_USCCS)
    assert stdnum_uscc.is_valid(BAD_ORGANISATION_CHECK_DIGIT_USCC)


def test_uscc_refusal_does_not_reveal_the_expected_check_character() -> None:
    with pytest.raises(InvalidIdentifier) as refused:
        normalise_uscc("91110000600037341M")
    assert refused.value.message == "USCC check character does not match"


def test_card_pin_refusal_does_not_echo_the_pin() -> None:
    with pytest.raises(InvalidIdentifier) as refused:
        normalise_card_pin("1234567x")
    assert "1234567" not in str(refused.value)


@pytest.mark.parametrize(
    ("body", "check_digit"),
    [("MA5U7X1C", "6"), ("60003734", "1"), ("50001234", "X"), ("00000000", "0"), ("M000100Y", "4")],
)
def test_organisation_code_check_digit(body: str, check_digit: str) -> None:
    assert organisation_code_check_digit(body) == check_digit


@pytest.mark.parametrize("body", ["6000373", "600037341", "6000373-"])
def test_organisation_code_body_must_be_eight_letters_or_digits(body: str) -> None:
    with pytest.raises(InvalidIdentifier, match="organisation code"):
        organisation_code_check_digit(body)


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("600037341", True),
        ("MA5U7X1C6", True),
        ("50001234X", True),
        ("50001234x", True),
        ("600037342", False),
        ("MA5U7X1C7", False),
        ("60003734", False),
        ("60003734-1", False),
    ],
)
def test_is_valid_organisation_code(code: str, valid: bool) -> None:
    assert is_valid_organisation_code(code) is valid


def test_id_number_is_masked_to_first_six_and_last_four() -> None:
    assert mask_id_number("11010519491231002X") == "110105********002X"


def test_mobile_is_masked_to_first_three_and_last_four() -> None:
    assert mask_mobile("13800138000") == "138****8000"


@pytest.mark.parametrize("value", ["", "1234", "1101051949"])
def test_short_id_number_is_masked_entirely(value: str) -> None:
    assert mask_id_number(value) == "*" * len(value)


@pytest.mark.parametrize("value", ["", "138", "1380013"])
def test_short_mobile_is_masked_entirely(value: str) -> None:
    assert mask_mobile(value) == "*" * len(value)


class Enterprise(BaseModel):
    uscc: Uscc
    division: DivisionCode
    customs_district: CustomsDistrict
    inspection_number: InspectionNumber | None = None


class Administrator(BaseModel):
    id_number: ResidentIdNumber
    mobile: MobileNumber


class Registration(BaseModel):
    enterprise: Enterprise
    administrator: Administrator
    card_pin: CardPin


def registration(**enterprise_changes: object) -> dict[str, object]:
    return {
        "enterprise": {
            "uscc": "91500000ma5u7x1c69",
            "division": "500103",
            "customs_district": "8000",
        }
        | enterprise_changes,
        "administrator": {"id_number": "11010519491231002x", "mobile": "+86 138 0013 8000"},
        "card_pin": "88888888",
    }


def test_model_normalises_every_identifier() -> None:
    parsed = Registration.model_validate(registration(inspection_number="50006abcde"))
    assert parsed.enterprise.uscc == "91500000MA5U7X1C69"
    assert parsed.enterprise.inspection_number == "50006ABCDE"
    assert parsed.administrator.id_number == "11010519491231002X"
    assert parsed.administrator.mobile == "13800138000"


def test_model_reports_the_field_path_and_reason_of_a_bad_identifier() -> None:
    with pytest.raises(ValidationError) as refused:
        Registration.model_validate(registration(uscc="91110000600037341M"))
    [error] = refused.value.errors()
    assert error["loc"] == ("enterprise", "uscc")
    assert error["type"] == "value_error"
    assert "USCC check character does not match" in error["msg"]


def test_model_reports_every_bad_identifier_at_once() -> None:
    data = registration(division="5001", customs_district="80")
    data["administrator"] = {"id_number": "110105194902300012", "mobile": "010 6552 9988"}
    with pytest.raises(ValidationError) as refused:
        Registration.model_validate(data)
    assert {error["loc"] for error in refused.value.errors()} == {
        ("enterprise", "division"),
        ("enterprise", "customs_district"),
        ("administrator", "id_number"),
        ("administrator", "mobile"),
    }


@pytest.mark.parametrize(
    ("field", "number"), [("division", 500103), ("customs_district", 8000), ("uscc", 9.5)]
)
def test_model_refuses_a_number_where_a_string_is_expected(field: str, number: object) -> None:
    with pytest.raises(ValidationError) as refused:
        Registration.model_validate(registration(**{field: number}))
    [error] = refused.value.errors()
    assert error["loc"] == ("enterprise", field)
    assert error["type"] == "string_type"


def test_model_refuses_a_json_number_for_a_card_pin() -> None:
    with pytest.raises(ValidationError) as refused:
        Registration.model_validate_json(
            '{"enterprise": {"uscc": "91110000600037341L", "division": "110105",'
            ' "customs_district": "0100"},'
            ' "administrator": {"id_number": "11010519491231002X", "mobile": "13800138000"},'
            ' "card_pin": 88888888}'
        )
    [error] = refused.value.errors()
    assert error["loc"] == ("card_pin",)
    assert error["type"] == "string_type"


@pytest.mark.parametrize(
    ("code", "exists", "current"),
    [
        ("110105", True, True),
        ("500000", True, True),
        ("110103", True, False),
        ("500112", True, False),
        ("000000", False, False),
        ("500099", False, False),
        ("50010", False, False),
        ("5001031", False, False),
    ],
)
def test_division_table_knows_current_and_abolished_codes(
    code: str, exists: bool, current: bool
) -> None:
    assert division_exists(code) is exists
    assert division_is_current(code) is current


def test_stdnum_alone_would_refuse_a_region_coded_after_the_birth_year() -> None:
    assert not ric.is_valid("500101196001010014")
    assert normalise_resident_id("500101196001010014") == "500101196001010014"


# (USCC characters 3-8: the registering authority's division, the enterprise's division)
DIVISIONS_WITHIN_USCC = [
    ("500000", "500000"),
    ("500000", "500103"),
    ("500103", "500157"),  # another district of the same province
    ("440300", "440305"),
    ("371202", "370116"),  # 莱芜 (3712) merged into 济南 in 2018; its USCCs kept 3712xx
    ("110105", "110105"),
    ("100000", "500103"),  # a national authority: no province to lie within
]

DIVISIONS_OUTSIDE_USCC = [
    ("500000", "110105", "110105 (北京市) is outside the province", "500000 (重庆市)"),
    ("110105", "500103", "500103 (重庆市) is outside the province", "110105 (北京市)"),
    ("510000", "500103", "500103 (重庆市) is outside the province", "510000 (四川省)"),
    ("440300", "450100", "450100 (广西壮族自治区) is outside the province", "440300 (广东省)"),
]


def enterprise(**changes: object) -> dict[str, Any]:
    content: dict[str, Any] = application()["enterprise"]
    return content | changes


@pytest.mark.parametrize(("authority", "division"), DIVISIONS_WITHIN_USCC)
def test_division_within_the_uscc_authoritys_province_is_accepted(
    authority: str, division: str
) -> None:
    uscc = make_uscc(division=authority)
    parsed = EnterpriseInfo.model_validate(enterprise(uscc=uscc, division=division))
    assert (parsed.uscc, parsed.division) == (uscc, division)


@pytest.mark.parametrize(("authority", "division", "reason", "named"), DIVISIONS_OUTSIDE_USCC)
def test_division_outside_the_uscc_authoritys_province_is_refused_on_the_division(
    authority: str, division: str, reason: str, named: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        EnterpriseInfo.model_validate(
            enterprise(uscc=make_uscc(division=authority), division=division)
        )
    [error] = refused.value.errors()
    assert error["loc"] == ("division",)
    assert reason in error["msg"]
    assert f"the USCC's registering authority, {named}" in error["msg"]
    with pytest.raises(InvalidIdentifier):
        refuse_division_outside_uscc(division, make_uscc(division=authority))


def test_a_bad_uscc_is_reported_alone_without_a_division_contradiction() -> None:
    with pytest.raises(ValidationError) as refused:
        EnterpriseInfo.model_validate(enterprise(uscc="91500000MA5U7X1C68", division="110105"))
    assert [error["loc"] for error in refused.value.errors()] == [("uscc",)]


def test_an_abolished_division_is_refused_even_inside_the_uscc_province() -> None:
    with pytest.raises(ValidationError) as refused:
        EnterpriseInfo.model_validate(
            enterprise(uscc=make_uscc(division="500112"), division="500112")
        )
    [error] = refused.value.errors()
    assert error["loc"] == ("division",)
    assert "abolished in 2025" in error["msg"]


HIDDEN_CHARACTERS = [
    ("\u202a", "U+202A LEFT-TO-RIGHT EMBEDDING"),
    ("\u202b", "U+202B RIGHT-TO-LEFT EMBEDDING"),
    ("\u202c", "U+202C POP DIRECTIONAL FORMATTING"),
    ("\u202d", "U+202D LEFT-TO-RIGHT OVERRIDE"),
    ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("\u2067", "U+2067 RIGHT-TO-LEFT ISOLATE"),
    ("\u2068", "U+2068 FIRST STRONG ISOLATE"),
    ("\u2069", "U+2069 POP DIRECTIONAL ISOLATE"),
    ("\u200e", "U+200E LEFT-TO-RIGHT MARK"),
    ("\u200f", "U+200F RIGHT-TO-LEFT MARK"),
    ("\u061c", "U+061C ARABIC LETTER MARK"),
    ("\u200b", "U+200B ZERO WIDTH SPACE"),
    ("\u200c", "U+200C ZERO WIDTH NON-JOINER"),
    ("\u200d", "U+200D ZERO WIDTH JOINER"),
    ("\u2060", "U+2060 WORD JOINER"),
    ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("\u00ad", "U+00AD SOFT HYPHEN"),
    ("\U000e0041", "U+E0041 TAG LATIN CAPITAL LETTER A"),
    ("\x00", "U+0000 at"),
    ("\x07", "U+0007 at"),
    ("\x1b", "U+001B at"),
    ("\t", "U+0009 at"),
    ("\n", "U+000A at"),
    ("\r", "U+000D at"),
    ("\x7f", "U+007F at"),
    ("\x85", "U+0085 at"),
    ("\u2028", "U+2028 LINE SEPARATOR"),
    ("\u2029", "U+2029 PARAGRAPH SEPARATOR"),
    ("\ud800", "U+D800 at"),
    ("\udfff", "U+DFFF at"),
]


@pytest.mark.parametrize(("character", "described"), HIDDEN_CHARACTERS)
def test_hidden_and_reordering_characters_are_refused_by_position(
    character: str, described: str
) -> None:
    with pytest.raises(InvalidIdentifier) as refused:
        visible_text(f"重庆{character}贸易")
    assert f"character {described}" in refused.value.message
    assert "at position 3 is not allowed" in refused.value.message


@pytest.mark.parametrize(
    "text",
    [
        "重庆某某贸易有限公司",
        "Chongqing Example Trading Co., Ltd.",
        "O'Brien-Smith",
        "阿卜杜拉·买买提",
        "葛\U000e0100",  # an ideographic variation sequence picks a glyph; nothing is hidden
        "王\ue000",  # a rare name character typed as a private-use code point
        "重庆市渝北区金开大道88号 1单元",
    ],
)
def test_visible_text_is_accepted_unchanged(text: str) -> None:
    assert visible_text(text) == text


FREE_TEXT_FIELDS = [
    ("enterprise", "name"),
    ("enterprise", "name_en"),
    ("enterprise", "address"),
    ("enterprise", "legal_representative", "name"),
    ("admin", "name"),
]


@pytest.mark.parametrize("path", FREE_TEXT_FIELDS)
@pytest.mark.parametrize("character", ["\u202e", "\u2067", "\u200b", "\x00", "\n"])
def test_every_free_text_field_refuses_hidden_characters_by_name(
    path: tuple[str, ...], character: str
) -> None:
    content = application()
    *parents, leaf = path
    node = content
    for part in parents:
        node = node[part]
    node[leaf] = f"Li{character}Si"
    with pytest.raises(ValidationError) as refused:
        CardlessApplication.model_validate(content)
    [error] = refused.value.errors()
    assert error["loc"] == path
    assert "at position 3 is not allowed" in error["msg"]


def test_an_email_with_a_bidirectional_override_is_refused() -> None:
    content = application()
    content["admin"]["email"] = "li\u202emoc.elpmaxe@example.cn"
    with pytest.raises(ValidationError) as refused:
        CardlessApplication.model_validate(content)
    [error] = refused.value.errors()
    assert error["loc"] == ("admin", "email")
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in error["msg"]


def test_a_person_name_is_still_trimmed_and_length_limited() -> None:
    content = application()
    content["admin"]["name"] = " 李四 "
    assert CardlessApplication.model_validate(content).admin.name == "李四"
    content["admin"]["name"] = "李" * 51
    with pytest.raises(ValidationError) as refused:
        CardlessApplication.model_validate(content)
    [error] = refused.value.errors()
    assert error["type"] == "string_too_long"


@pytest.mark.parametrize(
    ("path", "number", "reason"),
    [
        (("admin", "id_number"), "000000194912310027", "region (characters 1-6)"),
        (("enterprise", "legal_representative", "id_number"), "999999194912310025", "region"),
        (("admin", "id_number"), "110105189912310023", "before 1900"),
    ],
)
def test_a_resident_id_with_no_region_or_an_old_birth_year_is_refused_by_name(
    path: tuple[str, ...], number: str, reason: str
) -> None:
    content = application()
    *parents, leaf = path
    node = content
    for part in parents:
        node = node[part]
    node[leaf] = number
    with pytest.raises(ValidationError) as refused:
        CardlessApplication.model_validate(content)
    [error] = refused.value.errors()
    assert error["loc"] == path
    assert reason in error["msg"]


def test_the_example_application_passes_every_rule() -> None:
    example = Path(__file__).parents[2] / "examples" / "application.json"
    parsed = CardlessApplication.model_validate(json.loads(example.read_text("utf-8")))
    assert parsed.enterprise.division == parsed.enterprise.uscc[2:8] == "500000"


@pytest.mark.parametrize("division", ["500000", "110105", "440305"])
def test_the_fixture_builds_applications_that_pass_every_rule(division: str) -> None:
    content = application(uscc=make_uscc(division=division))
    content["enterprise"]["division"] = division
    CardlessApplication.model_validate(content)
    CardlessApplication.model_validate(application())


def test_division_answers_are_those_of_stdnums_own_table_lookup() -> None:
    # The table is read line by line, not through numdb (whose parsed tree stays in memory for
    # good); every code it lists, each one's neighbours and every province must still be
    # answered as numdb.info() reads the file.
    table = numdb.get("cn/loc")

    def expected(code: str) -> tuple[bool, int | None]:
        parts = table.info(code)
        county = parts[-1][1].get("county") if len(parts) == 2 else None
        if not county:
            return False, None
        ends = [re.match(r"\[[0-9]*-([0-9]*)\]", entry) for entry in county.split(",")]
        if any(end is None or not end[1] for end in ends):
            return True, None
        return True, max(int(end[1]) for end in ends if end is not None)

    listed = {
        province + county
        for _, province, _, _, counties in table.prefixes
        for _, county, _, _, _ in counties
    }
    codes = sorted(listed | {f"{int(c) + d:06d}" for c in listed for d in (-1, 1)})
    codes += [f"{p:02d}0000" for p in range(100)]
    for code in codes:
        exists, abolished = expected(code)
        assert division_exists(code) is exists, code
        assert division_is_current(code) is (exists and abolished is None), code
        if exists and abolished is not None:
            with pytest.raises(InvalidIdentifier, match=f"abolished in {abolished};"):
                normalise_division(code)
    for province in (f"{p:02d}" for p in range(100)):
        authority = make_uscc(division=province + "0000")
        elsewhere = "310101" if province == "11" else "110101"
        name = table.info(province + "0000")[0][1].get("province")
        if name is None:
            refuse_division_outside_uscc(elsewhere, authority)  # such a USCC constrains nothing
        else:
            with pytest.raises(InvalidIdentifier, match=rf"\({name}\)$"):
                refuse_division_outside_uscc(elsewhere, authority)
