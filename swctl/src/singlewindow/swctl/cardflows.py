"""The card flows of swctl: log in with a card, register an administrator with a legal-person card,
add a card operator, bind a card to one's own account (My IC card).

Each flow reads the card through card-gateway, asks for the PIN (or reads it from stdin), fetches
a fresh challenge from accounts, has the card sign it (card-gateway verifies the PIN and signs in
one card session) and sends the card's answer to accounts, which checks it. The PIN goes to
card-gateway in the signing request and nowhere else.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel, ValidationError
from singlewindow.contracts import accounts, card_gateway
from singlewindow.contracts.accounts import (
    CardBindingView,
    CardChallenge,
    OperatorInfo,
    OperatorView,
    SessionView,
)
from singlewindow.contracts.card_gateway import CardType, CardView, SignedChallenge
from singlewindow.contracts.common import AccountHolder, IdType
from singlewindow.contracts.endpoints import Endpoint
from singlewindow.contracts.errors import DomainError, ErrorCode, invalid
from singlewindow.contracts.identifiers import InvalidIdentifier, normalise_card_pin
from singlewindow.swctl.client import Client

HolderT = TypeVar("HolderT", bound=AccountHolder)
ReplyT = TypeVar("ReplyT", bound=BaseModel)

PinSource = Callable[[CardView | None], str]
"""Gives the card's PIN; shown the card when it was read first."""


class Flows:
    """The card flows over one swctl client connection."""

    def __init__(
        self,
        client: Client,
        *,
        reader: str | None,
        pin: PinSource,
        out: TextIO,
        last_try: bool = False,
    ) -> None:
        self.client = client
        self.reader = reader
        self.pin = pin
        self.out = out
        """Where the card's data and prompts go: stderr when stdout is kept for --json."""
        self.last_try = last_try
        """Whether to use a card's last PIN try (card-gateway sends no PIN then, unless told)."""

    async def login(self, *, read_first: bool) -> SessionView:
        """Log in with the card in the reader; it must be bound to an account."""
        card = await self.read_card() if read_first else None
        pin = self.pin(card)
        return await self._answer(accounts.LOGIN_CARD, pin, {})

    async def register_admin(self, admin: dict[str, Any] | None) -> SessionView:
        """Register the enterprise on the legal-person card in the reader and its administrator."""
        card = await self.read_card()
        data = card.card
        self.show_enterprise(card)
        if data.card_type is not CardType.LEGAL_PERSON:
            raise DomainError(
                ErrorCode.CARD_REFUSED,
                "only a legal-person card registers an enterprise administrator; "
                "this is an operator card",
            )
        status = await self.client.call(
            accounts.CARD_STATUS,
            {"uscc": data.enterprise_uscc, "card_number": data.card_number},
        )
        if status.has_administrator:
            raise DomainError(
                ErrorCode.CONFLICT,
                f"enterprise {data.enterprise_uscc} already has an administrator; "
                "log in instead: swctl login --card",
            )
        if status.card_bound:
            raise DomainError(
                ErrorCode.CONFLICT,
                "this card is already bound to an account; log in instead: swctl login --card",
            )
        holder = _validated(AccountHolder, admin, "admin") if admin else self.ask_holder("admin")
        pin = self.pin(card)
        request = {"admin": holder.model_dump(mode="json")}
        return await self._answer(accounts.REGISTER_CARD_ADMIN, pin, request)

    async def add_operator(self, token: str, operator: dict[str, Any]) -> OperatorView:
        """Add the holder of the operator card in the reader as an operator of the enterprise."""
        details = _validated(OperatorInfo, operator, "operator")
        card = await self.read_card()
        data = card.card
        level = data.operator_level.value if data.operator_level else "-"
        print(
            f"operator card {data.card_number}: {data.holder_name}, level {level}, "
            f"of {data.enterprise_name} ({data.enterprise_uscc})",
            file=self.out,
        )
        if data.card_type is not CardType.OPERATOR:
            raise DomainError(
                ErrorCode.CARD_REFUSED,
                "this is a legal-person card; an operator is added with their own operator card",
            )
        pin = self.pin(card)
        request = {"token": token, "operator": details.model_dump(mode="json", exclude_none=True)}
        return await self._answer(accounts.ADD_CARD_OPERATOR, pin, request)

    # --- My IC card (issue 9) ---
    async def bind(self, token: str) -> CardBindingView:
        """Bind the card in the reader to the session's account (My IC card)."""
        card = await self.read_card()
        data = card.card
        level = f" ({data.operator_level.value})" if data.operator_level else ""
        print(
            f"card {data.card_number}: {data.card_type.value}{level} card of {data.holder_name}, "
            f"{data.enterprise_name} ({data.enterprise_uscc})",
            file=self.out,
        )
        pin = self.pin(card)
        return await self._answer(accounts.CARD_BIND, pin, {"token": token})

    async def read_card(self) -> CardView:
        """The card in the reader: its data (the holder's ID number masked) and certificate."""
        card: CardView = await self.client.call(card_gateway.READ_CARD, {"reader": self.reader})
        return card

    def show_enterprise(self, card: CardView) -> None:
        """The enterprise data filled from the card: shown, not editable."""
        data = card.card
        lines = [
            "Enterprise, from the card (not editable):",
            f"  USCC:               {data.enterprise_uscc}",
            f"  name:               {data.enterprise_name}",
            f"  organisation code:  {data.organisation_code}",
            f"  customs code:       {data.customs_code or '-'}",
            f"  card:               {data.card_number} ({data.card_type.value}, "
            f"holder {data.holder_name})",
        ]
        print("\n".join(lines), file=self.out)

    def ask_holder(self, path: str) -> AccountHolder:
        """The administrator's details, typed at the terminal."""
        print("Administrator (typed by hand):", file=self.out)
        answers: dict[str, Any] = {
            "name": self._ask("  name: "),
            "id_type": self._ask(
                f"  ID type [{IdType.RESIDENT_ID.value}]: ", default=IdType.RESIDENT_ID.value
            ),
            "id_number": self._ask("  ID number: "),
            "mobile": self._ask("  mobile: "),
            "email": self._ask("  e-mail (optional): ", default="") or None,
            "account": self._ask("  account name: "),
        }
        password = getpass.getpass("  password: ", stream=self.out)
        if getpass.getpass("  password again: ", stream=self.out) != password:
            raise DomainError(ErrorCode.INVALID, "the two passwords differ")
        return _validated(AccountHolder, answers | {"password": password}, path)

    def _ask(self, prompt: str, *, default: str | None = None) -> str:
        print(prompt, end="", file=self.out, flush=True)
        answer = sys.stdin.readline()
        if not answer:
            raise DomainError(ErrorCode.INVALID, "no answer on stdin; give the details with --file")
        return answer.strip() or (default or "")

    async def _answer(
        self, endpoint: Endpoint[Any, ReplyT], pin: str, request: dict[str, Any]
    ) -> ReplyT:
        challenge: CardChallenge = await self.client.call(accounts.CARD_CHALLENGE, {})
        signed: SignedChallenge = await self.client.call(
            card_gateway.SIGN_CHALLENGE,
            {
                "reader": self.reader,
                "pin": pin,
                "challenge": challenge.challenge,
                "last_try": self.last_try,
            },
        )
        proof = {
            "challenge_id": challenge.challenge_id,
            "certificate_pem": signed.certificate_pem,
            "card": signed.card.model_dump(mode="json"),
            "signature": signed.signature,
        }
        return await self.client.call(endpoint, proof | request)


def pin_from_stdin() -> PinSource:
    """The PIN as the first line of stdin (`--pin-stdin`)."""

    def read(_card: CardView | None) -> str:
        return checked_pin(sys.stdin.readline().rstrip("\r\n"))

    return read


def pin_from_terminal(out: TextIO) -> PinSource:
    """The PIN typed at the terminal, not echoed."""

    def ask(card: CardView | None) -> str:
        label = "" if card is None else f" of card {card.card.card_number}"
        return checked_pin(getpass.getpass(f"PIN{label} (8 digits): ", stream=out))

    return ask


def checked_pin(pin: str) -> str:
    """A PIN of the right form, so a typo does not cost one of the card's tries."""
    try:
        return normalise_card_pin(pin)
    except InvalidIdentifier as exc:
        raise DomainError(ErrorCode.INVALID, f"PIN {exc}") from exc


def _validated(model: type[HolderT], raw: object, path: str) -> HolderT:
    if not isinstance(raw, dict):
        raise DomainError(ErrorCode.INVALID, f"{path} must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc, prefix=f"{path}.") from exc
