"""The review service: settings → service runtime → routes → ASGI app with health and docs."""

from pathlib import Path

from singlewindow.review.dependencies import Review
from singlewindow.review.handlers import routes
from singlewindow.review.repository import metadata
from singlewindow.review.settings import Settings
from singlewindow.shared.contracts import review
from singlewindow.shared.service import Service

settings = Settings()
service = Service(review.SERVICE, settings, metadata)
service.include(routes, Review(service=service, settings=settings))
app = service.app(
    Path(__file__).parent / "migrations",
    (review.STREAM, review.REQUESTS_STREAM),
    title="Single Window review service",
)
