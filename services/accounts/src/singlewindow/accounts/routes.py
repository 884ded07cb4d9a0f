"""The accounts service's one `Routes`: every feature module's handlers register on it."""

from __future__ import annotations

from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.contracts import accounts, registration
from singlewindow.runtime.routes import Routes

routes = Routes[AccountsRuntime](
    accounts.SERVICE,
    asks=(registration.ONBOARDING_DETAILS,),
    publishes=(registration.WITHDRAWN,),
)
