"""Structured JSON logs with a correlation id, and the Prometheus metrics every service exports."""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram

# structlog's package imports its development console renderer, and that imports rich (with
# pygments), better_exceptions and colorama wherever they are installed: some 4.5 MiB in every
# service process of the development environment, where schemathesis brings rich in. The services
# only write JSON lines. A service's app module imports this module before anything imports
# structlog, so the renderer finds them absent and falls back to plain tracebacks.
_CONSOLE_ONLY = ("rich", "better_exceptions", "colorama")


@contextlib.contextmanager
def _absent(names: tuple[str, ...]) -> Iterator[None]:
    """Make `import name` fail inside the block for those of `names` not yet imported.

    A None entry in `sys.modules` is the import system's own way to say a module is missing
    (`import` raises ModuleNotFoundError); the entries are taken out again after the block, so a
    later import of the same module (a test tool that wants rich) loads it as usual.
    """
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


with _absent(_CONSOLE_ONLY):
    import structlog

REQUESTS = Counter(
    "sw_requests_total", "Requests answered, by subject and outcome", ["subject", "outcome"]
)
REQUEST_SECONDS = Histogram("sw_request_seconds", "Time to answer a request", ["subject"])
EVENTS_CONSUMED = Counter(
    "sw_events_consumed_total", "Events consumed, by consumer and outcome", ["consumer", "outcome"]
)
OUTBOX_PUBLISHED = Counter(
    "sw_outbox_published_total", "Events relayed from the outbox to JetStream"
)
OUTBOX_PENDING = Gauge("sw_outbox_pending", "Events committed but not yet relayed")
OUTBOX_PARKED = Counter(
    "sw_outbox_parked_total", "Events parked in the outbox because no stream accepted them"
)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send JSON lines to stdout, one per event, each with the service name and correlation id.

    structlog renders and writes its own lines; libraries that log through the standard library
    (uvicorn, alembic, nats) come out as the same JSON lines through its formatter. Passing
    structlog's lines through the standard library too (a record, the handler's lock, the
    formatter's second pass) tripled the cost of a line: 53 against 17 us, the gateway's access
    line being a seventh of its CPU per request.
    """
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(ensure_ascii=False),
            ],
        )
    )
    logging.basicConfig(handlers=[handler], level=level.upper(), force=True)
    # The lines carry no source location, thread or process: don't collect them for every record
    # (the logging HOWTO's "Optimization": finding the caller walks the stack on each line).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in ("alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.WriteLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def bind_correlation_id(correlation_id: str | None) -> str:
    """Make `correlation_id` (or a new one) part of every log line of the current task."""
    cid = correlation_id or str(uuid.uuid4())
    structlog.contextvars.bind_contextvars(correlation_id=cid)
    return cid


def current_correlation_id() -> str | None:
    """The correlation id bound to the current task, if any."""
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return value if isinstance(value, str) else None
