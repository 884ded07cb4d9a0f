"""The filing form is data: its definition file drives validation, field by field, by path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from singlewindow.filing.forms import CURRENT, Form

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "filing.json"


def example(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    return form


def problems(form: dict[str, Any], definition: Form | None = None) -> dict[str, str]:
    return {p.path: p.message for p in (definition or Form.load()).problems(form)}


def test_the_example_is_a_complete_first_filing() -> None:
    assert problems(example()) == {}


def test_every_missing_required_field_is_named_at_once() -> None:
    found = problems({"application_type": "file"})
    assert set(found) == {
        "unit_type",
        "division",
        "customs_district",
        "economic_zone",
        "economic_type",
        "address",
        "postal_code",
        "legal_representative.name",
        "legal_representative.id_type",
        "legal_representative.id_number",
        "legal_representative.mobile",
        "customs_contact.name",
        "customs_contact.mobile",
        "declaration.accepted",
        "declaration.signed_by",
    }
    assert set(found.values()) == {"is required"}


def test_system_fields_and_unknown_fields_are_refused_by_path() -> None:
    found = problems(example(uscc="91500000MA5U7X1C69", colour="yellow"))
    assert found["uscc"].startswith("is filled by the system")
    assert found["colour"] == "unknown field"


def test_a_branch_must_name_its_parent_unit() -> None:
    found = problems(example(unit_type="consignee_branch"))
    assert set(found) == {"parent_unit.customs_code", "parent_unit.name"}
    assert "a branch must name its filed parent unit" in found["parent_unit.name"]


def test_a_temporary_filing_has_no_english_name_or_address() -> None:
    found = problems(example(unit_type="temporary"))
    assert set(found) == {"name_en", "address_en"}
    assert "no English name" in found["name_en"]
    assert problems(example(unit_type="temporary", name_en=None, address_en=None)) == {}


def test_a_consignee_needs_its_english_name_a_broker_does_not() -> None:
    assert set(problems(example(name_en=None))) == {"name_en"}
    assert problems(example(name_en=None, unit_type="broker")) == {}


def test_codes_ids_and_mobiles_are_checked_in_the_repeating_group() -> None:
    person = {"name": "王五", "id_type": "resident_id", "id_number": "110105194912310021"}
    found = problems(
        example(
            customs_district="9999",
            declarants=[person | {"mobile": "12345"}, person | {"id_type": "passport"}],
        )
    )
    assert found["customs_district"].startswith("must be a code of the list customs-districts")
    assert found["declarants.0.id_number"].startswith("is not a valid resident ID number")
    assert found["declarants.0.mobile"] == "is not a mainland China mobile number"
    assert found["declarants.1.mobile"] == "is required"
    assert "declarants.1.id_number" not in found  # a passport number: letters and digits


def test_a_cancellation_needs_its_reason_and_the_declaration_only() -> None:
    declaration = {"accepted": True, "signed_by": "张三"}
    assert problems({"application_type": "cancel", "declaration": declaration}) == {
        "cancel_reason": "is required: a cancellation says why"
    }
    cancel = {"application_type": "cancel", "cancel_reason": "业务终止", "declaration": declaration}
    assert problems(cancel) == {}


def test_the_declaration_must_be_accepted() -> None:
    found = problems(example(declaration={"accepted": False, "signed_by": "张三"}))
    assert found == {"declaration.accepted": "the applicant must accept the declaration"}


def test_a_field_made_optional_in_the_definition_is_accepted_missing(tmp_path: Path) -> None:
    shutil.copytree(CURRENT.parent / "codes", tmp_path / "codes")
    definition = json.loads(CURRENT.read_text(encoding="utf-8"))
    for field in definition["fields"]:
        if field["path"] == "postal_code":
            field["presence"] = "optional"
    copy = tmp_path / "customs-filing-v1.json"
    copy.write_text(json.dumps(definition, ensure_ascii=False), encoding="utf-8")

    assert problems(example(postal_code=None)) == {"postal_code": "is required"}
    assert problems(example(postal_code=None), Form.load(copy)) == {}


def test_the_schema_is_draft_2020_12_and_names_the_form_version() -> None:
    schema = Form.load().schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:singlewindow:form:customs-filing.v1"


def test_every_code_list_names_its_source() -> None:
    form = Form.load()
    assert set(form.code_lists) == {
        "unit-types",
        "customs-districts",
        "economic-zones",
        "economic-types",
        "id-types",
    }
    assert all(codes["source"] for codes in form.code_lists.values())


async def test_swctl_prints_the_form_a_field_a_line(capsys: Any) -> None:
    import argparse
    from types import SimpleNamespace

    from singlewindow.contracts.filing import ShowForm
    from singlewindow.filing.handlers import show_form
    from singlewindow.swctl.filing import print_form

    shown = await show_form(ShowForm(), SimpleNamespace(form=Form.load()))  # type: ignore[arg-type]
    print_form(shown, argparse.Namespace())
    printed = capsys.readouterr().out
    assert "报关单位备案信息表" in printed
    assert "required (file/change)  postal_code" in printed
    assert "system                  uscc" in printed
    assert "a branch must name its filed parent unit" in printed
