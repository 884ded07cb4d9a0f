"""The filing form as data: its definition file, its code lists, and the JSON Schema made of them.

`customs-filing-v1.json` lists every field of the 《报关单位备案信息表》 with its path, labels,
presence (required, optional or system-filled), type and rule, and the conditions between fields;
`codes/*.json` are the code lists, each naming its source. `Form.load()` reads them and builds a
JSON Schema (Draft 2020-12) from them; `Form.problems` validates a filing against it with
`jsonschema` and names every offending field by its path. Nothing here knows a field by name:
change the file, and validation follows.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from singlewindow.contracts.errors import FieldError
from singlewindow.contracts.identifiers import (
    normalise_division,
    normalise_mobile,
    normalise_resident_id,
)

if TYPE_CHECKING:
    from jsonschema import FormatChecker
    from jsonschema.exceptions import ValidationError

JSON = dict[str, Any]
MESSAGE = "x-message"
"""Where the schema keeps the plain words a refusal of that part says (jsonschema ignores it)."""
FORMS = Path(str(resources.files(__package__)))
CURRENT = FORMS / "customs-filing-v1.json"
OTHER_ID = "^[A-Z0-9]{5,20}$"
"""A document other than a resident ID: 5-20 capital letters or digits."""


def _checks(function: Any) -> Any:
    def check(value: object) -> bool:
        if not isinstance(value, str):
            return True
        try:
            function(value)
        except ValueError:
            return False
        return True

    return check


@functools.cache
def _formats() -> FormatChecker:
    """The formats the schema names, checked by the platform's own rules.

    jsonschema (with referencing, rpds and its format libraries, some 3 MiB) is imported on the
    first filing checked, not by an idle service.
    """
    from jsonschema import FormatChecker

    formats = FormatChecker()
    formats.checks("division")(_checks(normalise_division))
    formats.checks("mobile-cn")(_checks(normalise_mobile))
    formats.checks("resident-id")(_checks(normalise_resident_id))
    formats.checks("email")(lambda value: not isinstance(value, str) or _is_email(value))
    return formats


FORMAT_WORDS = {
    "division": "is not an administrative division code in use (6 digits, GB/T 2260)",
    "mobile-cn": "is not a mainland China mobile number",
    "resident-id": "is not a valid resident ID number (18 characters, check digit)",
    "email": "is not an e-mail address",
}


def _is_email(value: str) -> bool:
    name, at, domain = value.partition("@")
    return bool(name and at and "." in domain and " " not in value)


@dataclass(frozen=True)
class Form:
    """A form definition, its code lists and the JSON Schema built from them."""

    definition: JSON
    code_lists: dict[str, JSON]
    schema: JSON

    @classmethod
    def load(cls, path: Path = CURRENT) -> Form:
        """Read a form definition and the code lists it names (paths relative to it)."""
        definition = json.loads(path.read_text(encoding="utf-8"))
        code_lists = {
            name: json.loads((path.parent / file).read_text(encoding="utf-8"))
            for name, file in definition["code_lists"].items()
        }
        return cls(definition, code_lists, schema_of(definition, code_lists))

    @property
    def name(self) -> str:
        """The form's name."""
        return str(self.definition["form"])

    @property
    def version(self) -> int:
        """The form's version."""
        return int(self.definition["version"])

    def problems(self, data: JSON) -> tuple[FieldError, ...]:
        """Every field of `data` the form refuses, each named by its path, in path order."""
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(self.schema, format_checker=_formats())
        found: dict[str, FieldError] = {}
        for error in _field_errors(validator.iter_errors(self._with_groups(data))):
            found.setdefault(error.path, error)
        return tuple(found[path] for path in sorted(found))

    def _with_groups(self, data: JSON) -> JSON:
        """`data` with each missing group of fields as an empty one, so that a missing group's
        required fields are each named, not the group alone."""
        if not isinstance(data, dict):
            return data
        filled: JSON = json.loads(json.dumps(data))
        for field in self.definition["fields"]:
            *groups, _ = _segments(field["path"])
            node = filled
            for group in groups:
                if group.endswith("[]") or not isinstance(node, dict):
                    break
                node = node.setdefault(group, {})
        return filled

    def code(self, list_name: str, code: str) -> JSON | None:
        """A code list's entry, if the code is on it."""
        return next((c for c in self.code_lists[list_name]["codes"] if c["code"] == code), None)

    def valid_days(self, unit_type: str) -> int | None:
        """How long a filing of `unit_type` is valid (a temporary one: a year), or None."""
        entry = self.code("unit-types", unit_type)
        return None if entry is None else entry.get("valid_days")

    def is_branch(self, unit_type: str) -> bool:
        """Whether `unit_type` is a branch, which names its filed parent unit."""
        entry = self.code("unit-types", unit_type)
        return bool(entry and entry.get("branch"))


def schema_of(definition: JSON, code_lists: dict[str, JSON]) -> JSON:
    """The JSON Schema (Draft 2020-12) of a form definition: an object per group of paths,
    unknown fields refused, system fields refused (the service fills them), the required fields
    of every application type, and each condition as an `if`/`then`."""
    root = _object()
    kinds = list(definition["applications"])
    required_for: dict[str, list[str]] = {kind: [] for kind in kinds}
    for field in definition["fields"]:
        path = _segments(field["path"])
        parent = _node(root, path[:-1])
        name = path[-1].removesuffix("[]")
        if field["presence"] == "system":
            parent["properties"][name] = {
                "not": {},
                MESSAGE: f"is filled by the system ({field.get('source', 'the service')}); "
                "leave it out",
            }
            continue
        parent["properties"].setdefault(name, {}).update(_field_schema(field, code_lists))
        if field["presence"] == "required":
            if "applications" not in field or "[]" in field["path"]:
                parent.setdefault("required", []).append(name)
            else:
                for kind in field["applications"]:
                    required_for[kind].append(field["path"])
    conditions: list[JSON] = []
    for kind, paths in required_for.items():
        if paths:
            conditions.append(
                {
                    "if": _when({"application_type": [kind]}),
                    "then": _requiring(paths, "is required"),
                }
            )
    for condition in definition.get("conditions", ()):
        message = condition["message"]["en"]
        then: JSON = {}
        if "require" in condition:
            then = _merge(then, _requiring(condition["require"], f"is required: {message}"))
        if "forbid" in condition:
            then = _merge(then, _forbidding(condition["forbid"], f"must be left out: {message}"))
        conditions.append({"if": _when(condition["when"]), "then": then})
    root["allOf"] = conditions
    with_id_documents(root, definition)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:singlewindow:form:{definition['form']}.v{definition['version']}",
        "title": definition["title"]["en"],
        **root,
    }


def _object() -> JSON:
    return {"type": "object", "properties": {}, "additionalProperties": False}


def _segments(path: str) -> list[str]:
    return path.split(".")


def _node(root: JSON, segments: Iterable[str]) -> JSON:
    """The object schema at `segments` (`group[]` is an array of such objects), made as needed."""
    node = root
    for segment in segments:
        name = segment.removesuffix("[]")
        child = node["properties"].setdefault(name, {})
        if segment.endswith("[]"):
            child.setdefault("type", "array")
            items = child.setdefault("items", _object())
            node = items
        else:
            child.update({k: v for k, v in _object().items() if k not in child})
            node = child
    return node


def _field_schema(field: JSON, code_lists: dict[str, JSON]) -> JSON:
    rule: JSON = field.get("rule", {})
    kind = field["type"]
    schema: JSON
    if kind == "group":
        schema = {"type": "array"} if field.get("repeat") else {"type": "object"}
        if "max_items" in rule:
            schema["maxItems"] = rule["max_items"]
    elif kind == "boolean":
        schema = {"type": "boolean"}
    else:
        schema = {"type": "string", "minLength": 1}
        if kind == "date":
            schema["format"] = "date"
    if "max_length" in rule:
        schema["maxLength"] = rule["max_length"]
    if "pattern" in rule:
        schema["pattern"] = rule["pattern"]
    if "format" in rule:
        schema["format"] = rule["format"]
    if "enum" in rule:
        schema["enum"] = rule["enum"]
    if "const" in rule:
        schema["const"] = rule["const"]
    if "code_list" in rule:
        codes = code_lists[rule["code_list"]]["codes"]
        schema["enum"] = [c["code"] for c in codes]
        schema[MESSAGE] = f"must be a code of the list {rule['code_list']}: " + ", ".join(
            c["code"] for c in codes
        )
    if "id_document" in rule:
        # Checked by the document type beside it: the `allOf` of the enclosing object below.
        schema["maxLength"] = 40
    if "message" in rule:
        schema[MESSAGE] = rule["message"]
    return schema


def _when(when: JSON) -> JSON:
    return {
        "properties": {name: {"enum": values} for name, values in when.items()},
        "required": list(when),
    }


def _nested(path: str, leaf: JSON) -> JSON:
    *groups, name = _segments(path)
    schema: JSON = {"properties": {name: leaf}}
    for group in reversed(groups):
        schema = {"properties": {group: schema}}
    return schema


def _requiring(paths: Iterable[str], message: str) -> JSON:
    """A schema requiring every path (and the groups on the way), saying `message` if missing."""
    schema: JSON = {}
    for path in paths:
        *groups, name = _segments(path)
        part: JSON = {"required": [name], MESSAGE: message}
        for group in reversed(groups):
            part = {"required": [group], MESSAGE: message, "properties": {group: part}}
        schema = _merge(schema, part)
    return schema


def _forbidding(paths: Iterable[str], message: str) -> JSON:
    schema: JSON = {}
    for path in paths:
        schema = _merge(schema, _nested(path, {"not": {}, MESSAGE: message}))
    return schema


def _merge(a: JSON, b: JSON) -> JSON:
    merged = dict(a)
    for key, value in b.items():
        if key == "required":
            merged[key] = [
                *merged.get(key, []),
                *(v for v in value if v not in merged.get(key, [])),
            ]
        elif key == "properties":
            properties = dict(merged.get(key, {}))
            for name, schema in value.items():
                properties[name] = _merge(properties.get(name, {}), schema)
            merged[key] = properties
        else:
            merged[key] = value
    return merged


def with_id_documents(schema: JSON, definition: JSON) -> JSON:
    """Add, for every `id_document` rule, the check of the ID number by its document type."""
    for field in definition["fields"]:
        target = field.get("rule", {}).get("id_document")
        if target is None:
            continue
        path = _segments(field["path"])
        parent = _node(schema, path[:-1])
        name = path[-1]
        parent.setdefault("allOf", []).append(
            {
                "if": {"properties": {target: {"const": "resident_id"}}, "required": [target]},
                "then": {"properties": {name: {"format": "resident-id"}}},
                "else": {
                    "properties": {
                        name: {
                            "pattern": OTHER_ID,
                            MESSAGE: "must be 5-20 capital letters or digits",
                        }
                    }
                },
            }
        )
    return schema


def _path(error: ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path)


def _field_errors(errors: Iterable[ValidationError]) -> Iterator[FieldError]:
    for error in errors:
        if error.validator in {"allOf", "anyOf", "if", "then", "else"} and error.context:
            yield from _field_errors(error.context)
            continue
        yield from _described(error)


def _described(error: ValidationError) -> Iterator[FieldError]:
    here = _path(error)
    schema = error.schema if isinstance(error.schema, dict) else {}
    said = schema.get(MESSAGE)

    def at(name: str) -> str:
        return f"{here}.{name}" if here else name

    instance = error.instance
    required = error.validator_value
    if error.validator == "required" and isinstance(instance, dict) and isinstance(required, list):
        for name in required:
            if name not in instance:
                yield FieldError(path=at(name), message=said or "is required")
        return
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties", {}))
        for name in instance:
            if name not in known:
                yield FieldError(path=at(name), message="unknown field")
        return
    yield FieldError(path=here or "(form)", message=said or _words(error))


def _words(error: ValidationError) -> str:
    """A refusal in plain words; never the offending value (it may be an ID number)."""
    value = error.validator_value
    if error.validator == "enum" and isinstance(value, list):
        return "must be one of: " + ", ".join(map(str, value))
    words = {
        "type": f"must be a {value}",
        "minLength": "must not be empty",
        "maxLength": f"must be at most {value} characters",
        "maxItems": f"must have at most {value} entries",
        "const": f"must be {json.dumps(value)}",
        "pattern": "is not in the expected form",
        "format": FORMAT_WORDS.get(str(value), "is not in the expected form"),
        "not": "is not allowed here",
    }
    return words.get(str(error.validator), "is invalid")


def today(moment: date) -> str:
    """A system-filled date, as the form shows it."""
    return moment.isoformat()
