"""What the review handlers need, as FastStream context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from faststream import Context
from singlewindow.review.settings import Settings
from singlewindow.shared.service import Service


@dataclass(frozen=True)
class Review:
    """The review service's runtime parts."""

    service: Service
    settings: Settings


Deps = Annotated[Review, Context("review")]
