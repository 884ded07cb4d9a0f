"""Messages to people (SMS): staged in the caller's transaction, sent on the notification stream.

    await send_message(deps, connection, to=mobile, kind="mobile_change", text=text, account=name)

The message goes out on `SW_NOTIFY` alone (`contracts.notify`), once the transaction commits:
the text may carry a one-time code or password, so it is never logged and no other event or
reply repeats it.
"""

from __future__ import annotations

import structlog
from singlewindow.accounts.dependencies import AccountsRuntime
from singlewindow.contracts import accounts as contract
from singlewindow.contracts.identifiers import mask_mobile
from singlewindow.contracts.notify import MessageRequested
from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger("singlewindow.accounts.notifications")


async def send_message(
    deps: AccountsRuntime,
    connection: AsyncConnection,
    *,
    to: str,
    kind: str,
    text: str,
    account: str | None,
) -> None:
    """Stage a message to the mobile number `to`, sent once `connection` commits."""
    await deps.service.emit(
        connection,
        contract.MESSAGE_REQUESTED,
        MessageRequested(to=to, kind=kind, text=text, account=account),
        subject=None,
    )
    log.info("message staged", kind=kind, to=mask_mobile(to), account=account)
