"""Filing's handlers called directly: who may file, what is refused and stored, how review's
decisions become records and customs codes (accounts answered by the test)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from singlewindow.contracts import accounts, review
from singlewindow.contracts import filing as contract
from singlewindow.contracts.accounts import (
    EnterpriseCaller,
    ResolveSession,
    ResolveStaffSession,
    Role,
    StaffCaller,
    StaffRole,
)
from singlewindow.contracts.card_gateway import OperatorLevel
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.events import CloudEvent
from singlewindow.contracts.filing import (
    FilingState,
    FilingView,
    ImportRecords,
    RecordStatus,
    SaveDraft,
    ShowDraft,
    ShowFilingRecord,
    ShowFilingStatus,
    SubmitFiling,
)
from singlewindow.contracts.review import Decision, ReviewDecided
from singlewindow.filing.dependencies import Filing
from singlewindow.filing.handlers import (
    expire_lapsed,
    filing_status,
    import_records,
    routes,
    save_draft,
    show_draft,
    show_record,
    submit_filing,
)
from singlewindow.filing.repository import metadata
from singlewindow.filing.settings import Settings
from singlewindow.runtime.clock import ManualClock

from tests.filing.test_form import example
from tests.support.handlers import LocalService, deliver, local_service, staged
from tests.support.identifiers import make_uscc

USCC = "91500000MA5U7X1C69"
OTHER_USCC = make_uscc()


@dataclass
class Filer:
    deps: Filing
    service: LocalService
    clock: ManualClock
    callers: dict[str, EnterpriseCaller] = field(default_factory=dict)

    def caller(
        self,
        token: str,
        *,
        uscc: str = USCC,
        role: Role = Role.ADMIN,
        level: OperatorLevel | None = None,
        via: str = "cardless",
        card_code: str | None = None,
    ) -> str:
        self.callers[token] = EnterpriseCaller(
            account=f"acct_{token}",
            role=role,
            uscc=uscc,
            enterprise_name=f"企业{token}",
            operator_level=level,
            registered_via=via,
            card_customs_code=card_code,
        )
        return token


@pytest.fixture
async def filer(tmp_path: Path) -> AsyncIterator[Filer]:
    clock = ManualClock()
    async with local_service("filing", metadata, tmp_path, clock=clock) as service:
        deps = Filing(service=service, settings=Settings())
        service.include(routes, deps)
        found = Filer(deps, service, clock)

        def resolve(request: ResolveSession) -> EnterpriseCaller:
            if request.token not in found.callers:
                raise DomainError(ErrorCode.UNAUTHENTICATED, "session has expired")
            return found.callers[request.token]

        service.answer(accounts.RESOLVE_SESSION, resolve)

        def resolve_staff(request: ResolveStaffSession) -> StaffCaller:
            role = {"chief": StaffRole.PLATFORM_ADMIN, "li": StaffRole.REVIEWER}[request.token]
            return StaffCaller(account=request.token, role=role)

        service.answer(accounts.RESOLVE_STAFF_SESSION, resolve_staff)
        yield found


async def submit(filer: Filer, token: str, **changes: Any) -> FilingView:
    return await submit_filing(SubmitFiling(token=token, form=example(**changes)), filer.deps)


async def refused(filer: Filer, token: str, **changes: Any) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await submit(filer, token, **changes)
    return raised.value


async def decide(
    filer: Filer, view: FilingView, decision: Decision, attempt: int | None = None
) -> None:
    data = ReviewDecided(
        task_id="task_abcdefgh",
        kind="filing",
        reference=view.filing_id,
        application_id=view.filing_id,
        attempt=attempt or view.attempt,
        uscc=view.uscc,
        decision=decision,
        reason=None if decision is Decision.APPROVE else "postal code is wrong",
        reviewer="li",
        decided_at=filer.clock.now(),
    )
    event = review.DECIDED.make(
        data, subject=view.uscc, source="urn:test:review", now=filer.clock.now()
    )
    delivery = await deliver(filer.service, routes, filer.deps, event)
    assert delivery.acked


async def record(filer: Filer, token: str) -> Any:
    return await show_record(ShowFilingRecord(token=token), filer.deps)


def of_type(events: list[CloudEvent], spec: Any) -> list[CloudEvent]:
    return [e for e in events if e.type == spec.type]


async def test_a_submission_is_stored_announced_and_sent_to_review(filer: Filer) -> None:
    view = await submit(filer, filer.caller("admin"))
    assert (view.state, view.application_type, view.applicant) == (
        FilingState.PENDING,
        "file",
        "acct_admin",
    )
    assert view.enterprise_name == "企业admin"
    events = await staged(filer.service)
    assert [e.type for e in events] == [contract.SUBMITTED.type, review.REQUESTED.type]
    requested = events[1].data
    assert (requested["kind"], requested["reference"], requested["attempt"]) == (
        "filing",
        view.filing_id,
        1,
    )
    assert "11010519491231002X" not in json.dumps(requested)
    assert "13800138000" not in json.dumps(requested)
    assert requested["details"]["form"]["customs_district"] == "8000"


async def test_a_data_entry_operator_saves_a_draft_but_cannot_submit(filer: Filer) -> None:
    token = filer.caller("entry", role=Role.OPERATOR, level=OperatorLevel.ENTRY)
    refusal = await refused(filer, token)
    assert refusal.code is ErrorCode.FORBIDDEN
    assert "data-entry operator may save it as a draft" in refusal.message
    saved = await save_draft(SaveDraft(token=token, form={"unit_type": "broker"}), filer.deps)
    assert saved.saved_by == "acct_entry"
    shown = await show_draft(ShowDraft(token=filer.caller("admin")), filer.deps)
    assert shown.form == {"unit_type": "broker"}
    assert await staged(filer.service) == []


async def test_a_declaration_level_operator_submits(filer: Filer) -> None:
    token = filer.caller("decl", role=Role.OPERATOR, level=OperatorLevel.DECLARATION)
    assert (await submit(filer, token)).state is FilingState.PENDING


async def test_an_invalid_form_names_every_field_and_stores_nothing(filer: Filer) -> None:
    refusal = await refused(filer, filer.caller("admin"), postal_code=None, unit_type="temporary")
    assert refusal.code is ErrorCode.INVALID
    assert {f.path for f in refusal.fields} == {"postal_code", "name_en", "address_en"}
    assert await staged(filer.service) == []
    with pytest.raises(DomainError) as raised:
        await filing_status(ShowFilingStatus(token="admin"), filer.deps)
    assert raised.value.code is ErrorCode.NOT_FOUND


async def test_one_open_filing_per_enterprise(filer: Filer) -> None:
    await submit(filer, filer.caller("admin"))
    refusal = await refused(filer, "admin")
    assert refusal.code is ErrorCode.CONFLICT
    assert "already has a filing application under review" in refusal.message


async def test_approval_assigns_the_customs_code_by_prefix_and_sequence(filer: Filer) -> None:
    first = await submit(filer, filer.caller("a"))
    second = await submit(filer, filer.caller("b", uscc=OTHER_USCC))
    await decide(filer, first, Decision.APPROVE)
    await decide(filer, second, Decision.APPROVE)
    a, b = await record(filer, "a"), await record(filer, "b")
    # division 500000 -> 5000, economic zone 9, economic type 6, then the sequence
    assert (a.customs_code, b.customs_code) == ("5000960001", "5000960002")
    assert a.status is RecordStatus.FILED
    assert a.valid_until is None
    assert a.form["uscc"] == USCC
    assert a.applications[0].customs_code == "5000960001"
    filed = of_type(await staged(filer.service), contract.FILED)
    assert [e.data["customs_code"] for e in filed] == ["5000960001", "5000960002"]
    assert [e.subject for e in filed] == [USCC, OTHER_USCC]


async def test_two_approvals_at_once_in_one_prefix_get_distinct_codes(filer: Filer) -> None:
    views = [await submit(filer, filer.caller(f"e{i}", uscc=f"U{i}")) for i in range(4)]
    await asyncio.gather(*(decide(filer, view, Decision.APPROVE) for view in views))
    codes = {(await record(filer, f"e{i}")).customs_code for i in range(4)}
    assert codes == {f"500096000{n}" for n in range(1, 5)}


async def test_a_returned_filing_is_corrected_and_resubmitted(filer: Filer) -> None:
    view = await submit(filer, filer.caller("admin"))
    await decide(filer, view, Decision.RETURN)
    status = await filing_status(ShowFilingStatus(token="admin"), filer.deps)
    assert (status.state, status.reason) == (FilingState.RETURNED, "postal code is wrong")
    again = await submit(filer, "admin", postal_code="400010")
    assert (again.filing_id, again.attempt, again.state) == (view.filing_id, 2, FilingState.PENDING)
    await decide(filer, view, Decision.APPROVE, attempt=1)  # a stale decision changes nothing
    assert (await filing_status(ShowFilingStatus(token="admin"), filer.deps)).attempt == 2
    await decide(filer, again, Decision.APPROVE)
    assert (await record(filer, "admin")).form["postal_code"] == "400010"


async def test_a_rejected_filing_leaves_no_record(filer: Filer) -> None:
    view = await submit(filer, filer.caller("admin"))
    await decide(filer, view, Decision.REJECT)
    shown = await record(filer, "admin")
    assert (shown.customs_code, shown.status) == (None, None)
    assert shown.applications[0].state is FilingState.REJECTED


async def test_a_branch_names_a_filed_parent(filer: Filer) -> None:
    parent = {"customs_code": "5000960001", "name": "重庆某某贸易有限公司"}
    branch = filer.caller("branch", uscc=OTHER_USCC)
    refusal = await refused(filer, branch, unit_type="consignee_branch", parent_unit=parent)
    assert [f.path for f in refusal.fields] == ["parent_unit.customs_code"]
    await decide(filer, await submit(filer, filer.caller("admin")), Decision.APPROVE)
    view = await submit(filer, branch, unit_type="consignee_branch", parent_unit=parent)
    assert view.unit_type == "consignee_branch"


async def test_a_change_amends_and_a_cancellation_ends_the_record(filer: Filer) -> None:
    token = filer.caller("admin")
    refusal = await refused(filer, token, application_type="change")
    assert "no filed record to change" in refusal.message
    await decide(filer, await submit(filer, token), Decision.APPROVE)
    assert "filed already" in (await refused(filer, token)).message
    change = await submit(filer, token, application_type="change", address="重庆市渝中区1号")
    await decide(filer, change, Decision.APPROVE)
    changed = await record(filer, token)
    assert (changed.form["address"], changed.customs_code) == ("重庆市渝中区1号", "5000960001")
    cancel = await submit_filing(
        SubmitFiling(
            token=token,
            form={
                "application_type": "cancel",
                "cancel_reason": "业务终止",
                "declaration": {"accepted": True, "signed_by": "张三"},
            },
        ),
        filer.deps,
    )
    await decide(filer, cancel, Decision.APPROVE)
    assert (await record(filer, token)).status is RecordStatus.CANCELLED
    events = await staged(filer.service)
    assert len(of_type(events, contract.CHANGED)) == len(of_type(events, contract.CANCELLED)) == 1
    assert len(of_type(events, contract.DECIDED)) == 3


async def test_a_temporary_filing_expires_after_a_year(filer: Filer) -> None:
    token = filer.caller("admin")
    view = await submit(filer, token, unit_type="temporary", name_en=None, address_en=None)
    await decide(filer, view, Decision.APPROVE)
    filed = await record(filer, token)
    assert filed.valid_until == filer.clock.now() + timedelta(days=365)
    filer.clock.advance(timedelta(days=364))
    assert await expire_lapsed(filer.deps) == 0
    filer.clock.advance(timedelta(days=1))
    assert (await record(filer, token)).status is RecordStatus.EXPIRED
    [expired] = of_type(await staged(filer.service), contract.EXPIRED)
    assert expired.data["customs_code"] == filed.customs_code


async def test_a_card_enterprise_files_no_first_filing(filer: Filer) -> None:
    refusal = await refused(filer, filer.caller("card", via="card"))
    assert refusal.code is ErrorCode.CONFLICT
    assert "registered by card was filed before" in refusal.message


def imported(uscc: str = USCC, code: str = "5000960042", **form: Any) -> dict[str, Any]:
    content = example(**form)
    del content["application_type"], content["declaration"]
    return {
        "uscc": uscc,
        "enterprise_name": "重庆某某贸易有限公司",
        "customs_code": code,
        "form": content,
    }


async def test_an_import_reports_each_line_and_is_idempotent_by_uscc(filer: Filer) -> None:
    lines = (
        imported(),
        imported(OTHER_USCC, code="5000960042"),
        imported("91500000MA5U7X1C6X"),
        imported(OTHER_USCC, code="5000960043", postal_code=None),
    )
    report = await import_records(ImportRecords(token="chief", records=lines), filer.deps)
    assert [(o.line, o.outcome) for o in report.outcomes] == [
        (1, "imported"),
        (2, "refused"),
        (3, "refused"),
        (4, "refused"),
    ]
    assert "belongs to another enterprise" in (report.outcomes[1].message or "")
    assert [f.path for f in report.outcomes[2].fields] == ["uscc"]
    assert [f.path for f in report.outcomes[3].fields] == ["form.postal_code"]
    again = await import_records(ImportRecords(token="chief", records=lines[:1]), filer.deps)
    assert (again.unchanged, again.imported) == (1, 0)
    with pytest.raises(DomainError) as raised:
        await import_records(ImportRecords(token="li", records=lines[:1]), filer.deps)
    assert raised.value.code is ErrorCode.FORBIDDEN


async def test_a_card_enterprise_queries_its_imported_record_and_changes_it(
    filer: Filer,
) -> None:
    await import_records(ImportRecords(token="chief", records=(imported(),)), filer.deps)
    token = filer.caller("card", via="card", card_code="5000960042")
    shown = await record(filer, token)
    assert (shown.customs_code, shown.source, shown.status) == (
        "5000960042",
        "import",
        RecordStatus.FILED,
    )
    assert (shown.card_customs_code, shown.card_code_problem) == ("5000960042", None)
    assert "filed already" in (await refused(filer, token)).message
    change = await submit(filer, token, application_type="change", postal_code="400010")
    await decide(filer, change, Decision.APPROVE)
    assert (await record(filer, token)).form["postal_code"] == "400010"
    # The imported code's sequence is never given again in its prefix.
    first = await submit(filer, filer.caller("new", uscc=OTHER_USCC))
    await decide(filer, first, Decision.APPROVE)
    assert (await record(filer, "new")).customs_code == "5000960043"


async def test_a_card_whose_customs_code_differs_from_the_imported_record_is_flagged_and_refused(
    filer: Filer,
) -> None:
    await import_records(ImportRecords(token="chief", records=(imported(),)), filer.deps)
    token = filer.caller("card", via="card", card_code="5000960099")
    shown = await record(filer, token)
    assert (shown.customs_code, shown.card_customs_code) == ("5000960042", "5000960099")
    assert shown.card_code_problem == (
        f"the E-Port card of enterprise {USCC} carries customs code 5000960099, but its filing"
        " record has customs code 5000960042"
    )
    change = await refused(filer, token, application_type="change", postal_code="400010")
    assert change.code is ErrorCode.CONFLICT
    assert "no change is taken until customs corrects one of them" in change.message
    assert [f.path for f in change.fields] == ["customs_code"]
    cancellation = {
        "application_type": "cancel",
        "cancel_reason": "业务终止",
        "declaration": {"accepted": True, "signed_by": "张三"},
    }
    with pytest.raises(DomainError) as cancel:
        await submit_filing(SubmitFiling(token=token, form=cancellation), filer.deps)
    assert "carries customs code 5000960099" in cancel.value.message
    with pytest.raises(DomainError):  # nothing was stored
        await filing_status(ShowFilingStatus(token=token), filer.deps)
    # A card without a customs code has nothing to disagree with.
    plain = filer.caller("plain", via="card")
    assert (await record(filer, plain)).card_code_problem is None
