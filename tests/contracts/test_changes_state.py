"""Every endpoint says whether it changes state: those take an idempotency key.

A new endpoint fails here until it is classified: `changes_state=True` on its declaration, or its
subject below with the reason it changes nothing a retry could double."""

from __future__ import annotations

from singlewindow import contracts
from singlewindow.contracts.endpoints import IDEMPOTENCY_HEADER, endpoints_of

READ_ONLY = {
    "sw.rpc.accounts.session.show": "reads the session",
    "sw.rpc.accounts.account.show": "reads the account",
    "sw.rpc.accounts.scope.options": "reads the scope catalogue",
    "sw.rpc.accounts.card.status": "reads a card's binding",
    "sw.rpc.accounts.onboarding.check": "reads whether names are taken",
    "sw.rpc.registration.application.show": "reads an application",
    "sw.rpc.registration.onboarding.details": "reads an approved application",
    "sw.rpc.accounts.staff.list": "reads the staff",
    "sw.rpc.accounts.staff.session.resolve": "says who holds a staff session (a service asks)",
    "sw.rpc.accounts.staff.member.show": "reads a staff member (a service asks)",
    "sw.rpc.review.tasks.list": "reads the queue",
    "sw.rpc.review.tasks.show": "reads a task",
    "sw.rpc.card-gateway.readers.list": "reads the readers",
    "sw.rpc.card-gateway.card.read": "reads the card",
    # The card's PIN counter is the card's, not a database's: no stored answer could commit
    # with it, and a retried PIN is the client's decision (SPEC: never retried by itself).
    "sw.rpc.card-gateway.card.verify-pin": "acts on the card, not on the service's state",
    "sw.rpc.card-gateway.card.sign": "acts on the card, not on the service's state",
    # --- My IC card (issue 9) ---
    "sw.rpc.accounts.card.show": "reads the account's card binding",
    # --- operators, password, account update (issue 9) ---
    "sw.rpc.accounts.operators.list": "reads the enterprise's operators",
    "sw.rpc.accounts.operators.show": "reads an operator",
    # --- customs filing (issue 11) ---
    "sw.rpc.accounts.session.resolve": "says who holds an enterprise session (a service asks)",
    "sw.rpc.filing.form.show": "reads the form definition",
    "sw.rpc.filing.drafts.show": "reads the enterprise's draft",
    "sw.rpc.filing.status": "reads the enterprise's latest application",
    "sw.rpc.filing.record.show": "reads the enterprise's filing record",
    # --- qualifications and permissions (issue 10) ---
    "sw.rpc.accounts.qualifications.show": "reads the qualifications",
    "sw.rpc.accounts.qualifications.edit": "reads the qualifications and their version",
    "sw.rpc.accounts.qualifications.authorities": "reads the authorities' code list",
    "sw.rpc.accounts.permissions.list": "reads the permissions",
    "sw.rpc.accounts.permissions.check": "decides from the permissions (a business system asks)",
    "sw.rpc.accounts.session.introspect": "reads a session, without extending it",
}


def test_every_endpoint_is_declared_state_changing_or_listed_read_only() -> None:
    declared = [e for module in contracts.service_contracts() for e in endpoints_of(module)]
    unclassified = [
        e.subject for e in declared if not e.changes_state and e.subject not in READ_ONLY
    ]
    both = [e.subject for e in declared if e.changes_state and e.subject in READ_ONLY]
    stale = set(READ_ONLY) - {e.subject for e in declared}
    assert unclassified == [], "set changes_state=True, or list it in READ_ONLY with why"
    assert both == []
    assert stale == set()


def test_the_commands_that_change_state_take_a_key() -> None:
    declared = [e for module in contracts.service_contracts() for e in endpoints_of(module)]
    changing = {e.subject for e in declared if e.changes_state}
    assert {
        "sw.rpc.accounts.login.password",
        "sw.rpc.accounts.logout",
        "sw.rpc.accounts.scope.set",
        "sw.rpc.accounts.login.card",
        "sw.rpc.accounts.card.register-admin",
        "sw.rpc.accounts.operators.add-card",
        "sw.rpc.registration.cardless.submit",
        "sw.rpc.registration.cardless.resubmit",
        "sw.rpc.review.tasks.decide",
        "sw.rpc.review.tasks.claim",
        "sw.rpc.review.tasks.assign",
        "sw.rpc.accounts.staff.login",
        "sw.rpc.accounts.staff.add",
        "sw.rpc.accounts.staff.disable",
        # --- My IC card (issue 9) ---
        "sw.rpc.accounts.card.bind",
        "sw.rpc.accounts.card.unbind",
        "sw.rpc.accounts.account.update",
        "sw.rpc.accounts.password.change",
        "sw.rpc.accounts.operators.add",
        "sw.rpc.accounts.operators.update",
        "sw.rpc.accounts.operators.disable",
        "sw.rpc.accounts.operators.enable",
        "sw.rpc.accounts.operators.delete",
        "sw.rpc.accounts.operators.reset-password",
        # issue 9: one-time codes
        "sw.rpc.accounts.mobile.change",
        "sw.rpc.accounts.mobile.verify",
        "sw.rpc.accounts.individuals.register",
        "sw.rpc.accounts.individuals.activate",
        # --- customs filing (issue 11) ---
        "sw.rpc.filing.submit",
        "sw.rpc.filing.drafts.save",
        "sw.rpc.filing.records.import",
        # --- qualifications and permissions (issue 10) ---
        "sw.rpc.accounts.qualifications.save",
        "sw.rpc.accounts.permissions.revoke",
        "sw.rpc.accounts.permissions.restore",
    } <= changing


def test_the_asyncapi_documents_name_the_header_on_state_changing_requests_only() -> None:
    from singlewindow.registration.handlers import routes
    from singlewindow.runtime.asyncapi import document

    messages = document(routes, title="registration")["components"]["messages"]
    submit = messages["sw.rpc.registration.cardless.submit:Request"]
    assert set(submit["headers"]["properties"]) == {IDEMPOTENCY_HEADER}
    assert "headers" not in messages["sw.rpc.registration.application.show:Request"]
