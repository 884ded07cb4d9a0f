"""What the card-gateway handlers need."""

from __future__ import annotations

from dataclasses import dataclass

from singlewindow.card_gateway.gateway import CardGateway
from singlewindow.card_gateway.settings import Settings
from singlewindow.runtime.service import Service


@dataclass(frozen=True)
class Gateway:
    """The card-gateway service's runtime parts."""

    service: Service
    settings: Settings
    cards: CardGateway
