"""What the review handlers need."""

from __future__ import annotations

from dataclasses import dataclass

from singlewindow.review.settings import Settings
from singlewindow.runtime.service import Service


@dataclass(frozen=True)
class Review:
    """The review service's runtime parts."""

    service: Service
    settings: Settings
