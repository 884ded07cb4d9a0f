"""The accounts service's handlers, a module per feature, all on the one `routes`.

- `login`: password login, the session it opens, the caller's own account, logout
- `cards`: card challenges, card login and card status
- `enterprises`: the onboarding check, approved applications, administrators by legal-person card
- `operators`: operators added by their administrator, each with an operator card
- `scope`: the enterprise's business scope
- `staff`: the platform's own staff accounts and sessions, and the bootstrap administrator
- `cardbinding`: My IC card: bind, unbind and show the account's card
- `mobile`: the caller's own mobile number, changed with a one-time code (`codes`)
- `individuals`: individual users, activated with a one-time code to their mobile
- `selfservice`: the caller's own details and password (issue 9; `operators` has the cardless
  operators, listed, changed, disabled, enabled, deleted, their one-time passwords reset)

Every session request goes through `authorization.authorize`, every staff request through
`staff.authorize_staff`.
"""

from __future__ import annotations

from singlewindow.accounts import (  # issue 9: one-time codes
    cards,
    enterprises,
    individuals,
    login,
    mobile,
    operators,
    scope,
    selfservice,
    staff,
)
from singlewindow.accounts.routes import routes

__all__ = ["cards", "enterprises", "login", "operators", "routes", "scope", "staff"]

# --- My IC card (issue 9) ---
from singlewindow.accounts import cardbinding

__all__ += ["cardbinding"]
__all__ += ["individuals", "mobile"]
__all__ += ["selfservice"]

# --- customs filing (issue 11) ---
from singlewindow.accounts import callers  # noqa: E402

__all__ += ["callers"]

# --- qualifications and permissions (issue 10) ---
from singlewindow.accounts import permissions, qualifications  # noqa: E402

__all__ += ["permissions", "qualifications"]
