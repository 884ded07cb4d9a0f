"""Registration rules over the real bus: field errors, one open application and one admin per USCC."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from singlewindow.contracts import accounts, registration, review
from singlewindow.contracts.accounts import OnboardingCheckView
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.contracts.registration import ApplicationView, SubmittedApplication
from singlewindow.contracts.review import TaskList

from tests.support.identifiers import application, make_uscc
from tests.support.platform import Bus, eventually


async def submit(bus: Bus, content: dict[str, Any]) -> SubmittedApplication:
    result: SubmittedApplication = await bus.call(registration.SUBMIT_CARDLESS, content)
    return result


async def refusal(bus: Bus, content: dict[str, Any]) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await submit(bus, content)
    return raised.value


async def open_task(bus: Bus, application_id: str, reviewer: str) -> str:
    """The application's open review task, once review has it (`reviewer`: a staff token)."""

    async def task_id() -> str | None:
        tasks: TaskList = await bus.call(
            review.LIST_TASKS, {"token": reviewer, "state": "open", "limit": 500}
        )
        return next((t.task_id for t in tasks.tasks if t.application_id == application_id), None)

    return await eventually(task_id)


async def approve(bus: Bus, application_id: str, reviewer: str) -> None:
    """Approve the application's task as the reviewer whose staff token is `reviewer`."""
    task = await open_task(bus, application_id, reviewer)
    await bus.call(review.DECIDE_TASK, {"token": reviewer, "task_id": task, "decision": "approve"})


async def registered(bus: Bus, uscc: str) -> None:
    """Wait until the accounts service has created the enterprise's administrator (`bus`: as
    registration, the service that may ask accounts this)."""

    async def check() -> bool | None:
        view: OnboardingCheckView = await bus.call(
            accounts.ONBOARDING_CHECK, {"uscc": uscc, "account": "nobody_x"}
        )
        return True if view.uscc_registered else None

    await eventually(check)


def with_value(path: str, value: object) -> dict[str, Any]:
    content = application()
    *parents, leaf = path.split(".")
    node: Any = content
    for part in parents:
        node = node[part]
    node[leaf] = value
    return content


INVALID_FIELDS = [
    ("enterprise.uscc", "91500000MA5U7X1C68", "check character"),
    ("enterprise.uscc", "91500000MA5U7X1C7C", "organisation code"),
    ("enterprise.uscc", "91500000MA5U7X1CI9", "not allowed"),
    ("enterprise.uscc", "9150000MA5U7X1C69", "18 characters"),
    ("enterprise.uscc", 91500000, "valid string"),
    ("enterprise.division", "50000", "6 digits"),
    ("enterprise.division", "000000", "does not exist"),
    ("enterprise.division", "500112", "abolished"),
    ("enterprise.division", "110105", "outside the province of the USCC's registering authority"),
    ("enterprise.name", "重庆\u202e司公限有易贸", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("enterprise.address", "重庆市\u200b渝北区", "U+200B ZERO WIDTH SPACE"),
    ("enterprise.legal_representative.id_number", "000000194912310027", "region"),
    ("admin.name", "李\u2066四", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("enterprise.legal_representative.id_number", "110105194912310021", "check"),
    ("enterprise.legal_representative.id_number", "110105194902300023", "birth date"),
    ("enterprise.legal_representative.mobile", "02388888888", "mobile"),
    ("admin.mobile", "1380013800", "mobile"),
    ("admin.account", "9starts-with-digit", "pattern"),
    ("admin.email", "not-an-address", "pattern"),
    ("admin.password", "password", "too common"),
    ("admin.password", "short", "at least 8"),
    ("admin.password", " " * 12, "only spaces"),
    ("enterprise.colour", "blue", "unknown field"),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID_FIELDS)
async def test_an_invalid_field_is_named_and_nothing_is_stored(
    nats_bus: Bus, path: str, value: object, message: str
) -> None:
    content = with_value(path, value)
    error = await refusal(nats_bus, content)
    assert error.code is ErrorCode.INVALID
    assert [field.path for field in error.fields] == [path]
    assert message in error.fields[0].message
    # Nothing was stored: the same enterprise, corrected, is accepted.
    corrected = copy.deepcopy(content)
    fixed = application(uscc=content["enterprise"]["uscc"] if path != "enterprise.uscc" else None)
    corrected["enterprise"] = fixed["enterprise"]
    corrected["admin"] = fixed["admin"] | {"account": content["admin"]["account"]}
    if path == "admin.account":
        corrected["admin"]["account"] = fixed["admin"]["account"]
    assert (await submit(nats_bus, corrected)).state.value == "pending"


async def test_a_lone_surrogate_is_refused_as_malformed_not_as_an_internal_error(
    nats_bus: Bus,
) -> None:
    content = application()
    content["admin"]["account"] = "cq\ud800admin"
    content["enterprise"]["name"] = "重庆\udfff贸易"
    reply = await nats_bus.raw(registration.SUBMIT_CARDLESS, json.dumps(content).encode())
    assert reply["error"]["code"] == ErrorCode.MALFORMED.value
    assert reply["error"]["message"].startswith("request is not valid JSON: ")
    assert (
        await submit(nats_bus, application(uscc=content["enterprise"]["uscc"]))
    ).state.value == ("pending")


async def test_every_offending_field_is_named_at_once(nats_bus: Bus) -> None:
    content = application()
    content["enterprise"]["uscc"] = "91500000MA5U7X1C68"
    content["admin"]["mobile"] = "12345"
    del content["admin"]["name"]
    error = await refusal(nats_bus, content)
    assert {field.path for field in error.fields} == {
        "enterprise.uscc",
        "admin.mobile",
        "admin.name",
    }


async def test_letter_authority_usccs_are_accepted(nats_bus: Bus) -> None:
    for prefix in ("Y1", "N2", "A1"):
        view = await submit(nats_bus, application(uscc=make_uscc(prefix=prefix)))
        assert view.uscc.startswith(prefix)


async def test_a_second_application_for_a_pending_uscc_is_refused(nats_bus: Bus) -> None:
    uscc = make_uscc()
    await submit(nats_bus, application(uscc=uscc))
    error = await refusal(nats_bus, application(uscc=uscc))
    assert error.code is ErrorCode.CONFLICT
    assert "pending application" in error.message


async def test_two_concurrent_applications_for_one_uscc_one_accepted_one_refused(
    nats_bus: Bus,
) -> None:
    uscc = make_uscc()
    outcomes = await asyncio.gather(
        submit(nats_bus, application(uscc=uscc)),
        submit(nats_bus, application(uscc=uscc)),
        return_exceptions=True,
    )
    accepted = [o for o in outcomes if isinstance(o, ApplicationView)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(accepted) == 1, outcomes
    assert len(refused) == 1, outcomes
    assert refused[0].code is ErrorCode.CONFLICT


async def test_a_uscc_with_an_administrator_is_refused(
    nats_bus: Bus, registration_bus: Bus, reviewer: str
) -> None:
    uscc = make_uscc()
    first = await submit(nats_bus, application(uscc=uscc))
    await approve(nats_bus, first.application_id, reviewer)
    await registered(registration_bus, uscc)
    error = await refusal(nats_bus, application(uscc=uscc))
    assert error.code is ErrorCode.CONFLICT
    assert "already has an administrator" in error.message
    assert [f.path for f in error.fields] == ["enterprise.uscc"]


async def test_an_account_name_in_use_is_refused(
    nats_bus: Bus, registration_bus: Bus, reviewer: str
) -> None:
    first = application()
    account = first["admin"]["account"]
    view = await submit(nats_bus, first)
    pending = await refusal(nats_bus, application(account=account.upper()))
    assert [f.path for f in pending.fields] == ["admin.account"]
    await approve(nats_bus, view.application_id, reviewer)
    await registered(registration_bus, view.uscc)
    error = await refusal(nats_bus, application(account=account.upper()))
    assert error.code is ErrorCode.CONFLICT
    assert [f.path for f in error.fields] == ["admin.account"]


async def test_only_a_returned_application_can_be_resubmitted(nats_bus: Bus) -> None:
    content = application()
    view = await submit(nats_bus, content)
    with pytest.raises(DomainError) as raised:
        await nats_bus.call(
            registration.RESUBMIT_CARDLESS,
            content | {"application_id": view.application_id, "claim_secret": view.claim_secret},
        )
    assert raised.value.code is ErrorCode.CONFLICT
    assert "pending" in raised.value.message


async def test_a_rejected_application_shows_its_reason(nats_bus: Bus, reviewer: str) -> None:
    view = await submit(nats_bus, application())

    async def task_id() -> str | None:
        tasks: TaskList = await nats_bus.call(review.LIST_TASKS, {"token": reviewer, "limit": 500})
        return next(
            (t.task_id for t in tasks.tasks if t.application_id == view.application_id), None
        )

    task = await eventually(task_id)
    with pytest.raises(DomainError) as raised:
        await nats_bus.call(
            review.DECIDE_TASK,
            {"token": reviewer, "task_id": task, "decision": "reject"},
        )
    assert [f.path for f in raised.value.fields] == ["reason"]
    await nats_bus.call(
        review.DECIDE_TASK,
        {
            "token": reviewer,
            "task_id": task,
            "decision": "reject",
            "reason": "not a trading company",
        },
    )

    async def rejected() -> ApplicationView | None:
        shown: ApplicationView = await nats_bus.call(
            registration.SHOW_APPLICATION,
            {"application_id": view.application_id, "claim_secret": view.claim_secret},
        )
        return shown if shown.state.value == "rejected" else None

    assert (await eventually(rejected)).reason == "not a trading company"
    # A rejected application frees its USCC for a new one.
    again = await submit(nats_bus, application(uscc=view.uscc))
    assert again.state.value == "pending"


async def test_a_returned_application_is_resubmitted_and_shown_to_its_applicant_only(
    nats_bus: Bus, reviewer: str
) -> None:
    content = application()
    view = await submit(nats_bus, content)
    task = await open_task(nats_bus, view.application_id, reviewer)
    await nats_bus.call(
        review.DECIDE_TASK,
        {"token": reviewer, "task_id": task, "decision": "return", "reason": "address incomplete"},
    )
    mine = {"application_id": view.application_id, "claim_secret": view.claim_secret}

    async def returned() -> ApplicationView | None:
        shown: ApplicationView = await nats_bus.call(registration.SHOW_APPLICATION, mine)
        return shown if shown.state.value == "returned" else None

    await eventually(returned)
    # Someone who read the id in a public event, with no secret or another application's.
    other = await submit(nats_bus, application())
    strangers = [
        {"application_id": view.application_id},
        {"application_id": view.application_id, "claim_secret": other.claim_secret},
    ]
    for stranger in strangers:
        for endpoint, body in (
            (registration.SHOW_APPLICATION, stranger),
            (registration.RESUBMIT_CARDLESS, content | stranger),
        ):
            with pytest.raises(DomainError) as raised:
                await nats_bus.call(endpoint, body)
            assert raised.value.code in {ErrorCode.INVALID, ErrorCode.FORBIDDEN}
            assert [f.path for f in raised.value.fields] == ["claim_secret"]
    shown: ApplicationView = await nats_bus.call(registration.SHOW_APPLICATION, mine)
    assert (shown.state.value, shown.attempt) == ("returned", 1)
    again: ApplicationView = await nats_bus.call(registration.RESUBMIT_CARDLESS, content | mine)
    assert (again.state.value, again.attempt) == ("pending", 2)
