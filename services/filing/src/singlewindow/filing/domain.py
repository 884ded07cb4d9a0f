"""Filing rules, pure: who may file, what a filing may ask for, and the customs code."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from singlewindow.contracts.accounts import EnterpriseCaller, Role
from singlewindow.contracts.card_gateway import OperatorLevel
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.filing import ApplicationType, FilingState, RecordStatus
from singlewindow.contracts.identifiers import mask_id_number, mask_mobile, normalise_uscc
from singlewindow.contracts.review import Decision

KIND = "filing"
"""The review kind of a filing application."""

OUTCOMES = {
    Decision.APPROVE: FilingState.APPROVED,
    Decision.REJECT: FilingState.REJECTED,
    Decision.RETURN: FilingState.RETURNED,
}

SEQUENCE_DIGITS = 4


def new_filing_id() -> str:
    """A filing application's id."""
    return f"fil_{secrets.token_urlsafe(12)}"


def check_may_submit(caller: EnterpriseCaller) -> None:
    """Refuse a submission by anyone but the administrator or a declaration-level operator."""
    if caller.role is Role.ADMIN:
        return
    if caller.role is Role.OPERATOR and caller.operator_level is OperatorLevel.DECLARATION:
        return
    raise DomainError(
        ErrorCode.FORBIDDEN,
        "only the enterprise administrator or a declaration-level operator submits a filing;"
        " a data-entry operator may save it as a draft",
    )


def check_application(
    caller: EnterpriseCaller, application_type: ApplicationType, record: Mapping[str, Any] | None
) -> None:
    """Refuse an application the enterprise's record does not allow: a first filing of a filed
    (or card) enterprise, a change or cancellation of one that is not filed."""
    filed = record is not None and record["status"] == RecordStatus.FILED.value
    field = (FieldError(path="application_type", message=f"cannot be {application_type.value}"),)
    if application_type is ApplicationType.FILE:
        if filed:
            assert record is not None
            raise DomainError(
                ErrorCode.CONFLICT,
                f"enterprise {caller.uscc} is filed already (customs code"
                f" {record['customs_code']}); apply for a change or a cancellation",
                field,
            )
        if caller.registered_via == "card":
            raise DomainError(
                ErrorCode.CONFLICT,
                "an enterprise registered by card was filed before: see its record with"
                " `swctl filing show`, and apply for a change or a cancellation",
                field,
            )
    elif not filed:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"enterprise {caller.uscc} has no filed record to {application_type.value}; file first",
            field,
        )
    else:
        problem = card_code_problem(caller, record)
        if problem is not None:
            raise DomainError(
                ErrorCode.CONFLICT,
                f"{problem}; no {application_type.value} is taken until customs corrects one of"
                " them",
                (
                    FieldError(
                        path="customs_code", message="differs between the card and the record"
                    ),
                ),
            )


def card_code_problem(caller: EnterpriseCaller, record: Mapping[str, Any] | None) -> str | None:
    """Why the customs code on the enterprise's E-Port card and its filed record disagree, in
    plain words; None when they agree, or when either has no code."""
    card_code = caller.card_customs_code
    if card_code is None or record is None or record["customs_code"] is None:
        return None
    if card_code == record["customs_code"]:
        return None
    return (
        f"the E-Port card of enterprise {caller.uscc} carries customs code {card_code}, but its"
        f" filing record has customs code {record['customs_code']}"
    )


def refuse_unfiled_parent(code: str) -> DomainError:
    """The refusal of a branch whose parent unit is not filed."""
    return DomainError(
        ErrorCode.INVALID,
        f"invalid fields: parent_unit.customs_code (no filed unit has customs code {code})",
        (
            FieldError(
                path="parent_unit.customs_code",
                message="is not the customs code of a filed unit: a branch names its filed parent",
            ),
        ),
    )


def code_prefix(form: Mapping[str, Any]) -> str:
    """The first six characters of a customs code: the administrative division's first four
    digits, the statistical economic zone and the economic type."""
    return f"{form['division'][:4]}{form['economic_zone']}{form['economic_type']}"


def customs_code(prefix: str, sequence: int) -> str:
    """The 10-character customs code: the prefix and a 4-digit sequence unique within it."""
    if not 1 <= sequence < 10**SEQUENCE_DIGITS:
        raise ValueError(f"customs codes of prefix {prefix} are used up")
    return f"{prefix}{sequence:0{SEQUENCE_DIGITS}d}"


def masked(definition: Mapping[str, Any], form: Mapping[str, Any]) -> dict[str, Any]:
    """The form as a reviewer or an event may see it: every ID number and mobile masked."""
    hidden_ids = set()
    hidden_mobiles = set()
    for field in definition["fields"]:
        rule = field.get("rule", {})
        if "id_document" in rule:
            hidden_ids.add(field["path"].replace("[]", ""))
        if rule.get("format") == "mobile-cn":
            hidden_mobiles.add(field["path"].replace("[]", ""))

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(item, path) for item in value]
        if isinstance(value, str) and path in hidden_ids:
            return mask_id_number(value)
        if isinstance(value, str) and path in hidden_mobiles:
            return mask_mobile(value)
        return value

    result: dict[str, Any] = walk(dict(form), "")
    return result


CUSTOMS_CODE = re.compile(r"^[0-9A-Z]{10}$")


def import_problems(line: Mapping[str, Any]) -> tuple[FieldError, ...]:
    """What is wrong with an imported record's own fields (its form is checked by the form)."""
    problems = []
    for name in ("uscc", "enterprise_name", "customs_code"):
        if not isinstance(line.get(name), str) or not line[name].strip():
            problems.append(FieldError(path=name, message="is required"))
    if isinstance(line.get("uscc"), str):
        try:
            normalise_uscc(line["uscc"])
        except ValueError as exc:
            problems.append(FieldError(path="uscc", message=str(exc)))
    code = line.get("customs_code")
    if isinstance(code, str) and not CUSTOMS_CODE.fullmatch(code):
        problems.append(FieldError(path="customs_code", message="must be 10 letters or digits"))
    if not isinstance(line.get("form"), dict):
        problems.append(FieldError(path="form", message="must be an object of the form's fields"))
    unknown = set(line) - {"uscc", "enterprise_name", "customs_code", "form"}
    problems += [FieldError(path=name, message="unknown field") for name in sorted(unknown)]
    return tuple(problems)


def imported_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """An imported record's form, checked as the first filing it once was: the application type
    and the declaration are the registry's, not the record's."""
    return {
        "application_type": "file",
        "declaration": {"accepted": True, "signed_by": "national registry"},
        **form,
    }
