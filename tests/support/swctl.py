"""Running swctl as a user would: a separate process, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Result:
    """What a swctl run left behind."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout as the one JSON document --json promises."""
        return json.loads(self.stdout)


@dataclass(frozen=True)
class Swctl:
    """swctl pointed at one platform, with its own config directory (its session file), and
    the platform's data directory, where swctl finds its credentials."""

    nats_url: str
    config_dir: Path
    data_dir: Path | None = None

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        timeout: float = 60,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Result:
        """Run `swctl ARGS...` (in `cwd`, with `extra_env` over swctl's own variables)."""
        env = {
            "SW_NATS_URL": self.nats_url,
            "SWCTL_CONFIG_DIR": str(self.config_dir),
            "PATH": "/usr/bin:/bin",
        }
        if self.data_dir is not None:
            env["SW_DATA_DIR"] = str(self.data_dir)
        env |= extra_env or {}
        completed = subprocess.run(
            [sys.executable, "-m", "singlewindow.swctl", *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)
