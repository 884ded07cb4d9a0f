"""What the card-gateway handlers need, as FastStream context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from faststream import Context
from singlewindow.card_gateway.gateway import CardGateway
from singlewindow.card_gateway.settings import Settings
from singlewindow.shared.service import Service


@dataclass(frozen=True)
class Gateway:
    """The card-gateway service's runtime parts."""

    service: Service
    settings: Settings
    cards: CardGateway


Deps = Annotated[Gateway, Context("gateway")]
