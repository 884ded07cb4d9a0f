"""My application permissions and the decision API, the handlers called directly: defaults from
the business scope, enterprise and operator revocations and restores, maker/checker, a scope
change keeping revocations, and `permissions.check` / `session.introspect`."""

from __future__ import annotations

from typing import Any

import pytest
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.domain import AccountStatus
from singlewindow.accounts.login import logout
from singlewindow.accounts.permissions import (
    catalogue,
    check_permission,
    introspect_session,
    list_permissions,
    restore_permission,
    revoke_permission,
)
from singlewindow.accounts.scope import set_scope
from singlewindow.accounts.tables import accounts
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.accounts import (
    BusinessScope,
    ChangePermission,
    CheckPermission,
    IntrospectSession,
    ListPermissions,
    Logout,
    PermissionList,
    SessionView,
    SetScope,
)
from singlewindow.contracts.card_gateway import OperatorLevel
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.runtime.clock import ManualClock
from sqlalchemy import update

from tests.accounts.test_qualifications import operator_session
from tests.support.accounts import card_admin
from tests.support.cards import CardAuthority
from tests.support.handlers import staged

APPLICATIONS = {
    "goods_declaration",
    "manifest",
    "conveyance",
    "licences",
    "origin_certificates",
    "enterprise_qualification",
    "query_statistics",
    "export_tax_refund",
    "duty_payment",
    "processing_trade",
    "cross_border_ecommerce",
}


def granted(listing: PermissionList) -> dict[tuple[str, str], tuple[bool, str]]:
    return {(p.application, p.action.value): (p.granted, p.reason) for p in listing.permissions}


async def listing(deps: AccountsRuntime, session: SessionView, operator: str | None = None) -> Any:
    return granted(
        await list_permissions(ListPermissions(token=session.token, operator=operator), deps)
    )


async def revoke(deps: AccountsRuntime, session: SessionView, app: str, **options: Any) -> Any:
    request = ChangePermission(token=session.token, application=app, **options)
    return await revoke_permission(request, deps)


async def restore(deps: AccountsRuntime, session: SessionView, app: str, **options: Any) -> Any:
    request = ChangePermission(token=session.token, application=app, **options)
    return await restore_permission(request, deps)


async def check(deps: AccountsRuntime, app: str, action: str, **who: Any) -> Any:
    return await check_permission(
        CheckPermission.model_validate({"application": app, "action": action} | who), deps
    )


def test_the_catalogue_holds_the_eleven_applications_each_with_its_actions() -> None:
    books = catalogue()
    assert set(books.applications) == APPLICATIONS
    for application in books.applications.values():
        assert {a.value for a in application.actions} >= {"query", "entry", "declare"}
    assert set(books.defaults_by_scope) == {code.value for code in BusinessScope}


async def test_defaults_follow_the_business_scope(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)  # a customs broker only
    held = await listing(deps, admin)
    assert held[("goods_declaration", "declare")] == (
        True,
        "default from business scope customs_broker",
    )
    assert held[("export_tax_refund", "query")] == (
        False,
        "not a default of the enterprise's business scope",
    )


async def test_a_scope_change_re_derives_the_defaults_and_keeps_revocations(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)
    await revoke(deps, admin, "manifest")
    codes = (BusinessScope.CUSTOMS_BROKER, BusinessScope.EXPORT_TAX_REFUND)
    await set_scope(SetScope(token=admin.token, codes=codes), deps)
    held = await listing(deps, admin)
    assert held[("export_tax_refund", "declare")][0]
    assert held[("manifest", "query")] == (False, "revoked by the administrator for the enterprise")
    changes = [
        contract.PERMISSIONS_CHANGED.parse(e).change
        for e in await staged(deps.service)
        if e.type == contract.PERMISSIONS_CHANGED.type
    ]
    assert changes == ["scope-changed", "revoked", "scope-changed"]


async def test_an_enterprise_revocation_removes_it_from_every_operator_and_restore_brings_back_each(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)
    assert admin.uscc is not None
    first = await operator_session(deps, admin.uscc, OperatorLevel.DECLARATION)
    second = await operator_session(deps, admin.uscc, OperatorLevel.DECLARATION)
    await revoke(deps, admin, "manifest", action="entry", operator=first.account)
    await revoke(deps, admin, "manifest")
    for operator in (first, second):
        held = await listing(deps, admin, operator.account)
        assert held[("manifest", "query")] == (
            False,
            "revoked by the administrator for the enterprise",
        )
    await restore(deps, admin, "manifest")
    first_held = await listing(deps, admin, first.account)
    assert first_held[("manifest", "query")][0]
    assert first_held[("manifest", "entry")] == (
        False,
        "revoked by the administrator for this operator",
    )
    assert (await listing(deps, second))[("manifest", "entry")][0]
    await restore(deps, admin, "manifest", action="entry", operator=first.account)
    assert (await listing(deps, first))[("manifest", "entry")] == (
        True,
        "restored by the administrator for this operator",
    )


async def test_a_data_entry_operator_never_holds_declare(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)
    assert admin.uscc is not None
    maker = await operator_session(deps, admin.uscc, OperatorLevel.ENTRY)
    checker = await operator_session(deps, admin.uscc, OperatorLevel.DECLARATION)
    assert (await listing(deps, maker))[("goods_declaration", "declare")] == (
        False,
        "a data-entry operator never holds declare (maker/checker)",
    )
    assert (await listing(deps, maker))[("goods_declaration", "entry")][0]
    assert (await listing(deps, checker))[("goods_declaration", "declare")][0]
    with pytest.raises(DomainError) as raised:
        await restore(deps, admin, "goods_declaration", action="declare", operator=maker.account)
    assert [f.path for f in raised.value.fields] == ["action"]
    await restore(deps, admin, "goods_declaration", operator=maker.account)
    assert not (await listing(deps, maker))[("goods_declaration", "declare")][0]
    decision = await check(deps, "goods_declaration", "declare", token=maker.token)
    assert not decision.allowed


async def test_only_the_administrator_changes_permissions_and_an_operator_sees_its_own(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)
    assert admin.uscc is not None
    operator = await operator_session(deps, admin.uscc, OperatorLevel.DECLARATION)
    with pytest.raises(DomainError) as raised:
        await revoke(deps, operator, "manifest")
    assert raised.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(DomainError) as raised:
        await listing(deps, operator, admin.account)
    assert raised.value.code is ErrorCode.FORBIDDEN
    _other_card, other_admin = await card_admin(deps, authority)
    with pytest.raises(DomainError) as raised:
        await revoke(deps, other_admin, "manifest", operator=operator.account)
    assert raised.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(DomainError) as raised:
        await revoke(deps, admin, "no_such_app")
    assert [f.path for f in raised.value.fields] == ["application"]


async def test_check_answers_for_admin_operator_and_a_revoked_permission(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)
    assert admin.uscc is not None
    operator = await operator_session(deps, admin.uscc, OperatorLevel.DECLARATION)
    allowed = await check(deps, "manifest", "declare", token=admin.token)
    assert (allowed.allowed, allowed.account, allowed.uscc) == (True, admin.account, admin.uscc)
    assert (await check(deps, "manifest", "declare", account=operator.account)).allowed
    await revoke(deps, admin, "manifest", action="declare", operator=operator.account)
    refused = await check(deps, "manifest", "declare", token=operator.token)
    assert (refused.allowed, refused.reason) == (
        False,
        "revoked by the administrator for this operator",
    )
    assert not (await check(deps, "export_tax_refund", "query", token=admin.token)).allowed


async def test_check_and_introspect_refuse_a_disabled_operator_and_a_logged_out_session(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)
    assert admin.uscc is not None
    operator = await operator_session(deps, admin.uscc, OperatorLevel.ENTRY)
    seen = await introspect_session(IntrospectSession(token=operator.token), deps)
    assert seen.active
    assert (seen.username, seen.enterprise, seen.role, seen.level) == (
        operator.account,
        admin.uscc,
        contract.Role.OPERATOR,
        OperatorLevel.ENTRY,
    )
    assert seen.exp is not None
    async with deps.service.db.transaction() as connection:
        await connection.execute(
            update(accounts)
            .where(accounts.c.account == operator.account)
            .values(status=AccountStatus.DISABLED.value)
        )
    refused = await check(deps, "manifest", "query", account=operator.account)
    assert (refused.allowed, refused.reason) == (False, "the account is disabled")
    assert not (await check(deps, "manifest", "query", token=operator.token)).allowed
    assert not (await introspect_session(IntrospectSession(token=operator.token), deps)).active
    await logout(Logout(token=admin.token), deps)
    gone = await check(deps, "manifest", "query", token=admin.token)
    assert (gone.allowed, gone.reason) == (False, "the session has ended")
    assert await introspect_session(IntrospectSession(token=admin.token), deps) == (
        contract.Introspection(active=False)
    )
    assert not (await introspect_session(IntrospectSession(token="nonsense"), deps)).active


async def test_introspect_does_not_extend_the_session(
    deps: AccountsRuntime, authority: CardAuthority, clock: ManualClock
) -> None:
    _card, admin = await card_admin(deps, authority)
    first = await introspect_session(IntrospectSession(token=admin.token), deps)
    clock.advance(60)
    again = await introspect_session(IntrospectSession(token=admin.token), deps)
    assert again.exp == first.exp


async def test_introspect_gives_when_the_session_was_issued(
    deps: AccountsRuntime, authority: CardAuthority, clock: ManualClock
) -> None:
    issued = int(clock.now().timestamp())
    _card, admin = await card_admin(deps, authority)
    clock.advance(90)
    seen = await introspect_session(IntrospectSession(token=admin.token), deps)
    assert seen.iat == issued
    assert seen.exp is not None
    assert seen.exp > issued + 90


async def test_check_wants_token_or_account(deps: AccountsRuntime) -> None:
    with pytest.raises(DomainError) as raised:
        await check(deps, "manifest", "query")
    assert [f.path for f in raised.value.fields] == ["token"]


async def test_check_answers_exactly_what_the_list_shows_for_every_application_and_action(
    deps: AccountsRuntime, authority: CardAuthority
) -> None:
    _card, admin = await card_admin(deps, authority)
    assert admin.uscc is not None
    maker = await operator_session(deps, admin.uscc, OperatorLevel.ENTRY)
    checker = await operator_session(deps, admin.uscc, OperatorLevel.DECLARATION)
    await revoke(deps, admin, "manifest")
    await restore(deps, admin, "export_tax_refund", action="query")
    await revoke(deps, admin, "goods_declaration", action="entry", operator=maker.account)
    await revoke(deps, admin, "duty_payment", operator=checker.account)
    await restore(deps, admin, "duty_payment", action="query", operator=checker.account)
    for session in (admin, maker, checker):
        for (app, action), (allowed, reason) in (await listing(deps, session)).items():
            for who in ({"token": session.token}, {"account": session.account}):
                decision = await check(deps, app, action, **who)
                assert (decision.allowed, decision.reason) == (allowed, reason), (who, app, action)
