"""Registration rules: resubmission and review outcomes."""

from __future__ import annotations

import pytest
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.registration import ApplicationState
from singlewindow.contracts.review import Decision
from singlewindow.registration.domain import check_resubmission, new_application_id, outcome_of

USCC = "91500000MA5U7X1C69"


@pytest.mark.parametrize(
    "state", [ApplicationState.PENDING, ApplicationState.APPROVED, ApplicationState.REJECTED]
)
def test_only_a_returned_application_can_be_resubmitted(state: ApplicationState) -> None:
    with pytest.raises(DomainError) as raised:
        check_resubmission(state, USCC, USCC)
    assert raised.value.code is ErrorCode.CONFLICT
    check_resubmission(ApplicationState.RETURNED, USCC, USCC)


def test_a_resubmission_keeps_its_uscc() -> None:
    with pytest.raises(DomainError) as raised:
        check_resubmission(ApplicationState.RETURNED, USCC, "91350100M000100Y43")
    assert [f.path for f in raised.value.fields] == ["enterprise.uscc"]


def test_each_decision_leads_to_its_state() -> None:
    assert outcome_of(Decision.APPROVE) is ApplicationState.APPROVED
    assert outcome_of(Decision.REJECT) is ApplicationState.REJECTED
    assert outcome_of(Decision.RETURN) is ApplicationState.RETURNED


def test_application_ids_are_unguessable_claim_tickets() -> None:
    ids = {new_application_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("app_") and len(i) >= 20 for i in ids)
