"""The accounts service: settings → service runtime → routes → ASGI app with health and docs."""

# First, before anything imports structlog, which then leaves rich out (see observability).
import singlewindow.runtime.observability  # noqa: F401

# isort: split
from pathlib import Path

from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.accounts.handlers import routes
from singlewindow.accounts.settings import Settings
from singlewindow.accounts.staff import bootstrap_admin
from singlewindow.accounts.tables import metadata
from singlewindow.contracts import accounts, filing, registration
from singlewindow.runtime.passwords import PasswordHashing
from singlewindow.runtime.service import Service

settings = Settings()
if problem := settings.startup_problem():
    raise SystemExit(f"accounts service not started: {problem}")
service = Service(accounts.SERVICE, settings, metadata)
app = service.app(
    Path(__file__).parent / "migrations",
    (
        accounts.STREAM,
        accounts.AUDIT_STREAM,
        accounts.NOTIFY_STREAM,
        registration.STREAM,
        filing.STREAM,  # customs filing (issue 11): customs codes
    ),
    title="Single Window accounts service",
)
runtime = AccountsRuntime.of(service, settings, PasswordHashing())
service.include(routes, runtime)


@app.on_startup
async def create_bootstrap_admin() -> None:
    """The deployment's first platform administrator, once migrations ran, before any request."""
    await bootstrap_admin(runtime)


# --- qualifications and permissions (issue 10) ---
@app.on_startup
async def reseal_secrets() -> None:
    """Seal again under the current key what an older key sealed (key rotation)."""
    from singlewindow.accounts.qualifications import reseal_secrets

    await reseal_secrets(runtime)
