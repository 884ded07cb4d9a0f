"""The identifier rules of SPEC section 2, pinned value by value."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel, ValidationError
from singlewindow.shared.identifiers import (
    CardPin,
    CustomsDistrict,
    DivisionCode,
    InspectionNumber,
    InvalidIdentifier,
    MobileNumber,
    ResidentIdNumber,
    Uscc,
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
)
from stdnum.cn import uscc as stdnum_uscc

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
    (normalise_mobile, "13800138000", "13800138000"),
    (normalise_mobile, "+86 138 0013 8000", "13800138000"),
    (normalise_mobile, "+8613800138000", "13800138000"),
    (normalise_mobile, "+86-138-0013-8000", "13800138000"),
    (normalise_mobile, "0086 138 0013 8000", "13800138000"),
    (normalise_mobile, "19912345678", "19912345678"),
    (normalise_division, "500103", "500103"),
    (normalise_division, " 110105 ", "110105"),
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
