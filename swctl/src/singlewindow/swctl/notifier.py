"""The development notifier: what an SMS gateway does, into a file.

`swctl up` runs it as its own process with the `notifier` NATS credential, the only one that may
read the notification stream (SW_NOTIFY). It follows the stream through its durable consumer and
appends each message as one JSON line to `<data dir>/messages.jsonl` (0600), acknowledging a
message only once its line is written, so a message is never lost; one delivered again is
recognised by its event id and written once. `swctl dev messages` prints the file.

    python -m singlewindow.swctl.notifier --data-dir var
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MESSAGES_FILE = "messages.jsonl"
CREDENTIALS_VARIABLE = "SW_NOTIFIER_NATS_CREDENTIALS_FILE"
URL_VARIABLE = "SW_NOTIFIER_NATS_URL"
FETCH_SECONDS = 5.0


def messages_file(data_dir: Path) -> Path:
    """Where the development notifier writes the messages of the platform in `data_dir`."""
    return data_dir / MESSAGES_FILE


def seen_ids(path: Path) -> set[str]:
    """The event ids already written to `path`."""
    seen: set[str] = set()
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                seen.add(str(json.loads(line)["id"]))
    return seen


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to `path` (made 0600), on disk before returning."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(descriptor).st_size
        if size and os.pread(descriptor, 1, size - 1) != b"\n":
            line = b"\n" + line  # after a line a crash cut short: start a fresh one
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def record_of(body: bytes) -> dict[str, Any]:
    """The line written for a message: the CloudEvent's id and time, and what to send."""
    event = json.loads(body)
    data = event.get("data") or {}
    return {
        "id": event.get("id"),
        "time": event.get("time"),
        "received_at": datetime.now(UTC).isoformat(),
        "to": data.get("to"),
        "kind": data.get("kind"),
        "account": data.get("account"),
        "text": data.get("text"),
    }


def load_credential() -> dict[str, str]:
    """The notifier's NATS credential (`swctl up` writes it), the URL the platform gives."""
    credential = json.loads(Path(os.environ[CREDENTIALS_VARIABLE]).read_text(encoding="utf-8"))
    url = os.environ.get(URL_VARIABLE) or credential["url"]
    return {"url": url, "user": credential["user"], "password": credential["password"]}


async def run(data_dir: Path, credential: dict[str, str], stop: asyncio.Event) -> None:
    """Write every message of the stream to the file until `stop` is set."""
    import nats
    from nats.errors import TimeoutError as NatsTimeoutError
    from nats.js.errors import NotFoundError
    from singlewindow.contracts.bus import inbox_prefix
    from singlewindow.contracts.notify import NOTIFIER_DURABLE, STREAM

    nc = await nats.connect(
        credential["url"],
        user=credential["user"],
        password=credential["password"],
        name="singlewindow-notifier",
        inbox_prefix=inbox_prefix(credential["user"]).encode(),
        max_reconnect_attempts=-1,
    )
    path = messages_file(data_dir)
    seen = await asyncio.to_thread(seen_ids, path)
    try:
        js = nc.jetstream(timeout=5)
        while True:
            try:
                await js.stream_info(STREAM.name)
                break
            except (NotFoundError, NatsTimeoutError):
                # Accounts creates the stream; wait for it without giving up.
                if await _stopped(stop, 1.0):
                    return
        pull = await js.pull_subscribe(
            STREAM.subjects[0], durable=NOTIFIER_DURABLE, stream=STREAM.name
        )
        print(f"notifier ready: writing {path}", flush=True)
        while not stop.is_set():
            fetch = asyncio.ensure_future(pull.fetch(10, timeout=FETCH_SECONDS))
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if fetch not in done:
                fetch.cancel()
                with contextlib.suppress(BaseException):
                    await fetch
                break
            stopping.cancel()
            try:
                messages = fetch.result()
            except TimeoutError:  # nats-py's, or asyncio's when its deadline ran out mid-fetch
                continue
            for message in messages:
                try:
                    record = record_of(message.data)
                except ValueError:
                    print("notifier: a message that is not JSON, dropped", flush=True)
                    await message.term()
                    continue
                if record["id"] not in seen:
                    append_line(path, record)
                    seen.add(str(record["id"]))
                await message.ack()
                # Never the text: it holds the code.
                print(f"notifier: {record['kind']} message written", flush=True)
    finally:
        await nc.close()


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def main_async(data_dir: Path, credential: dict[str, str]) -> None:
    """Run until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run(data_dir, credential, stop)


def main(argv: list[str] | None = None) -> int:
    """The notifier's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.data_dir, load_credential()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
