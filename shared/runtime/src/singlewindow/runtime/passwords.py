"""Passwords: argon2id with explicit parameters, hashed off the event loop, and the policy.

The policy follows NIST SP 800-63B: a minimum length, long passphrases accepted, no composition
rules, NFKC normalisation, and a blocklist of common passwords and of the account's own name.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from singlewindow.runtime.argon2pool import Argon2Hasher, Argon2Pool
from singlewindow.runtime.db import settle_held

MAX_LENGTH = 256

T = TypeVar("T")


@dataclass(frozen=True)
class Argon2Parameters:
    """argon2id cost; the defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane)."""

    memory_kib: int = 19 * 1024
    time_cost: int = 2
    parallelism: int = 1

    def hasher(self) -> PasswordHasher:
        """A hasher with exactly these parameters."""
        return PasswordHasher(
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )


def normalise(password: str) -> str:
    """NFKC, so the same password typed on another keyboard or input method still matches."""
    return unicodedata.normalize("NFKC", password)


@cache
def common_passwords() -> frozenset[str]:
    """The blocklist of passwords attackers try first."""
    text = files("singlewindow.runtime").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


def policy_problem(password: str, *, account: str, min_length: int = 8) -> str | None:
    """Why `password` is not acceptable for `account`, or None if it is."""
    candidate = normalise(password)
    if len(candidate) < min_length:
        return f"must be at least {min_length} characters"
    if len(candidate) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if candidate.isspace():
        return "must not be only spaces or other whitespace"
    folded = candidate.casefold()
    if folded in common_passwords():
        return "is too common; choose a less guessable password"
    if account and account.casefold() in folded:
        return "must not contain the account name"
    return None


class PasswordHashing:
    """Hashes and verifies in worker threads, so a login never stalls the event loop.

    The threads are a pool of their own, one per core by default: a burst of logins queues for
    them instead of running dozens of 19 MiB hashes at once past the container's memory limit.
    Each thread keeps its 19 MiB while there is work and gives it back, and ends, after
    `idle_seconds` without any (see `argon2pool`).
    """

    def __init__(
        self,
        parameters: Argon2Parameters | None = None,
        *,
        max_concurrent: int | None = None,
        idle_seconds: float = 2.0,
    ) -> None:
        self.parameters = parameters or Argon2Parameters()
        self._hasher = self.parameters.hasher()
        self._argon2 = Argon2Hasher(self._hasher)
        workers = max_concurrent or len(os.sched_getaffinity(0))
        self.pool = Argon2Pool(workers, retain=self._argon2.memory_bytes, idle_seconds=idle_seconds)

    async def hash(self, password: str) -> str:
        """The argon2id hash of `password`."""
        return await self._run(self._argon2.hash, normalise(password))

    async def verify(self, stored_hash: str, password: str) -> bool:
        """Whether `password` matches `stored_hash`."""
        return await self._run(self._verify, stored_hash, normalise(password))

    def hash_blocking(self, password: str) -> str:
        """The argon2id hash of `password`, made in the calling thread (start-up, not a loop)."""
        return self._argon2.hash(normalise(password))

    async def _run(self, function: Callable[..., T], *args: str) -> T:
        await settle_held()  # no write lock held while the hash takes its time
        return await asyncio.wrap_future(self.pool.submit(function, *args))

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether `stored_hash` was made with weaker parameters than the current ones."""
        return self._hasher.check_needs_rehash(stored_hash)
