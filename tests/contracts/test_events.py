"""The event envelope: CloudEvents 1.0 structured JSON, versioned types, masked personal data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from singlewindow.contracts import accounts, card_gateway, registration, review
from singlewindow.contracts.common import EnterpriseInfo, MaskedEnterprise
from singlewindow.contracts.endpoints import endpoints_of
from singlewindow.contracts.events import CloudEvent, EventSpec

ALL_EVENTS: list[EventSpec[Any]] = [
    registration.SUBMITTED,
    registration.RESUBMITTED,
    registration.APPROVED,
    registration.REJECTED,
    registration.RETURNED,
    review.REQUESTED,
    review.DECIDED,
    accounts.ENTERPRISE_REGISTERED,
    accounts.BUSINESS_SCOPE_DECLARED,
    accounts.AUTHENTICATION_ATTEMPTED,
]
STREAMS = [
    registration.STREAM,
    review.STREAM,
    review.REQUESTS_STREAM,
    accounts.STREAM,
    accounts.AUDIT_STREAM,
]
REQUEST_SUBJECTS = [
    endpoint.subject
    for module in (registration, review, accounts, card_gateway)
    for endpoint in endpoints_of(module)
]


def _captured_by(subject: str, pattern: str) -> bool:
    parts, wanted = subject.split("."), pattern.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(parts) > index
        if index >= len(parts) or (token != "*" and token != parts[index]):
            return False
    return len(parts) == len(wanted)


def test_event_types_are_reverse_dns_and_versioned() -> None:
    for spec in ALL_EVENTS:
        assert spec.type.startswith("cn.singlewindow.")
        assert spec.type.endswith(f".v{spec.version}")
        assert spec.subject.endswith(f".v{spec.version}")


def test_every_event_lands_in_exactly_one_stream_and_audit_is_kept_apart() -> None:
    for spec in ALL_EVENTS:
        owners = [s.name for s in STREAMS if any(_captured_by(spec.subject, p) for p in s.subjects)]
        assert owners == (["SW_AUDIT"] if spec.audit else [owners[0]]), spec.subject
        assert len(owners) == 1


def test_no_request_subject_falls_inside_a_stream() -> None:
    assert REQUEST_SUBJECTS
    for subject in REQUEST_SUBJECTS:
        for stream in STREAMS:
            assert not any(_captured_by(subject, p) for p in stream.subjects), (
                subject,
                stream.name,
            )


def test_an_event_is_a_structured_cloudevent_with_the_uscc_as_subject() -> None:
    event = review.DECIDED.make(
        review.ReviewDecided(
            task_id="task_x",
            kind="registration.cardless",
            reference="app_y",
            application_id="app_y",
            attempt=1,
            uscc="91500000MA5U7X1C69",
            decision=review.Decision.APPROVE,
            reason=None,
            reviewer="r",
            decided_at=datetime(2026, 11, 27, 8, tzinfo=UTC),
        ),
        subject="91500000MA5U7X1C69",
        source="urn:singlewindow:service:review",
        correlation_id="c-1",
    )
    document = json.loads(event.model_dump_json(exclude_none=True))
    assert {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
    } <= set(document)
    assert document["specversion"] == "1.0"
    assert document["correlationid"] == "c-1"
    assert CloudEvent.model_validate(document) == event


def test_masked_views_carry_no_full_id_number_or_mobile() -> None:
    enterprise = EnterpriseInfo.model_validate(
        {
            "uscc": "91500000MA5U7X1C69",
            "name": "重庆某某贸易有限公司",
            "division": "500000",
            "address": "重庆市",
            "legal_representative": {
                "name": "张三",
                "id_type": "resident_id",
                "id_number": "11010519491231002x",
                "mobile": "13800138000",
            },
        }
    )
    masked = MaskedEnterprise.of(enterprise).model_dump_json()
    assert "11010519491231002X" not in masked
    assert "13800138000" not in masked
    assert "110105********002X" in masked


def test_the_cloudevents_sdk_reads_our_events_as_valid_v1() -> None:
    event = accounts.BUSINESS_SCOPE_DECLARED.make(
        accounts.BusinessScopeDeclared(
            uscc="91500000MA5U7X1C69", codes=("customs_broker",), version=1, declared_by="admin"
        ),
        subject="91500000MA5U7X1C69",
        source="urn:singlewindow:service:accounts",
        correlation_id="c-2",
    )
    wire = event.model_dump_json(exclude_none=True).encode()  # what the outbox relays
    read = JSONFormat().read(None, wire)  # validates required and extension attributes
    assert read.get_specversion() == "1.0"
    assert read.get_id() == event.id
    assert read.get_type() == "cn.singlewindow.accounts.business-scope-declared.v1"
    assert read.get_subject() == "91500000MA5U7X1C69"
    assert read.get_dataschema() == event.dataschema
    assert read.get_extension("correlationid") == "c-2"
    assert read.get_data() == event.data
