"""Contracts of the filing service: customs enterprise filing (海关企业备案) and filed records.

A filing application (`file` 备案, `change` 变更, `cancel` 注销) carries the fields of the
《报关单位备案信息表》 as a JSON object; the filing service validates it against its versioned form
definition (`FILING_FORM` shows it), fills the system fields itself, and asks review for a
decision. An approved first filing assigns the enterprise's 10-character customs code.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from singlewindow.contracts import review
from singlewindow.contracts.endpoints import Audience, Endpoint, Subscription
from singlewindow.contracts.errors import FieldError
from singlewindow.contracts.events import DAY, MIB, Discard, EventData, EventSpec, StreamSpec
from singlewindow.contracts.wire import AuthenticatedRequest, Request

SERVICE = "filing"
QUEUE = "filing"
STREAM = StreamSpec(
    name="SW_FILING",
    subjects=("sw.events.filing.>",),
    description=(
        "Customs enterprise filing: applications submitted and decided, customs codes assigned,"
        " records changed, cancelled and expired. Kept 365 days; a full stream refuses new events"
        " rather than dropping old ones, since customs systems file from them"
    ),
    max_age_seconds=365 * DAY,
    max_bytes=512 * MIB,
    discard=Discard.NEW,
)

FilingId = Annotated[str, Field(strict=True, pattern=r"^fil_[A-Za-z0-9_-]{8,40}$")]
FormData = Annotated[
    dict[str, Any],
    Field(description="The form's fields by path, as `FILING_FORM` defines them"),
]


class ApplicationType(StrEnum):
    """What a filing application asks for."""

    FILE = "file"
    """备案: a first filing; approval assigns the customs code."""
    CHANGE = "change"
    """变更: amend a filed record."""
    CANCEL = "cancel"
    """注销: cancel a filed record."""


class FilingState(StrEnum):
    """Where a filing application stands."""

    PENDING = "pending"
    RETURNED = "returned"
    APPROVED = "approved"
    REJECTED = "rejected"


class RecordStatus(StrEnum):
    """Where an enterprise's filed record stands."""

    FILED = "filed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    """A temporary filing past its year of validity."""


class ShowForm(Request):
    """Show the filing form definition: every field, its labels, presence, type and rule."""


class FormDefinition(BaseModel):
    """The versioned form definition and the code lists it names (what a portal renders)."""

    model_config = ConfigDict(frozen=True)

    form: str
    version: int
    definition: dict[str, Any]
    code_lists: dict[str, Any]


class SubmitFiling(AuthenticatedRequest):
    """Submit a filing application for the caller's enterprise (or resubmit a returned one)."""

    form: FormData


class SaveDraft(AuthenticatedRequest):
    """Keep an unfinished filing form for the caller's enterprise (not validated, not reviewed)."""

    form: FormData


class ShowDraft(AuthenticatedRequest):
    """Show the enterprise's saved draft filing form."""


class ShowFilingStatus(AuthenticatedRequest):
    """Show the enterprise's latest filing application: where it stands, and any reason."""


class ShowFilingRecord(AuthenticatedRequest):
    """Show the enterprise's filing record: customs code, status, validity, applications."""


class DraftView(BaseModel):
    """A saved draft."""

    model_config = ConfigDict(frozen=True)

    uscc: str
    form: dict[str, Any]
    saved_by: str
    saved_at: datetime


class FilingView(BaseModel):
    """A filing application as its enterprise sees it."""

    model_config = ConfigDict(frozen=True)

    filing_id: str
    uscc: str
    enterprise_name: str
    application_type: ApplicationType
    unit_type: str | None
    state: FilingState
    reason: str | None
    attempt: int
    applicant: str
    submitted_at: datetime
    decided_at: datetime | None
    customs_code: str | None = None
    """The code the approval of a first filing assigned."""


class RecordView(BaseModel):
    """An enterprise's filing record."""

    model_config = ConfigDict(frozen=True)

    uscc: str
    enterprise_name: str
    customs_code: str | None
    status: RecordStatus | None
    """None while the enterprise has no record yet."""
    unit_type: str | None
    filed_at: datetime | None
    valid_until: datetime | None
    """Set for a temporary filing (one year)."""
    source: str | None
    """`filing` (approved here) or `import` (an existing record from the national registry)."""
    form: dict[str, Any] | None
    applications: tuple[FilingView, ...]
    card_customs_code: str | None = None
    """The customs code the enterprise's E-Port card carries (an enterprise registered by card
    whose card has one)."""
    card_code_problem: str | None = None
    """Set when the card's customs code and the record's differ, in plain words: a change or a
    cancellation is refused until customs corrects one of them."""


class FilingSubmitted(EventData):
    """A filing application was submitted (or corrected and resubmitted) for review."""

    filing_id: str
    uscc: str
    enterprise_name: str
    application_type: ApplicationType
    unit_type: str | None
    attempt: int


class FilingDecided(EventData):
    """A reviewer decided a filing application."""

    filing_id: str
    uscc: str
    application_type: ApplicationType
    state: FilingState
    reason: str | None


class RecordChanged(EventData):
    """An enterprise's filing record was created, amended, cancelled or expired."""

    uscc: str
    enterprise_name: str
    customs_code: str | None
    status: RecordStatus
    unit_type: str | None
    valid_until: datetime | None
    filing_id: str | None


class ImportRecords(AuthenticatedRequest):
    """Import existing filing records (the national registry's), idempotent by USCC.

    Each record is an object with `uscc`, `enterprise_name`, `customs_code` and `form` (the
    form's fields, as a first filing has them); a platform administrator imports them. Each is
    checked on its own: the reply says, line by line, what was imported and what was refused.
    """

    records: Annotated[tuple[dict[str, Any], ...], Field(min_length=1, max_length=200)]
    first_line: Annotated[int, Field(strict=True, ge=1)] = 1
    """The line number of the first record, for the report."""


class ImportOutcome(BaseModel):
    """What became of one imported record."""

    model_config = ConfigDict(frozen=True)

    line: int
    uscc: str | None
    outcome: str
    """`imported`, `unchanged` (the same record was imported before) or `refused`."""
    message: str | None = None
    fields: tuple[FieldError, ...] = ()


class ImportReport(BaseModel):
    """The outcome of every record of an import, and the counts."""

    model_config = ConfigDict(frozen=True)

    outcomes: tuple[ImportOutcome, ...]
    imported: int
    unchanged: int
    refused: int


SUBMITTED = EventSpec(SERVICE, "submitted", 1, FilingSubmitted)
DECIDED = EventSpec(SERVICE, "decided", 1, FilingDecided)
FILED = EventSpec(SERVICE, "filed", 1, RecordChanged)
"""A first filing was approved: the record exists and carries its customs code."""
CHANGED = EventSpec(SERVICE, "changed", 1, RecordChanged)
CANCELLED = EventSpec(SERVICE, "cancelled", 1, RecordChanged)
EXPIRED = EventSpec(SERVICE, "expired", 1, RecordChanged)


FILING_FORM = Endpoint(SERVICE, "form.show", ShowForm, FormDefinition, Audience.PUBLIC)
SUBMIT_FILING = Endpoint(
    SERVICE, "submit", SubmitFiling, FilingView, Audience.SESSION, changes_state=True
)
SAVE_DRAFT = Endpoint(
    SERVICE, "drafts.save", SaveDraft, DraftView, Audience.SESSION, changes_state=True
)
SHOW_DRAFT = Endpoint(SERVICE, "drafts.show", ShowDraft, DraftView, Audience.SESSION)
FILING_STATUS = Endpoint(SERVICE, "status", ShowFilingStatus, FilingView, Audience.SESSION)
SHOW_RECORD = Endpoint(SERVICE, "record.show", ShowFilingRecord, RecordView, Audience.SESSION)

IMPORT_RECORDS = Endpoint(
    SERVICE,
    "records.import",
    ImportRecords,
    ImportReport,
    Audience.BACK_OFFICE,
    changes_state=True,
)

REVIEW_DECISIONS = Subscription(
    SERVICE,
    review.STREAM,
    review.DECIDED,
    "filing-review-decisions",
    "Apply reviewers' decisions on filing applications",
)
