"""User-facing error families.

Each exception's message says what went wrong and what to do about it. The CLI turns any
:class:`NinError` into one line on stderr and a non-zero exit code; the server turns it into
``{"error": message}`` with the matching HTTP status.
"""

from __future__ import annotations


class NinError(Exception):
    """Base class of every error a user can cause and fix."""

    exit_code = 2


class ConfigError(NinError, ValueError):
    """A config name, a ``--set`` override or an option is invalid."""


class MissingDependencyError(ConfigError):
    """An optional package is not installed; the message names the extra that installs it (:mod:`nin.extras`)."""


class DataError(NinError):
    """A dataset file is missing, truncated, corrupt or of the wrong format."""


class CheckpointError(NinError):
    """A checkpoint file is missing, truncated, foreign or unsafe."""


class TrainingError(NinError):
    """Training cannot go on (diverged, stalled); the last good checkpoint is kept."""


class RequestError(NinError):
    """A request to the service is malformed; carries the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
