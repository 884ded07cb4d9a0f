"""card-gateway as a client sees it: requests over NATS to the service process, which reaches the
virtual cards through pyscard, pcscd and the vpcd reader; card events on its JetStream stream."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from singlewindow.cardcrypto import (
    card_certificate_fields,
    certificate_from_pem,
    crl_from_pem,
    verify_certificate,
    verify_challenge_signature,
)
from singlewindow.contracts import card_gateway
from singlewindow.contracts.card_gateway import (
    CardType,
    OperatorLevel,
    PinVerified,
    SignedChallenge,
)
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.errors import DomainError, ErrorCode
from singlewindow.swctl.platform import CARD_GATEWAY, Platform, PlatformConfig, http_json
from singlewindow.virtual_card.applet import EPORT_ATR, FOREIGN_ATR
from singlewindow.virtual_card.issuing import DevCA

from tests.card_gateway import slow_signer
from tests.card_gateway.stack import (
    CARD_PIN,
    READERS,
    CardSlots,
    IssueCard,
    spawn,
)
from tests.support.platform import Bus, bus, free_port

pytestmark = pytest.mark.integration

WRONG_PIN = "24680135"
SM2_ID = "distid:1234567812345678"


def challenge(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def requests_to(
    *requests: tuple[Endpoint[Any, Any], dict[str, Any]],
) -> tuple[tuple[Endpoint[Any, Any], dict[str, Any]], ...]:
    """Requests to several endpoints, to be refused alike."""
    return requests


async def refused(
    card_bus: Bus, endpoint: Endpoint[Any, Any], request: dict[str, Any]
) -> DomainError:
    """The error reply to a request that must be refused."""
    with pytest.raises(DomainError) as refusal:
        await card_bus.call(endpoint, request)
    return refusal.value


def openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("openssl")
    assert binary is not None, "OpenSSL 3 must be installed for the cross-checks"
    return subprocess.run(
        [binary, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


async def test_both_vpcd_slots_are_listed_and_show_the_card_put_in(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    listed = await card_bus.call(card_gateway.LIST_READERS, {})
    assert [(r.name, r.card_present, r.atr) for r in listed.readers] == [
        (READERS[0], False, None),
        (READERS[1], False, None),
    ]
    card = issue_card(card_type="operator", operator_level="entry")
    await slots.insert(card, READERS[1])
    listed = await card_bus.call(card_gateway.LIST_READERS, {})
    assert [(r.name, r.card_present, r.atr) for r in listed.readers] == [
        (READERS[0], False, None),
        (READERS[1], True, EPORT_ATR.hex().upper()),
    ]
    assert [(r.card_number, r.enterprise_uscc) for r in listed.readers] == [
        (None, None),
        (card.number, card.card.data.enterprise_uscc),
    ]
    assert (listed.readers[1].card_type, listed.readers[1].operator_level) == (
        CardType.OPERATOR,
        OperatorLevel.ENTRY,
    )
    assert listed.readers[1].enterprise_name == card.card.data.enterprise_name


async def test_the_card_data_and_certificate_are_read_without_a_pin_the_id_number_masked(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    card = issue_card(card_type="operator", operator_level="declaration", customs_code="5001234567")
    emulator = await slots.insert(card)
    view = await card_bus.call(card_gateway.READ_CARD, {})
    assert view.reader == READERS[0]
    assert not view.pin_verified
    assert emulator.verifies_with_pin() == 0
    data = card.card.data
    assert view.card.model_dump(mode="json") == {
        "card_number": data.card_number,
        "card_type": "operator",
        "operator_level": "declaration",
        "holder_name": "张三",
        "holder_id_number": "110105********002X",
        "enterprise_uscc": data.enterprise_uscc,
        "enterprise_name": "重庆某某贸易有限公司",
        "organisation_code": data.enterprise_uscc[8:17],
        "customs_code": "5001234567",
    }
    assert view.certificate_pem == card.certificate_pem
    identity = card_certificate_fields(certificate_from_pem(view.certificate_pem)).identity
    assert (identity.card_type, identity.operator_level) == ("operator", "declaration")


async def test_the_full_id_number_is_read_only_with_the_pin_in_the_same_card_session(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    emulator = await slots.insert(issue_card())
    view = await card_bus.call(card_gateway.READ_CARD, {"pin": CARD_PIN})
    assert view.pin_verified
    assert view.card.holder_id_number == "11010519491231002X"
    # A PIN verified in an earlier request does not carry over: each request is its own session.
    await card_bus.call(card_gateway.VERIFY_PIN, {"pin": CARD_PIN})
    after = await card_bus.call(card_gateway.READ_CARD, {})
    assert after.card.holder_id_number == "110105********002X"
    error = await refused(card_bus, card_gateway.READ_CARD, {"pin": WRONG_PIN})
    assert (error.code, error.message) == (ErrorCode.PIN_INCORRECT, "wrong PIN: 9 tries left")
    assert emulator.verifies_with_pin() == 3


async def test_a_card_with_one_try_left_is_sent_no_pin_unless_the_request_accepts_the_risk(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    card = issue_card(tries=2)
    emulator = await slots.insert(card)
    error = await refused(card_bus, card_gateway.VERIFY_PIN, {"pin": WRONG_PIN})
    assert (error.code, error.message) == (ErrorCode.PIN_INCORRECT, "wrong PIN: 1 try left")
    last_try = (
        "the card has one PIN try left: a wrong PIN now blocks it; no PIN was sent. "
        "Ask again with last_try to use it (swctl: --last-pin-try)"
    )
    for subject, request in requests_to(
        (card_gateway.VERIFY_PIN, {"pin": WRONG_PIN}),
        (card_gateway.SIGN_CHALLENGE, {"pin": WRONG_PIN, "challenge": challenge()}),
        (card_gateway.READ_CARD, {"pin": WRONG_PIN}),
    ):
        error = await refused(card_bus, subject, request)
        assert (error.code, error.message) == (ErrorCode.ACTION_REQUIRED, last_try)
        assert [f.path for f in error.fields] == ["last_try"]
    assert emulator.verifies_with_pin() == 1  # the card still has its last try
    assert json.loads(card.path.read_text())["pin"]["tries_left"] == 1
    verified = await card_bus.call(card_gateway.VERIFY_PIN, {"pin": CARD_PIN, "last_try": True})
    assert verified.card_number == card.number
    assert emulator.verifies_with_pin() == 2


async def test_the_signature_and_certificate_verify_with_the_platform_and_with_openssl(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard, dev_ca: DevCA, tmp_path: Path
) -> None:
    card = issue_card()
    await slots.insert(card)
    raw = os.urandom(32)
    signed = await card_bus.call(
        card_gateway.SIGN_CHALLENGE,
        {"pin": CARD_PIN, "challenge": base64.b64encode(raw).decode(), "reader": READERS[0]},
    )
    assert signed.card.card_number == card.number
    certificate = certificate_from_pem(signed.certificate_pem)
    signature = base64.b64decode(signed.signature)
    assert verify_challenge_signature(certificate, raw, signature)
    assert not verify_challenge_signature(certificate, os.urandom(32), signature)
    crl = crl_from_pem(dev_ca.crl_path.read_text())
    fields = verify_certificate(certificate, dev_ca.certificate, crl_der=crl)
    assert fields.identity.card_number == card.number

    (tmp_path / "card.pem").write_text(signed.certificate_pem)
    (tmp_path / "challenge").write_bytes(raw)
    (tmp_path / "signature").write_bytes(signature)
    shutil.copy(dev_ca.certificate_path, tmp_path / "ca.pem")
    verified = openssl("verify", "-vfyopt", SM2_ID, "-CAfile", "ca.pem", "card.pem", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip() == "card.pem: OK"
    public = openssl(
        "x509", "-in", "card.pem", "-noout", "-pubkey", "-out", "pub.pem", cwd=tmp_path
    )
    assert public.returncode == 0, public.stderr
    checked = openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "challenge",
        "-sigfile", "signature", "-digest", "sm3", "-pkeyopt", SM2_ID, cwd=tmp_path,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Signature Verified Successfully" in checked.stdout


async def test_the_right_pin_is_verified(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    card = issue_card()
    await slots.insert(card)
    verified = await card_bus.call(card_gateway.VERIFY_PIN, {"pin": CARD_PIN})
    assert verified == PinVerified(reader=READERS[0], card_number=card.number)


async def test_wrong_pins_count_down_to_blocked_and_then_no_pin_reaches_the_card(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    card = issue_card(tries=3)
    emulator = await slots.insert(card)
    answers = []
    for _ in range(3):
        error = await refused(
            card_bus, card_gateway.VERIFY_PIN, {"pin": WRONG_PIN, "last_try": True}
        )
        answers.append((error.code, error.message))
    assert answers == [
        (ErrorCode.PIN_INCORRECT, "wrong PIN: 2 tries left"),
        (ErrorCode.PIN_INCORRECT, "wrong PIN: 1 try left"),
        (
            ErrorCode.CARD_BLOCKED,
            "wrong PIN: the card is now blocked after too many wrong PINs; "
            "it must be unblocked by the issuer",
        ),
    ]
    assert emulator.verifies_with_pin() == 3
    for subject, request in requests_to(
        (card_gateway.VERIFY_PIN, {"pin": CARD_PIN}),
        (card_gateway.SIGN_CHALLENGE, {"pin": CARD_PIN, "challenge": challenge()}),
    ):
        error = await refused(card_bus, subject, request)
        assert error.code == ErrorCode.CARD_BLOCKED
        assert error.message == (
            "card is blocked: too many wrong PINs; it must be unblocked by the issuer"
        )
    assert emulator.verifies_with_pin() == 3  # the card said it was blocked before any PIN
    assert json.loads(card.path.read_text())["pin"]["tries_left"] == 0


async def test_a_wrong_pin_does_not_sign(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    await slots.insert(issue_card())
    error = await refused(
        card_bus, card_gateway.SIGN_CHALLENGE, {"pin": WRONG_PIN, "challenge": challenge()}
    )
    assert (error.code, error.message) == (ErrorCode.PIN_INCORRECT, "wrong PIN: 9 tries left")
    assert [(f.path, f.message) for f in error.fields] == [("pin", "wrong PIN: 9 tries left")]


@pytest.mark.parametrize("size", [8, 65])
async def test_a_challenge_must_be_16_to_64_bytes(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard, size: int
) -> None:
    emulator = await slots.insert(issue_card())
    error = await refused(
        card_bus, card_gateway.SIGN_CHALLENGE, {"pin": CARD_PIN, "challenge": challenge(size)}
    )
    assert error.code in (ErrorCode.INVALID,)
    assert [f.path for f in error.fields] == ["challenge"]
    assert emulator.verifies_with_pin() == 0


async def test_without_a_reader_name_the_only_card_is_used_and_two_cards_need_a_name(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    first, second = issue_card(), issue_card()
    await slots.insert(first, READERS[1])
    view = await card_bus.call(card_gateway.READ_CARD, {})
    assert (view.reader, view.card.card_number) == (READERS[1], first.number)
    await slots.insert(second, READERS[0])
    error = await refused(card_bus, card_gateway.READ_CARD, {})
    assert error.code == ErrorCode.INVALID
    assert error.message == (
        f"cards are in several readers ({READERS[0]}, {READERS[1]}); name one with --reader"
    )
    assert [f.path for f in error.fields] == ["reader"]
    named = await card_bus.call(card_gateway.READ_CARD, {"reader": READERS[0]})
    assert named.card.card_number == second.number


async def test_an_empty_reader_and_no_card_anywhere(card_bus: Bus, slots: CardSlots) -> None:
    error = await refused(card_bus, card_gateway.READ_CARD, {"reader": READERS[0]})
    assert (error.code, error.message) == (ErrorCode.NO_CARD, f"no card in reader {READERS[0]}")
    error = await refused(card_bus, card_gateway.VERIFY_PIN, {"pin": CARD_PIN})
    assert (error.code, error.message) == (ErrorCode.NO_CARD, "no card in any reader")


async def test_an_unknown_reader(card_bus: Bus, slots: CardSlots) -> None:
    error = await refused(card_bus, card_gateway.READ_CARD, {"reader": "No Such Reader 00 00"})
    assert (error.code, error.message) == (
        ErrorCode.NO_READER,
        "no card reader named 'No Such Reader 00 00'",
    )


async def test_a_card_that_is_not_an_eport_card(card_bus: Bus, slots: CardSlots) -> None:
    await slots.insert(None)
    for subject, request in requests_to(
        (card_gateway.READ_CARD, {}),
        (card_gateway.VERIFY_PIN, {"pin": CARD_PIN}),
        (card_gateway.SIGN_CHALLENGE, {"pin": CARD_PIN, "challenge": challenge()}),
    ):
        error = await refused(card_bus, subject, request)
        assert (error.code, error.message) == (
            ErrorCode.NOT_AN_EPORT_CARD,
            f"the card in reader {READERS[0]} is not an E-Port card",
        )


async def test_a_card_pulled_out_while_it_signs(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    emulator = await slots.insert(issue_card(), slow_signer=True)
    signing = asyncio.create_task(
        card_bus.call(card_gateway.SIGN_CHALLENGE, {"pin": CARD_PIN, "challenge": challenge()})
    )
    await asyncio.sleep(slow_signer.DELAY / 3)
    emulator.pull_out()
    with pytest.raises(DomainError) as refusal:
        await signing
    assert refusal.value.code == ErrorCode.CARD_REMOVED
    assert refusal.value.message == (
        f"card was removed from reader {READERS[0]} during the operation; put it back and try again"
    )


async def test_concurrent_requests_take_turns_with_the_card(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    card = issue_card()
    await slots.insert(card)
    raw = [os.urandom(32) for _ in range(6)]
    signing = [
        card_bus.call(
            card_gateway.SIGN_CHALLENGE,
            {"pin": CARD_PIN, "challenge": base64.b64encode(r).decode()},
        )
        for r in raw
    ]
    reading = card_bus.call(card_gateway.READ_CARD, {})
    verifying = card_bus.call(card_gateway.VERIFY_PIN, {"pin": CARD_PIN})
    signed = await asyncio.gather(*signing, reading, verifying)
    certificate = card.card.certificate
    for challenge_bytes, answer in zip(raw, signed[:6], strict=True):
        assert isinstance(answer, SignedChallenge)
        assert verify_challenge_signature(
            certificate, challenge_bytes, base64.b64decode(answer.signature)
        )


async def test_a_request_waiting_too_long_for_the_card_is_told_it_is_busy(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    await slots.insert(issue_card(), slow_signer=True)
    signing = asyncio.create_task(
        card_bus.call(
            card_gateway.SIGN_CHALLENGE,
            {"pin": CARD_PIN, "challenge": challenge()},
        )
    )
    await asyncio.sleep(0.3)
    error = await refused(card_bus, card_gateway.READ_CARD, {})
    assert (error.code, error.message) == (
        ErrorCode.CARD_BUSY,
        f"the card in reader {READERS[0]} is busy with another request; try again",
    )
    # Refused while the signature still held the card, which then finished undisturbed.
    assert not signing.done()
    assert isinstance(await signing, SignedChallenge)


async def test_a_card_held_by_another_program_is_busy(
    card_platform: Platform, card_bus: Bus, slots: CardSlots, issue_card: IssueCard, tmp_path: Path
) -> None:
    await slots.insert(issue_card())
    assert card_platform.pcscd is not None
    holder = (
        "import sys, time\n"
        "from singlewindow.card_gateway.pcsc import open_card\n"
        "with open_card(sys.argv[1]):\n"
        "    print('holding', flush=True)\n"
        "    time.sleep(30)\n"
    )
    process = spawn(
        [sys.executable, "-c", holder, READERS[0]],
        tmp_path / "holder.log",
        os.environ | card_platform.pcscd.environment(),
    )
    try:
        deadline = time.monotonic() + 10
        while b"holding" not in (tmp_path / "holder.log").read_bytes():
            assert process.poll() is None, (tmp_path / "holder.log").read_text()
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        error = await refused(card_bus, card_gateway.READ_CARD, {})
        assert (error.code, error.message) == (
            ErrorCode.CARD_BUSY,
            f"the card in reader {READERS[0]} is in use by another program",
        )
    finally:
        process.kill()
        process.wait(10)
    assert (await card_bus.call(card_gateway.READ_CARD, {})).reader == READERS[0]


async def test_cards_inserted_and_removed_are_announced_on_the_stream(
    card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    subscription = await card_bus.js.subscribe(
        "sw.events.card-gateway.>",
        stream=card_gateway.STREAM.name,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
    )

    async def next_event() -> dict[str, Any]:
        message = await subscription.next_msg(timeout=10)
        event: dict[str, Any] = json.loads(message.data)
        assert message.headers is not None
        assert message.headers["Nats-Msg-Id"] == event["id"]
        return event

    try:
        card = issue_card(card_type="operator", operator_level="entry")
        emulator = await slots.insert(card, READERS[1])
        inserted = await next_event()
        assert inserted["type"] == "cn.singlewindow.card-gateway.card-inserted.v1"
        assert inserted["subject"] == card.card.data.enterprise_uscc
        assert inserted["data"] == {
            "reader": READERS[1],
            "atr": EPORT_ATR.hex().upper(),
            "card_number": card.number,
            "card_type": "operator",
        }
        emulator.remove()
        removed = await next_event()
        assert removed["type"] == "cn.singlewindow.card-gateway.card-removed.v1"
        assert removed["data"] == {"reader": READERS[1]}

        foreign = await slots.insert(None, READERS[0])
        inserted = await next_event()
        assert "subject" not in inserted  # no enterprise to name
        assert inserted["data"] == {
            "reader": READERS[0],
            "atr": FOREIGN_ATR.hex().upper(),
            "card_number": None,
            "card_type": None,
        }
        foreign.pull_out()
        assert (await next_event())["data"] == {"reader": READERS[0]}
    finally:
        await subscription.unsubscribe()


async def test_the_pin_never_reaches_a_log(
    card_platform: Platform, card_bus: Bus, slots: CardSlots, issue_card: IssueCard
) -> None:
    emulator = await slots.insert(issue_card())
    await refused(card_bus, card_gateway.VERIFY_PIN, {"pin": WRONG_PIN})
    await card_bus.call(card_gateway.VERIFY_PIN, {"pin": CARD_PIN})
    await card_bus.call(card_gateway.SIGN_CHALLENGE, {"pin": CARD_PIN, "challenge": challenge()})
    await refused(card_bus, card_gateway.VERIFY_PIN, {"pin": "1234567"})  # malformed
    await card_bus.raw(card_gateway.VERIFY_PIN, json.dumps({"pin": 24680135}).encode())
    gateway_log = card_platform.log_path(CARD_GATEWAY).read_text()
    assert "request refused" in gateway_log  # the refusals were logged, without their PINs
    assert card_platform.pcscd is not None
    logs = [gateway_log, emulator.log.read_text()]
    if card_platform.pcscd.log is not None:
        logs.append(card_platform.pcscd.log.read_text())
    for text in logs:
        for pin in (CARD_PIN, WRONG_PIN, "1234567"):
            assert pin not in text


async def test_readiness_reports_the_readers(card_platform: Platform) -> None:
    port = card_platform.config.service_ports[CARD_GATEWAY]
    ready = http_json(f"http://127.0.0.1:{port}/readyz")
    assert ready is not None
    assert ready["status"] == "ready"
    assert ready["pcsc"]["state"] == "available"
    assert [reader["name"] for reader in ready["pcsc"]["readers"]] == list(READERS)


async def test_without_pcscd_the_gateway_is_ready_and_says_there_is_no_reader(
    tmp_path: Path,
) -> None:
    config = PlatformConfig(
        data_dir=tmp_path,
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        service_ports={CARD_GATEWAY: free_port()},
        environment={"PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")},
    )
    platform = Platform(config)
    try:
        platform.start()
        ready = http_json(f"http://127.0.0.1:{config.service_ports[CARD_GATEWAY]}/readyz")
        assert ready is not None
        assert ready["status"] == "ready"
        assert ready["pcsc"]["state"] == "unavailable"
        async with bus(platform) as connection:
            for subject, request in requests_to(
                (card_gateway.LIST_READERS, {}),
                (card_gateway.READ_CARD, {}),
                (card_gateway.SIGN_CHALLENGE, {"pin": CARD_PIN, "challenge": challenge()}),
            ):
                error = await refused(connection, subject, request)
                assert (error.code, error.message) == (
                    ErrorCode.NO_READER,
                    "no card reader found: the PC/SC service (pcscd) is not running",
                )
    finally:
        platform.stop()
