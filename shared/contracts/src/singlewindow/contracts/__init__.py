"""The wire contracts: per owning service its endpoints, events and models; identifiers, errors,
the event envelope and the reply envelope. Installable by an integrating system without the
server stack (pydantic, python-stdnum and phonenumbers only)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

SERVICE_CONTRACTS = ("registration", "review", "accounts", "card_gateway", "filing")
"""The contract module of each service, by the service's module name."""


def service_contracts() -> tuple[ModuleType, ...]:
    """Every service's contract module (the building blocks beside them are not contracts)."""
    found = {info.name for info in pkgutil.iter_modules(__path__)}
    unknown = (
        found
        - set(SERVICE_CONTRACTS)
        - {"bus", "common", "endpoints", "errors", "events", "identifiers", "notify", "wire"}
    )
    if unknown:
        raise LookupError(f"add {sorted(unknown)} to SERVICE_CONTRACTS or the building blocks")
    return tuple(importlib.import_module(f"{__name__}.{name}") for name in SERVICE_CONTRACTS)
