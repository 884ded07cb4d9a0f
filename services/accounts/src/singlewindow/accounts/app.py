"""The accounts service: settings → service runtime → routes → ASGI app with health and docs."""

from pathlib import Path

from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.handlers import routes
from singlewindow.accounts.settings import Settings
from singlewindow.accounts.tables import metadata
from singlewindow.contracts import accounts, registration
from singlewindow.runtime.passwords import PasswordHashing
from singlewindow.runtime.service import Service

settings = Settings()
if problem := settings.startup_problem():
    raise SystemExit(f"accounts service not started: {problem}")
service = Service(accounts.SERVICE, settings, metadata)
app = service.app(
    Path(__file__).parent / "migrations",
    (accounts.STREAM, accounts.AUDIT_STREAM, registration.STREAM),
    title="Single Window accounts service",
)
service.include(routes, AccountsRuntime.of(service, settings, PasswordHashing()))
