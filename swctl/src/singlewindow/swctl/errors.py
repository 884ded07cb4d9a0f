"""swctl's exit codes and the failures of its own (the platform's refusals are `DomainError`s).

Importable without pydantic or nats: `swctl --help` and a usage error need nothing else.
"""

from __future__ import annotations

EXIT_OK = 0
"""Done."""
EXIT_REFUSED = 1
"""Refused: validation, conflict, not found, wrong password, not logged in."""
EXIT_USAGE = 2
"""The command line is wrong, or a file it names cannot be read as JSON."""
EXIT_UNREACHABLE = 3
"""The platform (NATS, or the service behind a subject) did not answer."""
EXIT_INTERNAL = 4
"""swctl itself failed unexpectedly: a bug, reported as one line (SWCTL_DEBUG=1 for more)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report SIGINT."""
EXIT_PIPE_CLOSED = 141
"""Whoever read stdout stopped early (`swctl ... | head -1`), as shells report SIGPIPE."""


class UsageError(Exception):
    """The command line itself is wrong (exit code 2); `usage` is the command's usage line."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class SessionFileError(Exception):
    """The saved session cannot be read or written (exit code 1)."""
