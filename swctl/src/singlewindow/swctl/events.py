"""`swctl events tail`: every platform event as it arrives, as an integrating system sees it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import BaseModel
from singlewindow.contracts import accounts, registration, review
from singlewindow.swctl.client import Client

PUBLIC_STREAMS = (registration.STREAM, review.STREAM, accounts.STREAM)


async def tail(args: argparse.Namespace, client: Client) -> BaseModel | None:
    """Print each event as one JSON line (a CloudEvent), until interrupted or a limit is reached."""
    nc = await client.connect()
    js = nc.jetstream()
    streams = (accounts.AUDIT_STREAM,) if args.audit else PUBLIC_STREAMS
    policy = DeliverPolicy.ALL if args.from_start else DeliverPolicy.NEW
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(msg: object) -> None:
        await queue.put(msg.data)  # type: ignore[attr-defined]

    subscriptions = []
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
    printed = 0
    try:
        while args.limit is None or printed < args.limit:
            try:
                data = await asyncio.wait_for(queue.get(), timeout=args.idle_timeout)
            except TimeoutError:
                break
            event = json.loads(data)
            sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            printed += 1
    finally:
        for subscription in subscriptions:
            await subscription.unsubscribe()
    return None
