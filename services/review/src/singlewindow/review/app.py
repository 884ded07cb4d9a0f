"""The review service: settings → service runtime → routes → ASGI app with health and docs."""

# First, before anything imports structlog, which then leaves rich out (see observability).
import singlewindow.runtime.observability  # noqa: F401

# isort: split
from pathlib import Path

from singlewindow.contracts import review
from singlewindow.review.dependencies import Review
from singlewindow.review.handlers import routes
from singlewindow.review.repository import metadata
from singlewindow.review.settings import Settings
from singlewindow.runtime.service import Service

settings = Settings()
service = Service(review.SERVICE, settings, metadata)
service.include(routes, Review(service=service, settings=settings))
app = service.app(
    Path(__file__).parent / "migrations",
    (review.STREAM, review.REQUESTS_STREAM),
    title="Single Window review service",
)
