"""The claim secrets swctl keeps: one file per application, readable by its owner only.

The submit reply is the only place the platform ever gives an application's claim secret, and
showing or resubmitting the application needs it. swctl keeps it under its config directory,
`applications/<application id>.json`, as it keeps the session.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from singlewindow.swctl.client import config_dir
from singlewindow.swctl.errors import SessionFileError

_APPLICATION_ID = re.compile(r"app_[A-Za-z0-9_-]{8,40}")
"""As the contract has it; checked here too, since the id becomes a file name."""


def claim_file(application_id: str) -> Path | None:
    """Where the claim secret of `application_id` is kept; None for a malformed id."""
    if not _APPLICATION_ID.fullmatch(application_id):
        return None
    return config_dir() / "applications" / f"{application_id}.json"


def keep_claim(application_id: str, claim_secret: str) -> Path:
    """Keep an application's claim secret in a 0600 file; return the file."""
    path = claim_file(application_id)
    if path is None:
        raise SessionFileError(f"the platform answered a malformed application id {application_id}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"application_id": application_id, "claim_secret": claim_secret}, handle)
    except OSError as exc:
        raise SessionFileError(f"cannot keep the claim secret in {path}: {exc.strerror}") from exc
    return path


def load_claim(application_id: str) -> str | None:
    """The kept claim secret of `application_id`; None if swctl keeps none."""
    path = claim_file(application_id)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SessionFileError(f"cannot read the claim secret in {path}: {exc.strerror}") from exc
    except ValueError:
        data = None
    secret = data.get("claim_secret") if isinstance(data, dict) else None
    if not isinstance(secret, str) or not secret:
        raise SessionFileError(
            f"the claim secret file {path} is damaged; pass the secret with --claim-secret-stdin"
        )
    return secret
