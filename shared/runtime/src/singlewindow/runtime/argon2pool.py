"""argon2id in a pool of threads that each keep their working memory while busy.

argon2 allocates its memory (19 MiB at the platform's parameters) on every hash. glibc either
keeps such blocks in each thread's arena for good, or, told to map them (`MALLOC_MMAP_THRESHOLD_`),
maps and unmaps them on every hash and pays about 4,900 page faults each time. Here argon2 gets
its memory through `argon2_context`'s allocation callbacks from a mapping its thread keeps, already
faulted in, between hashes; the thread unmaps it and ends once it has had nothing to do for
`idle_seconds`, so an idle service holds none.

The hashes are the standard PHC strings argon2-cffi's `PasswordHasher` makes and verifies, in
either direction. A stored hash in a form this module does not write itself (another encoding of
the same numbers, an old version without `v=`) is verified by argon2-cffi instead, so what is
accepted is exactly what `PasswordHasher.verify` accepts.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hmac
import mmap
import os
import re
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import (
    HashingError,
    VerificationError,
    VerifyMismatchError,
)
from argon2.low_level import ARGON2_VERSION, core, error_to_str, ffi

T = TypeVar("T")

ARGON2_OK: Final = 0
HUGE_PAGE: Final = 2 * 1024 * 1024
PAGE: Final = mmap.PAGESIZE
_TYPES: Final = {"argon2id": Type.ID, "argon2i": Type.I, "argon2d": Type.D}
_NUMBER = r"(0|[1-9][0-9]{0,9})"
# Only the exact form argon2 itself writes; anything else goes to argon2-cffi (see verify).
_ENCODED = re.compile(
    rf"\$(argon2id|argon2i|argon2d)\$v=(16|19)\$m={_NUMBER},t={_NUMBER},p={_NUMBER}"
    r"\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)",
    re.ASCII,
)


class WorkingMemory:
    """One thread's argon2 memory: an anonymous mapping kept between hashes, up to `retain`.

    The mapping is 2 MiB aligned and marked for transparent huge pages (where the kernel offers
    them on request), which spares the TLB misses of argon2's random reads over 4,864 small pages.
    A hash that needs more than `retain` bytes gets a mapping of its own, unmapped when it ends.
    """

    def __init__(self, retain: int) -> None:
        self.retain = retain
        self._kept: _Mapping | None = None
        self._once: dict[int, _Mapping] = {}

    @property
    def kept_bytes(self) -> int:
        """Bytes mapped and kept for the next hash (0 once released)."""
        return self._kept.size if self._kept else 0

    def allocate(self, size: int) -> Any:
        """A pointer to `size` writable bytes."""
        if size > self.retain:
            mapping = _Mapping(size)
            self._once[mapping.address] = mapping
            return mapping.pointer
        if self._kept is None or self._kept.size < size:
            self.release()
            self._kept = _Mapping(max(size, self.retain))
        return self._kept.pointer

    def free(self, address: int) -> None:
        """argon2 is done with the memory at `address` (it has already wiped it)."""
        mapping = self._once.pop(address, None)
        if mapping:
            mapping.close()

    def release(self) -> None:
        """Give the kept mapping back to the system."""
        if self._kept:
            self._kept.close()
            self._kept = None


class _Mapping:
    def __init__(self, size: int) -> None:
        self.size = size
        self._map = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._buffer = ffi.from_buffer("uint8_t[]", self._map)
        base = int(ffi.cast("uintptr_t", self._buffer))
        offset = -base % HUGE_PAGE
        with contextlib.suppress(AttributeError, OSError):  # a kernel without THP
            self._map.madvise(mmap.MADV_HUGEPAGE, offset, size)
        self.pointer = self._buffer + offset
        self.address = base + offset
        for page in range(offset, offset + size, PAGE):
            self._map[page] = 0  # fault it in now, in one pass, rather than during the hash

    def close(self) -> None:
        ffi.release(self._buffer)
        self._map.close()


_thread = threading.local()


def _memory() -> WorkingMemory:
    memory: WorkingMemory = _thread.memory
    return memory


def _allocate(memory: Any, size: int) -> int:
    memory[0] = ffi.NULL  # argon2 reports ARGON2_MEMORY_ALLOCATION_ERROR if it stays NULL
    try:
        memory[0] = _memory().allocate(size)
    except OSError:  # ENOMEM, as malloc's NULL would be
        return -1
    return ARGON2_OK


def _free(memory: Any, size: int) -> None:
    _memory().free(int(ffi.cast("uintptr_t", memory)))


# Module-level, so that the C function pointers live as long as the module.
_allocate_callback = ffi.callback("allocate_fptr", _allocate, error=-1)
_free_callback = ffi.callback("deallocate_fptr", _free)


class Argon2Hasher:
    """`hasher`'s hash and verify, with argon2's memory from the calling thread's `WorkingMemory`.

    Both block; they are meant to run in an `Argon2Pool`'s threads (elsewhere, each call maps
    memory for itself). `hasher` also verifies the hashes this class does not parse itself.
    """

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher

    @property
    def memory_bytes(self) -> int:
        """What one hash with these parameters asks its allocator for."""
        return memory_bytes(self.hasher.memory_cost, self.hasher.parallelism)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        """The PHC-encoded hash of `password`, with a fresh random salt unless given one."""
        hasher = self.hasher
        salt = salt or os.urandom(hasher.salt_len)
        digest = raw_hash(
            _bytes(password),
            salt,
            hasher.type,
            ARGON2_VERSION,
            hasher.memory_cost,
            hasher.time_cost,
            hasher.parallelism,
            hasher.hash_len,
        )
        return (
            f"$argon2{hasher.type.name.lower()}$v={ARGON2_VERSION}"
            f"$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
            f"${_b64(salt)}${_b64(digest)}"
        )

    def verify(self, encoded: str, password: str | bytes) -> bool:
        """Whether `password` matches the PHC-encoded hash `encoded`, compared in constant time.

        Raises what `PasswordHasher.verify` raises for what it refuses (`VerificationError`,
        `InvalidHashError`), except that a wrong password is False, not `VerifyMismatchError`.
        """
        found = _ENCODED.fullmatch(encoded) if isinstance(encoded, str) else None
        if found is None or not (fields := _decoded(found)):
            return self._verify_by_argon2_cffi(encoded, password)
        type, version, memory_cost, time_cost, parallelism, salt, expected = fields
        try:
            digest = raw_hash(
                _bytes(password),
                salt,
                type,
                version,
                memory_cost,
                time_cost,
                parallelism,
                len(expected),
            )
        except HashingError as error:  # as argon2_verify's refusal of the same numbers
            raise VerificationError(*error.args) from None
        return hmac.compare_digest(digest, expected)

    def _verify_by_argon2_cffi(self, encoded: str | bytes, password: str | bytes) -> bool:
        try:
            return self.hasher.verify(encoded, password)
        except VerifyMismatchError:
            return False


def raw_hash(
    password: bytes,
    salt: bytes,
    type: Type,
    version: int,
    memory_cost: int,
    time_cost: int,
    parallelism: int,
    hash_len: int,
) -> bytes:
    """argon2's raw output through `argon2_ctx`, its memory from this thread's `WorkingMemory`."""
    temporary = getattr(_thread, "memory", None) is None
    if temporary:
        _thread.memory = WorkingMemory(retain=0)
    out = ffi.new("uint8_t[]", hash_len)
    pwd = ffi.new("uint8_t[]", password)
    salt_buffer = ffi.new("uint8_t[]", salt)
    context = ffi.new(
        "argon2_context *",
        {
            "out": out,
            "outlen": hash_len,
            "pwd": pwd,
            "pwdlen": len(password),
            "salt": salt_buffer,
            "saltlen": len(salt),
            "secret": ffi.NULL,
            "secretlen": 0,
            "ad": ffi.NULL,
            "adlen": 0,
            "t_cost": time_cost,
            "m_cost": memory_cost,
            "lanes": parallelism,
            "threads": parallelism,
            "version": version,
            "allocate_cbk": _allocate_callback,
            "free_cbk": _free_callback,
            "flags": 0,  # ARGON2_DEFAULT_FLAGS, as argon2_hash and argon2_verify use
        },
    )
    try:
        status = core(context, type.value)
    finally:
        if temporary:
            del _thread.memory
    if status != ARGON2_OK:
        raise HashingError(error_to_str(status))
    return bytes(ffi.buffer(out, hash_len))


def memory_bytes(memory_cost: int, parallelism: int) -> int:
    """The bytes argon2_ctx allocates for `memory_cost` KiB over `parallelism` lanes.

    As argon2's core.c rounds it: at least 8 blocks a lane, a whole number of blocks per segment.
    """
    blocks = max(memory_cost, 8 * parallelism)
    return blocks // (4 * parallelism) * 4 * parallelism * 1024


def _decoded(found: re.Match[str]) -> tuple[Type, int, int, int, int, bytes, bytes] | None:
    name, version, memory_cost, time_cost, parallelism, salt, digest = found.groups()
    numbers = int(memory_cost), int(time_cost), int(parallelism)
    raw_salt, raw_digest = _unb64(salt), _unb64(digest)
    if raw_salt is None or raw_digest is None or max(numbers) > 0xFFFFFFFF:
        return None
    return (_TYPES[name], int(version), *numbers, raw_salt, raw_digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes | None:
    """The bytes of unpadded base64 `text`, or None unless it is the one encoding of them."""
    if len(text) % 4 == 1:
        return None
    data = base64.b64decode(text + "=" * (-len(text) % 4))
    return data if _b64(data) == text else None


def _bytes(password: str | bytes) -> bytes:
    return password.encode("utf-8") if isinstance(password, str) else password


class Argon2Pool:
    """At most `workers` threads, started on demand; each ends after `idle_seconds` without work.

    Each thread keeps argon2's working memory (`retain` bytes) while it lives, and unmaps it as it
    ends, so a burst costs one mapping per thread instead of one per hash, and an idle pool holds
    neither threads nor memory.
    """

    def __init__(
        self, workers: int, *, retain: int, idle_seconds: float = 2.0, name: str = "argon2"
    ) -> None:
        self.workers, self.retain, self.idle_seconds, self.name = (
            workers,
            retain,
            idle_seconds,
            name,
        )
        self._jobs: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._changed = threading.Condition()
        self._threads: dict[threading.Thread, WorkingMemory] = {}
        self._waiting = 0
        self._started = 0
        self._closing = False
        _pools.add(self)

    @property
    def threads(self) -> int:
        """Threads alive now."""
        with self._changed:
            return len(self._threads)

    @property
    def kept_bytes(self) -> int:
        """argon2 memory the threads hold between hashes now."""
        with self._changed:
            return sum(memory.kept_bytes for memory in self._threads.values())

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        """Run `function(*args)` in one of the threads; its result or exception in the future."""
        future: Future[T] = Future()
        with self._changed:
            self._jobs.append((future, function, args))
            if self._waiting < len(self._jobs) and len(self._threads) < self.workers:
                self._start()
            self._changed.notify()
        return future

    def close(self) -> None:
        """Let the threads finish the work queued and end now, without waiting to be idle."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join()

    def _start(self) -> None:
        self._started += 1
        # A daemon, so that an idle thread does not hold up the interpreter's exit for
        # idle_seconds; _close_pools still lets a running hash end before the interpreter does.
        thread = threading.Thread(
            target=self._work, name=f"{self.name}_{self._started}", daemon=True
        )
        self._threads[thread] = WorkingMemory(self.retain)
        thread.start()

    def _work(self) -> None:
        with self._changed:
            memory = self._threads[threading.current_thread()]
        _thread.memory = memory
        try:
            while job := self._next():
                future, function, args = job
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(function(*args))
                    except BaseException as error:
                        future.set_exception(error)
                del job, future, function, args
        finally:
            memory.release()  # already, unless the loop itself failed
            del _thread.memory

    def _next(self) -> tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None:
        with self._changed:
            self._waiting += 1
            self._changed.wait_for(lambda: self._jobs or self._closing, self.idle_seconds)
            self._waiting -= 1
            if self._jobs:
                return self._jobs.popleft()
            # Decided under the lock: a job submitted from now on starts a new thread.
            self._threads.pop(threading.current_thread()).release()
            return None


_pools: weakref.WeakSet[Argon2Pool] = weakref.WeakSet()


@atexit.register
def _close_pools() -> None:
    for pool in list(_pools):
        pool.close()
