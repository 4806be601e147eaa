"""One error tree for everything a user can cause.

Every error carries a one-line cause and, where we know it, the fix; the CLI prints
``cause (fix)`` and exits with status 2. Driver errors are wrapped at the connector with
``raise ... from``, so callers match on these classes, never on message text.
"""

from __future__ import annotations


class RendererError(Exception):
    """Base of every error a user can cause or fix."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class ConfigError(RendererError):
    """A setting is missing, malformed or contradictory."""


class DatabaseError(RendererError):
    """PostgreSQL is unreachable, misconfigured or refused a statement."""


class MissingDependency(RendererError):
    """A program or extension we need is not installed (PostgreSQL, PostGIS, ...)."""


class StorageError(RendererError):
    """The object store is unreachable or refused an operation."""


class ObjectNotFound(StorageError, KeyError):
    """The object store has no object under that key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return RendererError.__str__(self)


class InputError(RendererError):
    """An input file, flag or request body is malformed."""


class QueueError(RendererError):
    """A work-queue operation was refused (unknown kind, lost lease, ...)."""


class LeaseLost(QueueError):
    """A completion presented a lease token that is no longer current (fencing)."""
