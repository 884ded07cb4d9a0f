"""What the registration handlers need, as FastStream context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from faststream import Context
from singlewindow.registration.settings import Settings
from singlewindow.shared.passwords import PasswordHashing
from singlewindow.shared.service import Service


@dataclass(frozen=True)
class Registration:
    """The registration service's runtime parts."""

    service: Service
    settings: Settings
    passwords: PasswordHashing


Deps = Annotated[Registration, Context("registration")]
