"""The filing service: settings → service runtime → routes → ASGI app with health and docs."""

# First, before anything imports structlog, which then leaves rich out (see observability).
import singlewindow.runtime.observability  # noqa: F401

# isort: split
import asyncio
from pathlib import Path

import structlog
from singlewindow.contracts import filing, review
from singlewindow.filing.dependencies import Filing
from singlewindow.filing.handlers import expire_lapsed, routes
from singlewindow.filing.repository import metadata
from singlewindow.filing.settings import Settings
from singlewindow.runtime.service import Service

settings = Settings()
service = Service(filing.SERVICE, settings, metadata)
deps = Filing(service=service, settings=settings)
service.include(routes, deps)
app = service.app(
    Path(__file__).parent / "migrations",
    (filing.STREAM, review.STREAM, review.REQUESTS_STREAM),
    title="Single Window filing service",
)
_sweeps: set[asyncio.Task[None]] = set()
log = structlog.get_logger("singlewindow.filing.app")


async def _sweep_expired() -> None:
    while True:
        await asyncio.sleep(settings.expiry_sweep_seconds)
        try:
            await expire_lapsed(deps)
        except Exception:  # the next sweep tries again
            log.exception("expiry sweep failed; the next one tries again")


@app.on_startup
async def start_expiry_sweep() -> None:
    """Mark temporary filings past their year expired, every `expiry_sweep_seconds`."""
    task = asyncio.create_task(_sweep_expired())
    _sweeps.add(task)
    task.add_done_callback(_sweeps.discard)
