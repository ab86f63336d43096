"""Errors that reach the user as one line (cause and remedy), never as a traceback."""

from __future__ import annotations

EXIT_CONFIG = 78  # EX_CONFIG: the configuration is invalid
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run of the job holds the lock; try again later
EXIT_ERROR = 2  # same as borg's generic error


class UserError(Exception):
    """A problem the user can fix; ``str(err)`` names the cause and the remedy."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(UserError):
    exit_code = EXIT_CONFIG


class JobLocked(UserError):
    exit_code = EXIT_LOCKED
