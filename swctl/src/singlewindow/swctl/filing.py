"""`swctl filing`: customs enterprise filing (海关企业备案) of the logged-in enterprise.

    swctl filing form [--json]                     # the form: every field, presence, rule
    swctl filing drafts save --file filing.json    # keep an unfinished form (any account)
    swctl filing drafts show
    swctl filing submit --file filing.json         # file / change / cancel; or resubmit
    swctl filing status                            # where the latest application stands
    swctl filing show                              # the record: customs code, validity, history
    swctl filing query                             # a card enterprise's existing record
    swctl filing import --file records.jsonl       # a platform administrator (staff session)

Like `staff`, this module imports only the standard library until a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel
    from singlewindow.swctl.client import Client


def _token() -> str:
    from singlewindow.swctl.mobile import session_token

    return session_token()


def _form_file(path: str) -> dict[str, Any]:
    from singlewindow.swctl.main import read_json_file

    return read_json_file(path)


async def form(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl filing form`."""
    from singlewindow.contracts import filing

    return await client.call(filing.FILING_FORM, {})


async def submit(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl filing submit --file FILE`."""
    from singlewindow.contracts import filing

    request: dict[str, object] = {"token": _token(), "form": _form_file(args.file)}
    return await client.call(filing.SUBMIT_FILING, request)


async def status(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl filing status`."""
    from singlewindow.contracts import filing

    return await client.call(filing.FILING_STATUS, {"token": _token()})


async def show(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl filing show`."""
    from singlewindow.contracts import filing

    return await client.call(filing.SHOW_RECORD, {"token": _token()})


async def save_draft(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl filing drafts save --file FILE`."""
    from singlewindow.contracts import filing

    request: dict[str, object] = {"token": _token(), "form": _form_file(args.file)}
    return await client.call(filing.SAVE_DRAFT, request)


async def show_draft(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl filing drafts show`."""
    from singlewindow.contracts import filing

    return await client.call(filing.SHOW_DRAFT, {"token": _token()})


IMPORT_BATCH_BYTES = 48 * 1024
"""Records go in requests of at most this many bytes (the platform takes 64 KiB at most)."""


def _jsonl(path: str) -> list[tuple[int, Any]]:
    """The numbered lines of a JSON Lines file (blank lines skipped); a line that is not JSON is
    kept as its error text, to be reported with the others."""
    import json
    import sys
    from pathlib import Path

    from singlewindow.swctl.errors import UsageError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    lines: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append((number, json.loads(line)))
        except ValueError as exc:
            lines.append((number, ValueError(f"not JSON: {exc}")))
    return lines


async def import_records(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    """`swctl filing import --file records.jsonl`: import in batches; a report per line."""
    import json

    from singlewindow.contracts import filing
    from singlewindow.swctl.staff import staff_token

    token = staff_token()
    outcomes: list[dict[str, Any]] = []
    batch: list[tuple[int, Any]] = []

    async def send() -> None:
        if not batch:
            return
        # Lines are renumbered by the service from first_line: send consecutive runs only.
        report = await client.call(
            filing.IMPORT_RECORDS,
            {"token": token, "records": [r for _, r in batch], "first_line": 1},
        )
        for (number, _), outcome in zip(batch, report.outcomes, strict=True):
            outcomes.append(outcome.model_dump(mode="json") | {"line": number})
        batch.clear()

    size = 0
    for number, record in _jsonl(args.file):
        if isinstance(record, ValueError) or not isinstance(record, dict):
            message = str(record) if isinstance(record, ValueError) else "not a JSON object"
            outcomes.append(
                {"line": number, "uscc": None, "outcome": "refused", "message": message}
            )
            continue
        length = len(json.dumps(record, ensure_ascii=False).encode())
        if batch and (size + length > IMPORT_BATCH_BYTES or len(batch) == 200):
            await send()
            size = 0
        batch.append((number, record))
        size += length
    await send()
    outcomes.sort(key=lambda o: int(o["line"]))
    counts = {k: sum(o["outcome"] == k for o in outcomes) for k in ("imported", "unchanged")}
    refused = sum(o["outcome"] == "refused" for o in outcomes)
    return {"outcomes": outcomes, **counts, "refused": refused}


def print_import(report: dict[str, Any], args: argparse.Namespace) -> None:
    """One line per record, then the counts."""
    for outcome in report["outcomes"]:
        detail = f": {outcome['message']}" if outcome.get("message") else ""
        print(f"line {outcome['line']}: {outcome['outcome']} {outcome.get('uscc') or ''}{detail}")
        for field in outcome.get("fields") or ():
            print(f"    {field['path']}: {field['message']}")
    print(
        f"{report['imported']} imported, {report['unchanged']} unchanged,"
        f" {report['refused']} refused"
    )


def print_form(shown: Any, args: argparse.Namespace) -> None:
    """The form as a portal lays it out: one line per field, then the conditions."""
    definition = shown.definition
    print(f"{definition['title']['zh']} / {definition['title']['en']} (v{shown.version})")
    print(f"source: {definition['source']}")
    rows = [("PRESENCE", "FIELD", "LABEL", "RULE")]
    for field in definition["fields"]:
        presence = field["presence"]
        if "applications" in field:
            presence += " (" + "/".join(field["applications"]) + ")"
        rule = field.get("rule", {})
        described = ", ".join(f"{key}={value}" for key, value in rule.items() if key != "message")
        label = f"{field['label']['zh']} {field['label']['en']}"
        rows.append((presence, field["path"], label, described))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]).rstrip())
    print("conditions:")
    for condition in definition.get("conditions", ()):
        print(f"  - {condition['message']['en']} ({condition['message']['zh']})")
    print(f"declaration: {definition['declaration_text']['zh']}")
    print("code lists: " + ", ".join(shown.code_lists) + " (`swctl filing form --json` lists them)")


def print_filing(view: Any, args: argparse.Namespace) -> None:
    """An application in a few lines, with what to do next."""
    print(f"filing {view.filing_id}: {view.application_type.value}, {view.state.value}")
    print(f"enterprise: {view.enterprise_name} ({view.uscc})")
    print(f"attempt {view.attempt}, submitted {view.submitted_at} by {view.applicant}")
    if view.reason:
        print(f"reason: {view.reason}")
    if view.customs_code:
        print(f"customs code: {view.customs_code}")
    if view.state.value == "returned":
        print("correct the form and submit it again: swctl filing submit --file FILE")


def print_record(record: Any, args: argparse.Namespace) -> None:
    """The record: customs code, status, validity, then the applications."""
    print(f"enterprise: {record.enterprise_name} ({record.uscc})")
    if record.status is None:
        print("not filed yet: swctl filing form, then swctl filing submit --file FILE")
    else:
        print(f"customs code: {record.customs_code}")
        print(f"status: {record.status.value} (unit type {record.unit_type}, from {record.source})")
        print(f"filed: {record.filed_at}")
        if record.valid_until:
            print(f"valid until: {record.valid_until}")
    if record.card_customs_code:
        print(f"customs code on the E-Port card: {record.card_customs_code}")
    if record.card_code_problem:
        print(f"warning: {record.card_code_problem}")
    for application in record.applications:
        print(
            f"  {application.submitted_at}  {application.filing_id}  "
            f"{application.application_type.value}  {application.state.value}"
            + (f"  {application.reason}" if application.reason else "")
        )


COMMANDS: dict[
    str, Callable[[argparse.Namespace, Client], Awaitable[BaseModel | dict[str, Any]]]
] = {
    "filing form": form,
    "filing submit": submit,
    "filing status": status,
    "filing show": show,
    "filing query": show,
    "filing import": import_records,
    "filing drafts save": save_draft,
    "filing drafts show": show_draft,
}
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    "filing form": print_form,
    "filing submit": print_filing,
    "filing status": print_filing,
    "filing show": print_record,
    "filing query": print_record,
    "filing import": print_import,
}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `filing` subcommands to swctl's parser."""
    command(group, "form", "filing form", "print the filing form: fields, presence, rules")
    sub = command(group, "submit", "filing submit", "submit (or resubmit) a filing application")
    sub.add_argument("--file", required=True, help="the filing form JSON file (- for stdin)")
    command(group, "status", "filing status", "show where the latest filing application stands")
    command(group, "show", "filing show", "show the filing record: customs code, history")
    command(
        group, "query", "filing query", "comprehensive query: a card enterprise's existing record"
    )
    sub = command(
        group, "import", "filing import", "import existing records (a platform administrator)"
    )
    sub.add_argument("--file", required=True, help="JSON Lines, one record a line (- for stdin)")
    drafts = group.add_parser(
        "drafts", help="unfinished filing forms", description="unfinished filing forms"
    ).add_subparsers(title="filing drafts commands")
    sub = command(drafts, "save", "filing drafts save", "keep an unfinished filing form")
    sub.add_argument("--file", required=True, help="the unfinished form JSON file (- for stdin)")
    command(drafts, "show", "filing drafts show", "show the saved draft")
