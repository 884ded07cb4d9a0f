"""What the filing handlers need."""

from __future__ import annotations

from dataclasses import dataclass, field

from singlewindow.filing.forms import Form
from singlewindow.filing.settings import Settings
from singlewindow.runtime.service import Service


@dataclass(frozen=True)
class Filing:
    """The filing service's runtime parts: the service, its settings and its form."""

    service: Service
    settings: Settings
    form: Form = field(default_factory=Form.load)
