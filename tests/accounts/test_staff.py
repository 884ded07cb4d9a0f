"""Staff accounts, the handlers called directly: the bootstrap administrator and its forced
password change, roles, sessions, throttling, and the audit trail (which holds no secret)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.login import login_password, show_session
from singlewindow.accounts.staff import (
    BootstrapError,
    add_staff,
    bootstrap_admin,
    change_staff_password,
    disable_staff,
    enable_staff,
    list_staff,
    resolve_staff_session,
    show_staff_member,
    staff_login,
    staff_logout,
)
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    AddStaff,
    ChangeStaffPassword,
    DisableStaff,
    EnableStaff,
    ListStaff,
    LoginWithPassword,
    RequiredAction,
    ResolveStaffSession,
    ShowSession,
    ShowStaffMember,
    StaffLogin,
    StaffLogout,
    StaffRole,
    StaffSessionView,
    StaffStatus,
)
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.clock import ManualClock

from tests.support.accounts import PASSWORD, accounts_runtime, cardless_admin
from tests.support.cards import CardAuthority
from tests.support.handlers import staged

ONE_TIME = "bootstrap-one-time-9f3k"
ADMIN_PASSWORD = "Staff-Desk-Quiet-River-7"


@pytest.fixture
async def deps(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> AsyncIterator[AccountsRuntime]:
    """A runtime whose deployment names `admin` the first platform administrator."""
    secret = tmp_path / "bootstrap-admin.json"
    secret.write_text(json.dumps({"account": "admin", "password": ONE_TIME}))
    async with accounts_runtime(
        tmp_path, clock, authority, bootstrap_admin="admin", bootstrap_password_file=secret
    ) as runtime:
        await bootstrap_admin(runtime)
        yield runtime


async def login(deps: AccountsRuntime, account: str, password: str) -> StaffSessionView:
    return await staff_login(StaffLogin(account=account, password=password), deps)


async def refusal(call: object) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await call  # type: ignore[misc]
    return raised.value


async def admin(deps: AccountsRuntime) -> StaffSessionView:
    """The bootstrap administrator's session, its one-time password changed."""
    first = await login(deps, "admin", ONE_TIME)
    request = ChangeStaffPassword(
        token=first.token, current_password=ONE_TIME, new_password=ADMIN_PASSWORD
    )
    return await change_staff_password(request, deps)


async def member(deps: AccountsRuntime, name: str, role: StaffRole) -> StaffSessionView:
    """A staff member added by the administrator, logged in, one-time password changed."""
    added = await add_staff(
        AddStaff(token=(await admin(deps)).token, account=name, role=role), deps
    )
    first = await login(deps, name, added.one_time_password)
    request = ChangeStaffPassword(
        token=first.token,
        current_password=added.one_time_password,
        new_password=f"{role.value}-long-passphrase-42",
    )
    return await change_staff_password(request, deps)


async def test_the_bootstrap_admin_must_change_its_one_time_password_before_anything_else(
    deps: AccountsRuntime,
) -> None:
    first = await login(deps, "admin", ONE_TIME)
    assert first.role is StaffRole.PLATFORM_ADMIN
    assert first.required_actions == (RequiredAction.CHANGE_PASSWORD,)
    for call in (
        list_staff(ListStaff(token=first.token), deps),
        add_staff(AddStaff(token=first.token, account="rev-one", role=StaffRole.REVIEWER), deps),
        resolve_staff_session(ResolveStaffSession(token=first.token), deps),
    ):
        refused = await refusal(call)
        assert refused.code is ErrorCode.ACTION_REQUIRED
        assert "one-time password" in refused.message

    changed = await change_staff_password(
        ChangeStaffPassword(
            token=first.token, current_password=ONE_TIME, new_password=ADMIN_PASSWORD
        ),
        deps,
    )
    assert changed.required_actions == ()
    # The password change ended the one-time session; the new one works.
    assert (await refusal(list_staff(ListStaff(token=first.token), deps))).code is (
        ErrorCode.UNAUTHENTICATED
    )
    listed = await list_staff(ListStaff(token=changed.token), deps)
    assert [(s.account, s.role, s.password_must_change) for s in listed.staff] == [
        ("admin", StaffRole.PLATFORM_ADMIN, False)
    ]
    assert (await refusal(login(deps, "admin", ONE_TIME))).code is ErrorCode.UNAUTHENTICATED


async def test_bootstrap_happens_once_and_not_when_a_platform_admin_exists(
    deps: AccountsRuntime, tmp_path: Path
) -> None:
    await admin(deps)
    (tmp_path / "bootstrap-admin.json").write_text(json.dumps({"password": "another-one"}))
    await bootstrap_admin(deps)
    assert (await refusal(login(deps, "admin", "another-one"))).code is ErrorCode.UNAUTHENTICATED
    await login(deps, "admin", ADMIN_PASSWORD)


async def test_a_bare_password_file_is_read_without_its_trailing_newline(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> None:
    secret = tmp_path / "password"
    secret.write_text(ONE_TIME + "\n")
    async with accounts_runtime(
        tmp_path, clock, authority, bootstrap_admin="root-admin", bootstrap_password_file=secret
    ) as runtime:
        await bootstrap_admin(runtime)
        session = await login(runtime, "root-admin", ONE_TIME)
    assert session.required_actions == (RequiredAction.CHANGE_PASSWORD,)


async def test_a_bootstrap_file_for_another_account_stops_the_start(
    tmp_path: Path, clock: ManualClock, authority: CardAuthority
) -> None:
    secret = tmp_path / "bootstrap-admin.json"
    secret.write_text(json.dumps({"account": "someone", "password": ONE_TIME}))
    async with accounts_runtime(
        tmp_path, clock, authority, bootstrap_admin="admin", bootstrap_password_file=secret
    ) as runtime:
        with pytest.raises(BootstrapError, match="is for 'someone'"):
            await bootstrap_admin(runtime)


async def test_a_new_password_follows_the_policy_and_differs_from_the_one_time_one(
    deps: AccountsRuntime,
) -> None:
    first = await login(deps, "admin", ONE_TIME)
    for new, field_message in (
        ("short", "password must be at least 8 characters"),
        ("password123", "password is too common; choose a less guessable password"),
        ("my-admin-password", "password must not contain the account name"),
        (ONE_TIME, "must differ from the current password"),
    ):
        request = ChangeStaffPassword(
            token=first.token, current_password=ONE_TIME, new_password=new
        )
        refused = await refusal(change_staff_password(request, deps))
        assert refused.code is ErrorCode.INVALID
        assert [(f.path, f.message) for f in refused.fields] == [("new_password", field_message)]
    wrong = ChangeStaffPassword(
        token=first.token, current_password="not-the-password", new_password=ADMIN_PASSWORD
    )
    assert (await refusal(change_staff_password(wrong, deps))).code is ErrorCode.UNAUTHENTICATED
    assert (await login(deps, "admin", ONE_TIME)).required_actions == (
        RequiredAction.CHANGE_PASSWORD,
    )


async def test_only_a_platform_admin_manages_staff(deps: AccountsRuntime) -> None:
    reviewer = await member(deps, "rev-one", StaffRole.REVIEWER)
    refused = await refusal(list_staff(ListStaff(token=reviewer.token), deps))
    assert (refused.code, refused.message) == (
        ErrorCode.FORBIDDEN,
        "only a platform administrator manages staff",
    )
    assert (
        await refusal(
            add_staff(
                AddStaff(token=reviewer.token, account="rev-two", role=StaffRole.SUPERVISOR), deps
            )
        )
    ).code is ErrorCode.FORBIDDEN


async def test_a_staff_name_is_taken_regardless_of_case(deps: AccountsRuntime) -> None:
    token = (await admin(deps)).token
    await add_staff(AddStaff(token=token, account="Rev-One", role=StaffRole.REVIEWER), deps)
    refused = await refusal(
        add_staff(AddStaff(token=token, account="rev-one", role=StaffRole.SUPERVISOR), deps)
    )
    assert refused.code is ErrorCode.CONFLICT
    assert [f.path for f in refused.fields] == ["account"]


async def test_disabling_a_reviewer_ends_its_sessions_and_refuses_its_logins(
    deps: AccountsRuntime,
) -> None:
    reviewer = await member(deps, "rev-one", StaffRole.REVIEWER)
    token = (await login(deps, "admin", ADMIN_PASSWORD)).token
    disabled = await disable_staff(DisableStaff(token=token, account="rev-one"), deps)
    assert disabled.status is StaffStatus.DISABLED
    resolve = ResolveStaffSession(token=reviewer.token)
    assert (await refusal(resolve_staff_session(resolve, deps))).code is ErrorCode.UNAUTHENTICATED
    refused = await refusal(login(deps, "rev-one", "reviewer-long-passphrase-42"))
    assert (refused.code, refused.message) == (ErrorCode.FORBIDDEN, "staff account is disabled")

    await enable_staff(EnableStaff(token=token, account="rev-one"), deps)
    again = await login(deps, "rev-one", "reviewer-long-passphrase-42")
    caller = await resolve_staff_session(ResolveStaffSession(token=again.token), deps)
    assert (caller.account, caller.role) == ("rev-one", StaffRole.REVIEWER)
    shown = await show_staff_member(ShowStaffMember(account="REV-ONE"), deps)
    assert (shown.account, shown.status) == ("rev-one", StaffStatus.ACTIVE)


async def test_an_admin_cannot_disable_itself(deps: AccountsRuntime) -> None:
    token = (await admin(deps)).token
    refused = await refusal(disable_staff(DisableStaff(token=token, account="admin"), deps))
    assert refused.code is ErrorCode.CONFLICT


async def test_staff_sessions_end_on_logout_and_when_idle(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    session = await admin(deps)
    await staff_logout(StaffLogout(token=session.token), deps)
    resolve = ResolveStaffSession(token=session.token)
    assert (await refusal(resolve_staff_session(resolve, deps))).code is ErrorCode.UNAUTHENTICATED

    idle = await login(deps, "admin", ADMIN_PASSWORD)
    clock.advance(deps.staff_sessions.idle.total_seconds() - 1)
    await resolve_staff_session(ResolveStaffSession(token=idle.token), deps)  # restarts the clock
    clock.advance(deps.staff_sessions.idle.total_seconds() - 1)
    await resolve_staff_session(ResolveStaffSession(token=idle.token), deps)
    clock.advance(deps.staff_sessions.idle.total_seconds())
    refused = await refusal(resolve_staff_session(ResolveStaffSession(token=idle.token), deps))
    assert refused.code is ErrorCode.UNAUTHENTICATED


async def test_staff_logins_are_throttled_like_enterprise_logins(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    for _ in range(4):
        assert (await refusal(login(deps, "admin", "wrong-password"))).code is (
            ErrorCode.UNAUTHENTICATED
        )
    assert (await refusal(login(deps, "admin", ONE_TIME))).code is ErrorCode.THROTTLED
    clock.advance(1)
    await login(deps, "admin", ONE_TIME)


async def test_an_unknown_staff_name_and_a_wrong_password_get_the_same_reply(
    deps: AccountsRuntime,
) -> None:
    unknown = await refusal(login(deps, "nobody-here", ONE_TIME))
    wrong = await refusal(login(deps, "admin", "wrong-password"))
    assert (unknown.code, unknown.message) == (wrong.code, wrong.message)


async def test_enterprise_and_staff_sessions_are_refused_on_each_others_subjects(
    deps: AccountsRuntime,
) -> None:
    enterprise = await login_password(
        LoginWithPassword(account=await cardless_admin(deps), password=PASSWORD), deps
    )
    staff_session = await admin(deps)
    on_staff = await refusal(list_staff(ListStaff(token=enterprise.token), deps))
    assert on_staff.code is ErrorCode.WRONG_SESSION
    on_resolve = await refusal(
        resolve_staff_session(ResolveStaffSession(token=enterprise.token), deps)
    )
    assert on_resolve.code is ErrorCode.WRONG_SESSION
    on_enterprise = await refusal(show_session(ShowSession(token=staff_session.token), deps))
    assert on_enterprise.code is ErrorCode.WRONG_SESSION


async def test_every_staff_login_and_change_is_audited_without_secrets(
    deps: AccountsRuntime,
) -> None:
    await refusal(login(deps, "admin", "wrong-password"))
    reviewer = await member(deps, "rev-one", StaffRole.REVIEWER)
    token = (await login(deps, "admin", ADMIN_PASSWORD)).token
    await disable_staff(DisableStaff(token=token, account="rev-one"), deps)
    await enable_staff(EnableStaff(token=token, account="rev-one"), deps)
    events = await staged(deps.service)
    logins = [
        (e.data["account"], e.data["outcome"])
        for e in events
        if e.type == contract.STAFF_AUTHENTICATION_ATTEMPTED.type
    ]
    assert logins == [
        ("admin", "failed"),
        ("admin", "succeeded"),
        ("rev-one", "succeeded"),
        ("admin", "succeeded"),
    ]
    changes = [
        (e.data["account"], e.data["change"], e.data["by"])
        for e in events
        if e.type == contract.STAFF_CHANGED.type
    ]
    assert changes == [
        ("admin", "bootstrapped", "deployment"),
        ("admin", "password-changed", "admin"),
        ("rev-one", "added", "admin"),
        ("rev-one", "password-changed", "rev-one"),
        ("rev-one", "disabled", "admin"),
        ("rev-one", "enabled", "admin"),
    ]
    assert all(e.type.endswith(".v1") and e.subject is None for e in events)
    text = "".join(e.model_dump_json() for e in events)
    for secret in (ONE_TIME, ADMIN_PASSWORD, "reviewer-long-passphrase-42", reviewer.token, token):
        assert secret not in text


async def test_a_password_change_ends_every_other_session_of_the_account(
    deps: AccountsRuntime,
) -> None:
    await admin(deps)
    elsewhere = await login(deps, "admin", ADMIN_PASSWORD)
    here = await login(deps, "admin", ADMIN_PASSWORD)
    new = "Another-Quiet-River-8"
    changed = await change_staff_password(
        ChangeStaffPassword(token=here.token, current_password=ADMIN_PASSWORD, new_password=new),
        deps,
    )
    for ended in (elsewhere, here):
        refused = await refusal(resolve_staff_session(ResolveStaffSession(token=ended.token), deps))
        assert refused.code is ErrorCode.UNAUTHENTICATED
    await resolve_staff_session(ResolveStaffSession(token=changed.token), deps)


async def test_a_staff_session_ends_at_its_absolute_limit_however_busy(
    deps: AccountsRuntime, clock: ManualClock
) -> None:
    session = await admin(deps)
    step = deps.staff_sessions.idle.total_seconds() - 1
    while clock.now() + timedelta(seconds=step) < session.expires_at:
        clock.advance(step)
        await resolve_staff_session(ResolveStaffSession(token=session.token), deps)
    clock.advance(session.expires_at - clock.now())
    refused = await refusal(resolve_staff_session(ResolveStaffSession(token=session.token), deps))
    assert refused.code is ErrorCode.UNAUTHENTICATED
