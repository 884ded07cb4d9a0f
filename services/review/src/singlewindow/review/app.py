"""The review service: settings → service runtime → router → ASGI app with health and docs."""

from pathlib import Path

from singlewindow.review.dependencies import Review
from singlewindow.review.handlers import router
from singlewindow.review.repository import metadata
from singlewindow.review.settings import Settings
from singlewindow.shared.contracts import registration, review
from singlewindow.shared.service import Service

settings = Settings()
service = Service(review.SERVICE, settings, metadata)
service.broker.include_router(router)
app = service.app(
    Path(__file__).parent / "migrations",
    (review.STREAM, registration.STREAM),
    title="Single Window review service",
)
app.context.set_global("review", Review(service=service, settings=settings))
