"""The registration service: settings → service runtime → router → ASGI app with health and docs."""

from pathlib import Path

from singlewindow.registration.dependencies import Registration
from singlewindow.registration.handlers import router
from singlewindow.registration.repository import metadata
from singlewindow.registration.settings import Settings
from singlewindow.shared.contracts import registration, review
from singlewindow.shared.passwords import PasswordHashing
from singlewindow.shared.service import Service

settings = Settings()
service = Service(registration.SERVICE, settings, metadata)
service.broker.include_router(router)
app = service.app(
    Path(__file__).parent / "migrations",
    (registration.STREAM, review.STREAM),
    title="Single Window registration service",
)
app.context.set_global(
    "registration", Registration(service=service, settings=settings, passwords=PasswordHashing())
)
