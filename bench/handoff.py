"""The event loop's CPU per hand-off to a thread and back, as a database trip makes it.

`run_in_executor` (an executor future, its lock, two futures chained) against what
`runtime/onetrip.py` does: a job on a `queue.SimpleQueue`, the outcome back with one
`call_soon_threadsafe`. Medians of 5 runs of 20,000 trivial calls each, printed as the loop
thread's CPU microseconds per call (`time.thread_time`). Run: `uv run python bench/handoff.py`.
"""

from __future__ import annotations

import asyncio
import queue
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CALLS = 20_000
RUNS = 5


def nothing() -> int:
    return 1


async def through_executor() -> float:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as executor:
        start = time.thread_time()
        for _ in range(CALLS):
            await loop.run_in_executor(executor, nothing)
        return (time.thread_time() - start) / CALLS


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():
        future.set_result(result)


async def through_queue() -> float:
    jobs: queue.SimpleQueue[asyncio.Future[Any] | None] = queue.SimpleQueue()
    loop = asyncio.get_running_loop()

    def serve() -> None:
        while (future := jobs.get()) is not None:
            loop.call_soon_threadsafe(_settle, future, nothing())

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    start = time.thread_time()
    for _ in range(CALLS):
        future = loop.create_future()
        jobs.put(future)
        await future
    used = time.thread_time() - start
    jobs.put(None)
    worker.join()
    return used / CALLS


async def main() -> None:
    executor, simple = [], []
    for _ in range(RUNS):
        executor.append(await through_executor())
        simple.append(await through_queue())
    old, new = statistics.median(executor) * 1e6, statistics.median(simple) * 1e6
    print(f"event-loop CPU per hand-off: run_in_executor {old:.1f} us, queue {new:.1f} us")
    print(f"ratio queue / run_in_executor: {new / old:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
