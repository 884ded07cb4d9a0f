"""Token buckets per client address and per account name, on the injected clock.

A refused request is answered by the gateway itself: it never reaches NATS, so no argon2id work
starts for it.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

from singlewindow.runtime.clock import Clock


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`limit` requests per `window` seconds for each key, refilled evenly; bursts up to `limit`."""

    def __init__(self, limit: int, window: float, clock: Clock, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.rate = limit / window
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _seconds(self) -> float:
        return self.clock.now().timestamp()

    def retry_after(self, key: str) -> int | None:
        """Take one token from `key`'s bucket: None if allowed, else whole seconds to wait."""
        if self.limit <= 0:
            return None
        now = self._seconds()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.limit), at=now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.limit, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def check(self, *keys: str) -> int | None:
        """Take a token for every key; the longest wait if any refuses."""
        waits = [wait for key in keys if (wait := self.retry_after(key)) is not None]
        return max(waits) if waits else None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """The trusted proxies' networks (`10.0.0.1`, `10.0.0.0/8`, `::1`)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The client's address: the socket's peer, or the nearest untrusted address of
    `X-Forwarded-For` when the peer (and the hops after it) are trusted proxies."""
    address = peer or "unknown"

    def is_trusted(candidate: str) -> bool:
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not forwarded_for or not is_trusted(address):
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        address = hop
        if not is_trusted(hop):
            break
    return address
