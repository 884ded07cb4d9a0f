"""argon2id through the pool's reused memory: the same hashes as argon2-cffi, memory given back."""

from __future__ import annotations

import asyncio
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from singlewindow.runtime.argon2pool import Argon2Hasher, Argon2Pool
from singlewindow.runtime.passwords import Argon2Parameters, PasswordHashing

PASSWORD = "correct horse battery"
SALT = bytes(range(16))


def reference() -> PasswordHasher:
    return Argon2Parameters().hasher()


def outcome(verify: Callable[[str, str], bool], stored: str, password: str) -> object:
    """True, False (a mismatch) or the exception class, for comparing two verifiers."""
    try:
        return verify(stored, password)
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError) as error:
        return type(error)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_the_pool_writes_exactly_the_hash_argon2_cffi_writes() -> None:
    assert Argon2Hasher(reference()).hash(PASSWORD, salt=SALT) == reference().hash(
        PASSWORD, salt=SALT
    )


async def test_hashes_verify_both_ways_with_argon2_cffi() -> None:
    hashing = PasswordHashing()
    ours = await hashing.hash(PASSWORD)
    assert reference().verify(ours, PASSWORD)
    assert await hashing.verify(reference().hash(PASSWORD), PASSWORD)


async def test_a_wrong_password_is_refused_whoever_hashed() -> None:
    hashing = PasswordHashing()
    ours, theirs = await hashing.hash(PASSWORD), reference().hash(PASSWORD)
    assert not await hashing.verify(ours, PASSWORD + "!")
    assert not await hashing.verify(theirs, PASSWORD + "!")
    with pytest.raises(VerifyMismatchError):
        reference().verify(ours, PASSWORD + "!")


BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def flip_unused_bit(stored: str) -> str:
    """The same 32-byte hash with an unused low bit of its last base64 character flipped."""
    return stored[:-1] + BASE64[BASE64.index(stored[-1]) ^ 1]


def short_salt(stored: str) -> str:
    """A 4-byte salt, under argon2's minimum of 8."""
    parts = stored.split("$")
    return "$".join([*parts[:4], "c2FsdA", parts[5]])


@pytest.mark.parametrize(
    "variant",
    [
        lambda h: h,
        lambda h: h.replace("m=19456", "m=019456"),  # argon2 reads leading zeros
        lambda h: h.replace("$v=19", ""),  # version 1.0: another hash, so a mismatch
        lambda h: h + "\n",
        flip_unused_bit,
        short_salt,
        lambda h: h.replace("t=2", "t=0"),
        lambda h: h.replace("$argon2id$", "$argon2i$"),
        lambda h: h.replace("p=1", "p=99999999999"),
        lambda h: "not a hash",
        lambda h: "",
    ],
)
def test_any_stored_hash_gets_the_answer_argon2_cffi_gives(variant: Callable[[str], str]) -> None:
    stored = variant(reference().hash(PASSWORD))
    ours = Argon2Hasher(reference())
    for password in (PASSWORD, "wrong password"):
        assert outcome(ours.verify, stored, password) == outcome(
            reference().verify, stored, password
        )


@pytest.mark.parametrize("kind", [Type.I, Type.D])
def test_older_argon2_variants_still_verify(kind: Type) -> None:
    theirs = PasswordHasher(memory_cost=8 * 1024, time_cost=1, type=kind)
    stored = theirs.hash(PASSWORD)
    ours = Argon2Hasher(reference())
    assert ours.verify(stored, PASSWORD)
    assert not ours.verify(stored, "wrong password")


async def test_raised_parameters_rehash_and_old_hashes_still_verify() -> None:
    stored = await PasswordHashing().hash(PASSWORD)
    stronger = PasswordHashing(Argon2Parameters(time_cost=3))
    assert stronger.needs_rehash(stored)
    assert await stronger.verify(stored, PASSWORD)
    rehashed = await stronger.hash(PASSWORD)
    assert not stronger.needs_rehash(rehashed)
    assert rehashed.startswith("$argon2id$v=19$m=19456,t=3,p=1$")


async def test_many_concurrent_logins_share_the_bounded_threads() -> None:
    hashing = PasswordHashing(max_concurrent=2, idle_seconds=60)
    stored = [await hashing.hash(f"{PASSWORD} {i}") for i in range(3)]
    results = await asyncio.gather(
        *(hashing.verify(stored[i % 3], f"{PASSWORD} {i % 3}") for i in range(8)),
        *(hashing.verify(stored[i % 3], "wrong password") for i in range(4)),
    )
    assert results == [True] * 8 + [False] * 4
    assert hashing.pool.threads <= 2
    assert 0 < hashing.pool.kept_bytes <= hashing.pool.threads * hashing.pool.retain
    hashing.pool.close()


def test_plain_threads_may_hash_without_a_pool() -> None:
    ours = Argon2Hasher(reference())
    with ThreadPoolExecutor(4) as threads:
        stored = list(threads.map(ours.hash, [PASSWORD] * 4))
        assert all(threads.map(ours.verify, stored, [PASSWORD] * 4))
    assert len(set(stored)) == 4  # each its own salt


def test_a_thread_reuses_its_memory_without_faulting_it_in_again() -> None:
    ours = Argon2Hasher(reference())
    pool = Argon2Pool(1, retain=ours.memory_bytes, idle_seconds=60)

    def faults_of_one_hash() -> int:
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        ours.hash(PASSWORD)
        return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before

    pool.submit(faults_of_one_hash).result()
    assert pool.submit(faults_of_one_hash).result() < 100  # 4,864 pages when mapped afresh
    pool.close()


async def test_a_stored_hash_needing_more_memory_is_not_kept() -> None:
    hashing = PasswordHashing(
        Argon2Parameters(memory_kib=8 * 1024, time_cost=1), max_concurrent=1, idle_seconds=60
    )
    await hashing.hash(PASSWORD)
    assert hashing.pool.kept_bytes == 8 * 1024 * 1024
    assert await hashing.verify(reference().hash(PASSWORD), PASSWORD)  # 19 MiB
    assert hashing.pool.kept_bytes == 8 * 1024 * 1024
    hashing.pool.close()


async def test_an_idle_pool_gives_its_memory_back_and_starts_again_on_demand() -> None:
    hashing = PasswordHashing(max_concurrent=2, idle_seconds=0.05)
    await asyncio.gather(*(hashing.hash(PASSWORD) for _ in range(4)))
    wait_until(lambda: hashing.pool.threads == 0)
    assert hashing.pool.kept_bytes == 0
    assert await hashing.verify(await hashing.hash(PASSWORD), PASSWORD)


def test_closing_ends_the_threads_after_the_queued_work() -> None:
    ours = Argon2Hasher(reference())
    pool = Argon2Pool(2, retain=ours.memory_bytes, idle_seconds=60, name="closing")
    futures = [pool.submit(ours.hash, PASSWORD) for _ in range(4)]
    pool.close()
    assert all(future.result().startswith("$argon2id$") for future in futures)
    assert pool.threads == 0
    assert pool.kept_bytes == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("closing_")]
