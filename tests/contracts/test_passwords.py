"""Password policy and hashing (SPEC section 4)."""

from __future__ import annotations

import asyncio

import pytest
from singlewindow.runtime.passwords import Argon2Parameters, PasswordHashing, policy_problem


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 8"),
        ("password", "too common"),
        ("88888888", "too common"),
        ("Password1", "too common"),
        ("my-cq_admin-pw", "account name"),
        ("x" * 257, "at most 256"),
        (" " * 8, "only spaces or other whitespace"),
        (" " * 64, "only spaces or other whitespace"),
        ("\t \n \r \t \n ", "only spaces or other whitespace"),
        ("\u3000" * 8, "only spaces or other whitespace"),  # ideographic spaces, as an IME types
        ("\u00a0\u2003\u2009\u202f\u205f\u3000\u2028\u0085", "only spaces or other whitespace"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, problem: str) -> None:
    found = policy_problem(password, account="CQ_Admin")
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "重庆单一窗口注册口令",
        "x" * 64,
        "no Composition rules at all",
        "        .",
        "  spaces around  ",
    ],
)
def test_long_passphrases_of_any_kind_are_accepted(password: str) -> None:
    assert policy_problem(password, account="cq_admin") is None


def test_the_minimum_length_is_configurable() -> None:
    assert policy_problem("abcdefghij", account="a_b_c", min_length=12) is not None


def test_argon2id_uses_the_explicit_parameters() -> None:
    hashing = PasswordHashing()
    stored = asyncio.run(hashing.hash("correct horse battery"))
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_passwords_verify_after_nfkc_normalisation() -> None:
    hashing = PasswordHashing()
    stored = await hashing.hash("ＡＢＣ１２３４５６７８")  # full-width, as typed with an IME
    assert await hashing.verify(stored, "ABC12345678")
    assert not await hashing.verify(stored, "ABC12345679")
    assert not await hashing.verify("not a hash", "ABC12345678")


async def test_a_hash_made_with_weaker_parameters_needs_a_rehash() -> None:
    weak = PasswordHashing(Argon2Parameters(memory_kib=8 * 1024, time_cost=1))
    stored = await weak.hash("correct horse battery")
    assert PasswordHashing().needs_rehash(stored)
    assert not PasswordHashing().needs_rehash(await PasswordHashing().hash("correct horse battery"))


async def test_hashing_runs_off_the_event_loop() -> None:
    hashing = PasswordHashing()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.gather(*(hashing.hash("correct horse battery") for _ in range(4)))
    task.cancel()
    assert ticks > 5  # the loop kept turning while four hashes ran
