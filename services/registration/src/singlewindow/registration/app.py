"""The registration service: settings → service runtime → routes → ASGI app with health and docs."""

# First, before anything imports structlog, which then leaves rich out (see observability).
import singlewindow.runtime.observability  # noqa: F401

# isort: split
from pathlib import Path

from singlewindow.contracts import registration, review
from singlewindow.registration.dependencies import Registration
from singlewindow.registration.handlers import routes
from singlewindow.registration.repository import metadata
from singlewindow.registration.settings import Settings
from singlewindow.runtime.passwords import PasswordHashing
from singlewindow.runtime.service import Service

settings = Settings()
service = Service(registration.SERVICE, settings, metadata)
service.include(
    routes, Registration(service=service, settings=settings, passwords=PasswordHashing())
)
app = service.app(
    Path(__file__).parent / "migrations",
    (registration.STREAM, review.STREAM, review.REQUESTS_STREAM),
    title="Single Window registration service",
)
