"""What the registration handlers need."""

from __future__ import annotations

from dataclasses import dataclass

from singlewindow.registration.settings import Settings
from singlewindow.runtime.passwords import PasswordHashing
from singlewindow.runtime.service import Service


@dataclass(frozen=True)
class Registration:
    """The registration service's runtime parts."""

    service: Service
    settings: Settings
    passwords: PasswordHashing
