"""The card-gateway service: settings → service runtime → routes → reader monitor → ASGI app."""

from __future__ import annotations

# First, before anything imports structlog, which then leaves rich out (see observability).
import singlewindow.runtime.observability  # noqa: F401

# isort: split
import asyncio
from pathlib import Path
from typing import Any

from singlewindow.card_gateway.dependencies import Gateway
from singlewindow.card_gateway.gateway import CardGateway, reader_states
from singlewindow.card_gateway.handlers import routes
from singlewindow.card_gateway.monitor import ReaderWatch
from singlewindow.card_gateway.repository import metadata
from singlewindow.card_gateway.settings import Settings
from singlewindow.contracts import card_gateway
from singlewindow.runtime.service import Service

PCSC_PROBE_SECONDS = 1.0

settings = Settings()
service = Service(card_gateway.SERVICE, settings, metadata)
cards = CardGateway(busy_wait=settings.busy_wait_seconds)
watch = ReaderWatch(service, cards, settings.monitor_retry_seconds)
service.include(routes, Gateway(service=service, settings=settings, cards=cards))


async def pcsc_state() -> dict[str, Any]:
    """What PC/SC looks like now: informative only, readiness does not depend on it."""
    try:
        async with asyncio.timeout(PCSC_PROBE_SECONDS):
            states = await asyncio.to_thread(reader_states)
    except TimeoutError:
        return {"pcsc": {"state": "unavailable", "detail": "pcscd did not answer", "readers": []}}
    except Exception as exc:
        return {"pcsc": {"state": "unavailable", "detail": str(exc), "readers": []}}
    return {
        "pcsc": {
            "state": "available" if states else "no readers",
            "readers": [{"name": s.name, "card_present": s.card_present} for s in states],
        }
    }


app = service.app(
    Path(__file__).parent / "migrations",
    (card_gateway.STREAM,),
    title="Single Window card-gateway service",
    readiness_details=pcsc_state,
)


@app.after_startup
async def start_watching() -> None:
    if settings.monitor:
        watch.start()


@app.on_shutdown
async def stop_watching() -> None:
    await watch.stop()
