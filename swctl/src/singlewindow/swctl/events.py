"""`swctl events tail`: every platform event as it arrives, as an integrating system sees it.

It follows the streams until Ctrl-C, `--limit` events, or `--idle-timeout` quiet seconds. Each
event is a CloudEvent: one JSON line each as it arrives (`--jsonl`, and without a format option),
or, with `--json`, one JSON array of them all printed when the tail ends, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow.contracts import accounts, filing, registration, review
from singlewindow.swctl.client import OPERATOR, SUBSCRIBER, Client

PUBLIC_STREAMS = (registration.STREAM, review.STREAM, accounts.STREAM, filing.STREAM)


async def tail(args: argparse.Namespace, client: Client) -> None:
    """Print the events until interrupted, a limit, or the idle timeout."""
    nc = await client.connect(OPERATOR if args.audit else SUBSCRIBER)
    js = nc.jetstream()
    streams = (accounts.AUDIT_STREAM,) if args.audit else PUBLIC_STREAMS
    policy = DeliverPolicy.ALL if args.from_start else DeliverPolicy.NEW
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(msg: object) -> None:
        await queue.put(msg.data)  # type: ignore[attr-defined]

    collected: list[Any] = []
    subscriptions = []
    try:
        for stream in streams:
            for subject in stream.subjects:
                subscriptions.append(
                    await js.subscribe(
                        subject,
                        stream=stream.name,
                        ordered_consumer=True,
                        config=ConsumerConfig(deliver_policy=policy),
                        cb=collect,
                    )
                )
        while args.limit is None or len(collected) < args.limit:
            try:
                data = await asyncio.wait_for(queue.get(), timeout=args.idle_timeout)
            except TimeoutError:
                break
            event = json.loads(data)
            collected.append(event)
            if not args.json:
                sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
                sys.stdout.flush()
    except asyncio.CancelledError:
        # Ctrl-C: what arrived so far is the answer.
        if args.json:
            _print_array(collected)
        raise
    finally:
        for subscription in subscriptions:
            await subscription.unsubscribe()
    if args.json:
        _print_array(collected)


def _print_array(events: list[Any]) -> None:
    sys.stdout.write(json.dumps(events, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()
