"""The filing service's handlers: ask accounts who calls, validate against the form, apply."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from singlewindow.contracts import accounts, review
from singlewindow.contracts import filing as contract
from singlewindow.contracts.accounts import (
    EnterpriseCaller,
    ResolveSession,
    ResolveStaffSession,
    StaffRole,
)
from singlewindow.contracts.errors import DomainError, ErrorCode, FieldError
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.filing import (
    ApplicationType,
    DraftView,
    FilingDecided,
    FilingState,
    FilingSubmitted,
    FilingView,
    FormDefinition,
    ImportOutcome,
    ImportRecords,
    ImportReport,
    RecordChanged,
    RecordStatus,
    RecordView,
    SaveDraft,
    ShowDraft,
    ShowFilingRecord,
    ShowFilingStatus,
    ShowForm,
    SubmitFiling,
)
from singlewindow.contracts.review import ReviewDecided, ReviewRequested
from singlewindow.filing.dependencies import Filing
from singlewindow.filing.domain import (
    KIND,
    OUTCOMES,
    card_code_problem,
    check_application,
    check_may_submit,
    code_prefix,
    customs_code,
    import_problems,
    imported_form,
    masked,
    new_filing_id,
    refuse_unfiled_parent,
)
from singlewindow.filing.repository import Filings
from singlewindow.runtime.db import IntegrityError
from singlewindow.runtime.routes import Routes
from sqlalchemy.ext.asyncio import AsyncConnection

IMPORT_OUTCOMES = ("imported", "unchanged", "refused")

routes = Routes[Filing](
    contract.SERVICE,
    asks=(accounts.RESOLVE_SESSION, accounts.RESOLVE_STAFF_SESSION),
    publishes=(review.REQUESTED,),
)


@routes.serve(contract.FILING_FORM)
async def show_form(request: ShowForm, deps: Filing) -> FormDefinition:
    """Show the filing form definition and its code lists, as a portal renders them."""
    form = deps.form
    return FormDefinition(
        form=form.name,
        version=form.version,
        definition=form.definition,
        code_lists=form.code_lists,
    )


@routes.serve(contract.SUBMIT_FILING)
async def submit_filing(request: SubmitFiling, deps: Filing) -> FilingView:
    """Submit the enterprise's filing application for review, or resubmit its returned one."""
    caller = await _caller(deps, request.token)
    check_may_submit(caller)
    problems = deps.form.problems(request.form)
    if problems:
        names = ", ".join(p.path for p in problems)
        raise DomainError(ErrorCode.INVALID, f"invalid fields: {names}", problems)
    form = request.form
    application_type = ApplicationType(form["application_type"])
    async with deps.service.db.reading() as connection:
        filings = Filings(connection, deps.service.clock)
        record = await filings.record(caller.uscc)
        parent_code = form.get("parent_unit", {}).get("customs_code")
        parent_filed = True
        if parent_code is not None and deps.form.is_branch(form.get("unit_type", "")):
            parent = await filings.record_by_code(parent_code)
            parent_filed = parent is not None and parent["status"] == RecordStatus.FILED.value
    check_application(caller, application_type, record)
    if not parent_filed:
        raise refuse_unfiled_parent(parent_code)
    try:
        async with deps.service.db.transaction() as connection:
            filings = Filings(connection, deps.service.clock)
            current = await filings.open_of(caller.uscc)
            if current is None:
                view = await filings.add(
                    new_filing_id(),
                    uscc=caller.uscc,
                    enterprise_name=caller.enterprise_name,
                    applicant=caller.account,
                    form=form,
                )
            elif current.state is FilingState.RETURNED:
                resubmitted = await filings.resubmit(
                    current.filing_id,
                    applicant=caller.account,
                    enterprise_name=caller.enterprise_name,
                    form=form,
                )
                assert resubmitted is not None  # the write transaction holds it
                view = resubmitted
            else:
                raise _open_already(caller.uscc, current)
            await filings.drop_draft(caller.uscc)
            await _announce(deps, connection, view, form)
    except IntegrityError as exc:  # another submission for the enterprise won the race
        raise DomainError(
            ErrorCode.CONFLICT,
            f"enterprise {caller.uscc} already has an open filing application",
        ) from exc
    return view


@routes.serve(contract.SAVE_DRAFT)
async def save_draft(request: SaveDraft, deps: Filing) -> DraftView:
    """Keep an unfinished filing form for the enterprise (any of its accounts may)."""
    caller = await _caller(deps, request.token)
    async with deps.service.db.transaction() as connection:
        return await Filings(connection, deps.service.clock).save_draft(
            caller.uscc, caller.account, request.form
        )


@routes.serve(contract.SHOW_DRAFT)
async def show_draft(request: ShowDraft, deps: Filing) -> DraftView:
    """Show the enterprise's saved draft filing form."""
    caller = await _caller(deps, request.token)
    async with deps.service.db.reading() as connection:
        draft = await Filings(connection, deps.service.clock).draft(caller.uscc)
    if draft is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"enterprise {caller.uscc} has no saved draft")
    return draft


@routes.serve(contract.FILING_STATUS)
async def filing_status(request: ShowFilingStatus, deps: Filing) -> FilingView:
    """Show where the enterprise's latest filing application stands, and any reason."""
    caller = await _caller(deps, request.token)
    async with deps.service.db.reading() as connection:
        history = await Filings(connection, deps.service.clock).history(caller.uscc)
    if not history:
        raise DomainError(
            ErrorCode.NOT_FOUND, f"enterprise {caller.uscc} has no filing application"
        )
    return history[0]


@routes.serve(contract.SHOW_RECORD)
async def show_record(request: ShowFilingRecord, deps: Filing) -> RecordView:
    """Show the enterprise's filing record: customs code, status, validity, applications."""
    caller = await _caller(deps, request.token)
    await expire_lapsed(deps)
    async with deps.service.db.reading() as connection:
        filings = Filings(connection, deps.service.clock)
        record = await filings.record(caller.uscc)
        history = await filings.history(caller.uscc)
    if record is None:
        return RecordView(
            uscc=caller.uscc,
            enterprise_name=caller.enterprise_name,
            customs_code=None,
            status=None,
            unit_type=None,
            filed_at=None,
            valid_until=None,
            source=None,
            form=None,
            applications=history,
            card_customs_code=caller.card_customs_code,
        )
    return RecordView(
        uscc=record["uscc"],
        enterprise_name=record["enterprise_name"],
        customs_code=record["customs_code"],
        status=RecordStatus(record["status"]),
        unit_type=record["unit_type"],
        filed_at=record["filed_at"],
        valid_until=record["valid_until"],
        source=record["source"],
        form={"uscc": record["uscc"], "enterprise_name": record["enterprise_name"]}
        | record["form"],
        applications=history,
        card_customs_code=caller.card_customs_code,
        card_code_problem=card_code_problem(caller, record),
    )


@routes.serve(contract.IMPORT_RECORDS)
async def import_records(request: ImportRecords, deps: Filing) -> ImportReport:
    """Import existing filing records (a platform administrator), idempotent by USCC."""
    staff = await deps.service.ask(
        accounts.RESOLVE_STAFF_SESSION,
        ResolveStaffSession(token=request.token),
        wait=deps.settings.accounts_timeout_seconds,
    )
    if staff.role is not StaffRole.PLATFORM_ADMIN:
        raise DomainError(ErrorCode.FORBIDDEN, "only a platform administrator imports records")
    outcomes = [
        await _import_one(deps, request.first_line + offset, line)
        for offset, line in enumerate(request.records)
    ]
    counts = {kind: sum(o.outcome == kind for o in outcomes) for kind in IMPORT_OUTCOMES}
    return ImportReport(outcomes=tuple(outcomes), **counts)


async def _import_one(deps: Filing, line: int, record: dict[str, Any]) -> ImportOutcome:
    uscc = record.get("uscc") if isinstance(record.get("uscc"), str) else None
    problems = import_problems(record)
    if not problems:
        form = record["form"]
        problems = tuple(
            FieldError(path=f"form.{p.path}", message=p.message)
            for p in deps.form.problems(imported_form(form))
        )
    if problems:
        names = ", ".join(p.path for p in problems)
        return ImportOutcome(
            line=line,
            uscc=uscc,
            outcome="refused",
            message=f"invalid fields: {names}",
            fields=problems,
        )
    assert uscc is not None
    code = record["customs_code"]
    try:
        async with deps.service.db.transaction() as connection:
            filings = Filings(connection, deps.service.clock)
            existing = await filings.record(uscc)
            if existing is not None:
                if existing["customs_code"] == code:
                    return ImportOutcome(line=line, uscc=uscc, outcome="unchanged")
                return ImportOutcome(
                    line=line,
                    uscc=uscc,
                    outcome="refused",
                    message=f"{uscc} holds customs code {existing['customs_code']} already",
                    fields=(FieldError(path="customs_code", message="differs from the record"),),
                )
            await filings.put_record(
                uscc=uscc,
                enterprise_name=record["enterprise_name"],
                customs_code=code,
                unit_type=record["form"].get("unit_type"),
                form=record["form"],
                source="import",
                valid_until=None,
            )
            if code[:6].isalnum() and code[6:].isdigit():
                await filings.reserve(code[:6], int(code[6:]))
    except IntegrityError:
        return ImportOutcome(
            line=line,
            uscc=uscc,
            outcome="refused",
            message=f"customs code {code} belongs to another enterprise",
            fields=(FieldError(path="customs_code", message="is another enterprise's"),),
        )
    return ImportOutcome(line=line, uscc=uscc, outcome="imported")


@routes.consume(contract.REVIEW_DECISIONS)
async def apply_review_decision(
    decided: ReviewDecided, event: CloudEvent, connection: AsyncConnection, deps: Filing
) -> None:
    """Record a reviewer's decision on a filing application and apply an approval to the
    record: a first filing gets its customs code, a change amends, a cancellation ends it."""
    if decided.kind != KIND:
        return
    filings = Filings(connection, deps.service.clock)
    view = await filings.decide(
        decided.reference, decided.attempt, OUTCOMES[decided.decision], decided.reason
    )
    if view is None:
        return  # a decision on an earlier attempt, or one already applied
    await deps.service.emit(
        connection,
        contract.DECIDED,
        FilingDecided(
            filing_id=view.filing_id,
            uscc=view.uscc,
            application_type=view.application_type,
            state=view.state,
            reason=view.reason,
        ),
        subject=view.uscc,
    )
    if view.state is not FilingState.APPROVED:
        return
    form = await filings.form_of(view.filing_id)
    assert form is not None
    if view.application_type is ApplicationType.FILE:
        code = customs_code(code_prefix(form), await filings.next_sequence(code_prefix(form)))
        days = deps.form.valid_days(form.get("unit_type", ""))
        valid_until = None if days is None else deps.service.clock.now() + timedelta(days=days)
        await filings.put_record(
            uscc=view.uscc,
            enterprise_name=view.enterprise_name,
            customs_code=code,
            unit_type=view.unit_type,
            form=form,
            source="filing",
            valid_until=valid_until,
        )
        await filings.set_code(view.filing_id, code)
        await _record_event(deps, filings, contract.FILED, view.uscc, view.filing_id)
    elif view.application_type is ApplicationType.CHANGE:
        if await filings.amend_record(
            view.uscc, enterprise_name=view.enterprise_name, unit_type=view.unit_type, form=form
        ):
            await _record_event(deps, filings, contract.CHANGED, view.uscc, view.filing_id)
    elif await filings.end_record(view.uscc, RecordStatus.CANCELLED):
        await _record_event(deps, filings, contract.CANCELLED, view.uscc, view.filing_id)


async def expire_lapsed(deps: Filing) -> int:
    """Mark expired every filed record past its validity (a temporary filing after its year),
    by the service's clock, announcing each; how many expired."""
    async with deps.service.db.reading() as connection:
        lapsed = await Filings(connection, deps.service.clock).lapsed(deps.service.clock.now())
    expired = 0
    for uscc in lapsed:
        async with deps.service.db.transaction() as connection:
            filings = Filings(connection, deps.service.clock)
            if await filings.end_record(uscc, RecordStatus.EXPIRED):
                await _record_event(deps, filings, contract.EXPIRED, uscc, None)
                expired += 1
    return expired


async def _record_event(
    deps: Filing, filings: Filings, spec: Any, uscc: str, filing_id: str | None
) -> None:
    record = await filings.record(uscc)
    assert record is not None
    await deps.service.emit(
        filings.connection,
        spec,
        RecordChanged(
            uscc=uscc,
            enterprise_name=record["enterprise_name"],
            customs_code=record["customs_code"],
            status=RecordStatus(record["status"]),
            unit_type=record["unit_type"],
            valid_until=record["valid_until"],
            filing_id=filing_id,
        ),
        subject=uscc,
    )


async def _caller(deps: Filing, token: str) -> EnterpriseCaller:
    return await deps.service.ask(
        accounts.RESOLVE_SESSION,
        ResolveSession(token=token),
        wait=deps.settings.accounts_timeout_seconds,
    )


def _open_already(uscc: str, current: FilingView) -> DomainError:
    return DomainError(
        ErrorCode.CONFLICT,
        f"enterprise {uscc} already has a filing application under review"
        f" ({current.filing_id}); wait for its decision",
    )


async def _announce(
    deps: Filing, connection: AsyncConnection, view: FilingView, form: dict[str, Any]
) -> None:
    await deps.service.emit(
        connection,
        contract.SUBMITTED,
        FilingSubmitted(
            filing_id=view.filing_id,
            uscc=view.uscc,
            enterprise_name=view.enterprise_name,
            application_type=view.application_type,
            unit_type=view.unit_type,
            attempt=view.attempt,
        ),
        subject=view.uscc,
    )
    details = {
        "application_type": view.application_type.value,
        "applicant": view.applicant,
        "form": masked(deps.form.definition, form),
    }
    await deps.service.emit(
        connection,
        review.REQUESTED,
        ReviewRequested(
            kind=KIND,
            reference=view.filing_id,
            attempt=view.attempt,
            uscc=view.uscc,
            title=view.enterprise_name,
            details=details,
        ),
        subject=view.uscc,
    )
