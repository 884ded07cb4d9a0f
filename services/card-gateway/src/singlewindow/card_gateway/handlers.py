"""card-gateway's handlers: card operations as requests, each answered with a result or a
typed card error. The PIN in a request goes to the card and nowhere else."""

from __future__ import annotations

from functools import partial

from singlewindow.card_gateway import gateway
from singlewindow.card_gateway.dependencies import Gateway
from singlewindow.contracts import card_gateway as contract
from singlewindow.contracts.card_gateway import (
    CardView,
    ListReaders,
    PinVerified,
    ReadCard,
    ReaderList,
    SignChallenge,
    SignedChallenge,
    VerifyPin,
)
from singlewindow.runtime.routes import Routes

routes = Routes[Gateway](contract.SERVICE)


@routes.serve(contract.LIST_READERS)
async def list_readers(request: ListReaders, deps: Gateway) -> ReaderList:
    """List the readers and whether a card is in each."""
    return await deps.cards.readers()


@routes.serve(contract.READ_CARD)
async def read_card(request: ReadCard, deps: Gateway) -> CardView:
    """Read a card's data and certificate; the holder's full ID number only with the PIN."""
    return await deps.cards.run(
        request.reader,
        partial(gateway.read_card, pin=request.pin, last_try=request.last_try),
    )


@routes.serve(contract.VERIFY_PIN)
async def verify_pin(request: VerifyPin, deps: Gateway) -> PinVerified:
    """Check a PIN once; a wrong one reports the tries left, never retried."""
    return await deps.cards.run(
        request.reader,
        partial(gateway.verify_pin, pin=request.pin, last_try=request.last_try),
    )


@routes.serve(contract.SIGN_CHALLENGE)
async def sign_challenge(request: SignChallenge, deps: Gateway) -> SignedChallenge:
    """Verify the PIN and have the card sign a challenge, in one card session."""
    challenge = gateway.decode_challenge(request.challenge)
    return await deps.cards.run(
        request.reader,
        partial(
            gateway.sign_challenge,
            pin=request.pin,
            challenge=challenge,
            last_try=request.last_try,
        ),
    )
