"""The accounts service's handlers, a module per feature, all on the one `routes`.

- `login`: password login, the session it opens, the caller's own account, logout
- `cards`: card challenges, card login and card status
- `enterprises`: the onboarding check, approved applications, administrators by legal-person card
- `operators`: operators added by their administrator, each with an operator card
- `scope`: the enterprise's business scope

Every session request goes through `authorization.authorize`.
"""

from __future__ import annotations

from singlewindow.accounts import cards, enterprises, login, operators, scope
from singlewindow.accounts.routes import routes

__all__ = ["cards", "enterprises", "login", "operators", "routes", "scope"]
