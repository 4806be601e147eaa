"""One error tree for everything a user can cause.

Every error carries a one-line cause and, where we know it, the fix; the CLI prints
``cause (fix)`` and exits with status 2 for usage errors, 1 for runtime failures. Driver
errors are translated at the connector (:mod:`renderer.db`) into the ``DatabaseError``
branch by SQLSTATE, with ``raise ... from``, so callers match on these classes (or on
``constraint``), never on message text and never on the driver's classes.
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


class MissingDependency(RendererError):
    """A program or extension we need is not installed (PostgreSQL, PostGIS, ...)."""


class InputError(RendererError):
    """An input file, flag or request body is malformed."""


# -- the database --------------------------------------------------------------------------

class DatabaseError(RendererError):
    """PostgreSQL is unreachable, misconfigured or refused a statement.

    ``sqlstate`` is the server's five-character code (None when the failure was the
    client's), ``constraint`` the name of the violated constraint, when there is one.
    """

    def __init__(self, message: str, fix: str | None = None, *, sqlstate: str | None = None,
                 constraint: str | None = None) -> None:
        super().__init__(message, fix)
        self.sqlstate = sqlstate
        self.constraint = constraint


class DatabaseUnavailable(DatabaseError):
    """The server cannot be reached, or the connection to it was lost (class 08, admin
    shutdown, idle-session timeouts): reconnect and try again."""


class SchemaMismatch(DatabaseError):
    """A table, column or function the code expects is missing: the schema is not current."""


class ConstraintViolation(DatabaseError):
    """A row broke a constraint (class 23); ``constraint`` names it."""


class AlreadyExists(ConstraintViolation):
    """A unique constraint refused a second row with the same key (23505)."""


class InvalidValue(DatabaseError):
    """The server refused a value: out of range, malformed text, a NUL byte (class 22)."""


class TransactionConflict(DatabaseError):
    """A serialization failure or deadlock (class 40): the transaction may be retried."""


class StatementCanceled(DatabaseError):
    """A statement was canceled: a timeout or a cancel request (57014)."""


class LockNotAvailable(DatabaseError):
    """A lock asked for with NOWAIT is held by someone else (55P03)."""


# -- storage -------------------------------------------------------------------------------

class StorageError(RendererError):
    """The object store is unreachable or refused an operation."""


class ObjectNotFound(StorageError, KeyError):
    """The object store has no object under that key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return RendererError.__str__(self)


class InvalidKey(StorageError, ValueError):
    """An object key or prefix is malformed or would lead outside the store's root."""


class InvalidMetadata(StorageError, ValueError):
    """Object metadata that S3 could not carry: a bad name, a non-ASCII value, too large."""


# -- the queue -----------------------------------------------------------------------------

class QueueError(RendererError):
    """A work-queue operation was refused (unknown kind, lost lease, ...)."""


class LeaseLost(QueueError):
    """A completion presented a lease token that is no longer current (fencing)."""

    def __init__(self, message: str, fix: str | None = None, ids: list[int] | None = None):
        super().__init__(message, fix)
        self.ids = ids or []
