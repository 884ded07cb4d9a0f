"""card-gateway's subscribers: card operations as requests, each answered with a result or a
typed card error. The PIN in a request goes to the card and nowhere else."""

from __future__ import annotations

from functools import partial

from faststream.nats import NatsMessage, NatsRouter
from singlewindow.card_gateway import gateway
from singlewindow.card_gateway.dependencies import Deps
from singlewindow.shared.contracts import card_gateway as contract
from singlewindow.shared.contracts.card_gateway import (
    CardView,
    ListReaders,
    PinVerified,
    ReadCard,
    ReaderList,
    SignChallenge,
    SignedChallenge,
    VerifyPin,
)
from singlewindow.shared.service import request_subscriber

router = NatsRouter()


@request_subscriber(router, contract.LIST_READERS, contract.QUEUE)
async def list_readers(msg: NatsMessage, deps: Deps) -> bytes:
    """List the readers and whether a card is in each."""

    async def handle(request: ListReaders) -> ReaderList:
        return await deps.cards.readers()

    return await deps.service.answer(msg, ListReaders, handle)


@request_subscriber(router, contract.READ_CARD, contract.QUEUE)
async def read_card(msg: NatsMessage, deps: Deps) -> bytes:
    """Read a card's data and certificate; no PIN needed."""

    async def handle(request: ReadCard) -> CardView:
        return await deps.cards.run(request.reader, gateway.read_card)

    return await deps.service.answer(msg, ReadCard, handle)


@request_subscriber(router, contract.VERIFY_PIN, contract.QUEUE)
async def verify_pin(msg: NatsMessage, deps: Deps) -> bytes:
    """Check a PIN once; a wrong one reports the tries left, never retried."""

    async def handle(request: VerifyPin) -> PinVerified:
        return await deps.cards.run(request.reader, partial(gateway.verify_pin, pin=request.pin))

    return await deps.service.answer(msg, VerifyPin, handle)


@request_subscriber(router, contract.SIGN_CHALLENGE, contract.QUEUE)
async def sign_challenge(msg: NatsMessage, deps: Deps) -> bytes:
    """Verify the PIN and have the card sign a challenge, in one card session."""

    async def handle(request: SignChallenge) -> SignedChallenge:
        challenge = gateway.decode_challenge(request.challenge)
        return await deps.cards.run(
            request.reader,
            partial(gateway.sign_challenge, pin=request.pin, challenge=challenge),
        )

    return await deps.service.answer(msg, SignChallenge, handle)
