"""`swctl filing`: customs enterprise filing (海关企业备案) of the logged-in enterprise.

    swctl filing form [--json]                     # the form: every field, presence, rule
    swctl filing drafts save --file filing.json    # keep an unfinished form (any account)
    swctl filing drafts show
    swctl filing submit --file filing.json         # file / change / cancel; or resubmit
    swctl filing status                            # where the latest application stands
    swctl filing show                              # the record: customs code, validity, history

Like `staff`, this module imports only the standard library until a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
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

    request = {"token": _token(), "form": _form_file(args.file)}
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

    request = {"token": _token(), "form": _form_file(args.file)}
    return await client.call(filing.SAVE_DRAFT, request)


async def show_draft(args: argparse.Namespace, client: Client) -> BaseModel:
    """`swctl filing drafts show`."""
    from singlewindow.contracts import filing

    return await client.call(filing.SHOW_DRAFT, {"token": _token()})


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
    for application in record.applications:
        print(
            f"  {application.submitted_at}  {application.filing_id}  "
            f"{application.application_type.value}  {application.state.value}"
            + (f"  {application.reason}" if application.reason else "")
        )


COMMANDS = {
    "filing form": form,
    "filing submit": submit,
    "filing status": status,
    "filing show": show,
    "filing drafts save": save_draft,
    "filing drafts show": show_draft,
}
PLAIN: dict[str, Callable[[Any, argparse.Namespace], None]] = {
    "filing form": print_form,
    "filing submit": print_filing,
    "filing status": print_filing,
    "filing show": print_record,
}


def register(group: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `filing` subcommands to swctl's parser."""
    command(group, "form", "filing form", "print the filing form: fields, presence, rules")
    sub = command(group, "submit", "filing submit", "submit (or resubmit) a filing application")
    sub.add_argument("--file", required=True, help="the filing form JSON file (- for stdin)")
    command(group, "status", "filing status", "show where the latest filing application stands")
    command(group, "show", "filing show", "show the filing record: customs code, history")
    drafts = group.add_parser(
        "drafts", help="unfinished filing forms", description="unfinished filing forms"
    ).add_subparsers(title="filing drafts commands")
    sub = command(drafts, "save", "filing drafts save", "keep an unfinished filing form")
    sub.add_argument("--file", required=True, help="the unfinished form JSON file (- for stdin)")
    command(drafts, "show", "filing drafts show", "show the saved draft")
