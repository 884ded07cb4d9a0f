"""Watching the readers: cards inserted and removed become events, through the outbox.

``CardMonitor`` blocks in ``SCardGetStatusChange``, so it runs in a thread of its own that hands
each change to the event loop; ``stop`` cancels the pending wait (``SCardCancel``) and joins it.
While pcscd is not there the thread looks for it again every few seconds. An inserted card is
read (without PIN, under the reader's lock, so it never collides with a request) for its number
and type.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Final

import structlog
from singlewindow.card_gateway.apdu import PcscUnavailable
from singlewindow.card_gateway.gateway import CardGateway, read_identity
from singlewindow.card_gateway.pcsc import CardEvent, CardMonitor
from singlewindow.contracts import card_gateway as contract
from singlewindow.contracts.errors import DomainError
from singlewindow.runtime.service import Service

log = structlog.get_logger("singlewindow.card_gateway.monitor")

WAIT_SECONDS: Final = 5.0


class ReaderWatch:
    """The monitor thread and the task that announces what it sees."""

    def __init__(self, service: Service, gateway: CardGateway, retry_seconds: float) -> None:
        self._service = service
        self._gateway = gateway
        self._retry = retry_seconds
        self._stop = threading.Event()
        self._monitor: CardMonitor | None = None
        self._monitor_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self.pcsc_error: str | None = None
        """Why the monitor cannot watch (pcscd not running), or None while it watches."""

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[CardEvent] = asyncio.Queue()
        self._thread = threading.Thread(
            target=self._watch, args=(loop, queue), name="card-monitor", daemon=True
        )
        self._thread.start()
        self._task = asyncio.create_task(self._announce_all(queue))

    async def stop(self) -> None:
        self._stop.set()
        with self._monitor_lock:
            if self._monitor is not None:
                with contextlib.suppress(Exception):
                    self._monitor.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _watch(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[CardEvent]) -> None:
        while not self._stop.is_set():
            try:
                monitor = CardMonitor()
            except PcscUnavailable as exc:
                self._unavailable(str(exc))
                self._stop.wait(self._retry)
                continue
            with self._monitor_lock:
                self._monitor = monitor
            if self.pcsc_error is not None or monitor.initial:
                log.info(
                    "watching the card readers",
                    readers=[state.name for state in monitor.initial],
                )
            self.pcsc_error = None
            try:
                while not self._stop.is_set():
                    for event in monitor.wait(WAIT_SECONDS):
                        loop.call_soon_threadsafe(queue.put_nowait, event)
            except PcscUnavailable as exc:
                self._unavailable(str(exc))
            except Exception:
                log.exception("the card monitor failed; starting it again")
            finally:
                with self._monitor_lock:
                    self._monitor = None
                monitor.close()
            self._stop.wait(self._retry)

    def _unavailable(self, reason: str) -> None:
        if self.pcsc_error is None:
            log.warning("cannot watch the card readers; will try again", reason=reason)
        self.pcsc_error = reason

    async def _announce_all(self, queue: asyncio.Queue[CardEvent]) -> None:
        while True:
            event = await queue.get()
            try:
                await self._announce(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cannot announce a card event", reader=event.reader, kind=event.kind)

    async def _announce(self, event: CardEvent) -> None:
        if event.kind == "removed":
            log.info("card removed", reader=event.reader)
            await self._emit_removed(event.reader)
            return
        data = None
        try:
            data = await self._gateway.run(event.reader, read_identity, wait=True)
        except DomainError as exc:  # gone again already, or held by another program
            log.info("inserted card not read", reader=event.reader, reason=exc.message)
        log.info(
            "card inserted",
            reader=event.reader,
            card_number=data.card_number if data else None,
            card_type=data.card_type.value if data else None,
        )
        inserted = contract.CardInserted(
            reader=event.reader,
            atr=(event.atr or b"").hex().upper(),
            card_number=data.card_number if data else None,
            card_type=data.card_type.value if data else None,
        )
        async with self._service.db.transaction() as connection:
            await self._service.emit(
                connection,
                contract.CARD_INSERTED,
                inserted,
                subject=data.enterprise_uscc if data else None,
            )
        self._service.outbox.wake()

    async def _emit_removed(self, reader: str) -> None:
        async with self._service.db.transaction() as connection:
            await self._service.emit(
                connection, contract.CARD_REMOVED, contract.CardRemoved(reader=reader), subject=None
            )
        self._service.outbox.wake()
