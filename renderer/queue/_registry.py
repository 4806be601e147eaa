"""Items, kinds and the registry: what a pipeline stage declares to plug into the queue."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from renderer.errors import QueueError

if TYPE_CHECKING:  # _job imports this module: the annotation only
    from renderer.queue._job import Job

PRIORITY_BATCH = 0
PRIORITY_ON_DEMAND = 100

STATES = ("pending", "held", "running", "done", "failed", "cancelled")
"""Every state an item can be in, in the order status tables show them."""
OPEN_STATES = ("pending", "running", "held")
"""The states of an item not finished yet (what "remaining" counts)."""

Handler = Callable[["Job"], Any]
"""A stage's handler: does the item's work with ``job.conn``; returns its outcome (for the
stage's successors) or None."""
StartHook = Callable[[Sequence["Job"]], Mapping[int, Any] | None]
"""A kind's start-of-batch hook (see :class:`renderer.profile.Stage`): called once per claimed
batch, before the handlers, in the batch's transaction; reads what they need in one go and
returns it by item id (each handler finds its own as ``job.prefetched``)."""
BatchHook = Callable[[Sequence[tuple["Job", Any]]], Mapping[int, BaseException] | None]
"""A kind's end-of-batch hook (see :class:`renderer.profile.Stage`): called once per claimed
batch with the (job, outcome) of every item whose handler succeeded, in the batch's
transaction; writes their output together and returns the items it refused (id -> error),
for which it wrote nothing."""


class Successor(Protocol):
    """What follows a successful item of a kind (see :class:`renderer.profile.Then`):
    ``follow`` declares the downstream work in the item's transaction."""

    def follow(self, job: Job, outcome: Any) -> None: ...


class TimeLimitExceeded(KeyboardInterrupt):
    """An attempt ran past its kind's time limit.

    A KeyboardInterrupt so that psycopg cancels a query it interrupts (leaving the connection
    usable) and so that a handler's ``except Exception`` cannot swallow it.
    """


class Shutdown(KeyboardInterrupt):
    """The worker was asked twice to stop: give the current items back now."""


@dataclass(frozen=True)
class Item:
    """A claimed row of ``work_queue``."""

    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempt: int
    set_id: str | None
    group: str | None
    token: str
    priority: int
    fingerprint: str | None = None

    @classmethod
    def from_tuple(cls, row: Sequence[Any]) -> Item:
        """From a claim's row: its columns are in the order of the fields (sql/queue.sql)."""
        return cls(*row)


@dataclass(frozen=True)
class NewItem:
    """An item to enqueue; the fields mean what :func:`renderer.queue.enqueue` says."""

    kind: str
    key: str
    payload: dict[str, Any] | None = None
    fingerprint: str | None = None
    set_id: str | None = None
    priority: int = PRIORITY_BATCH
    group: str | None = None
    run_after: datetime | None = None
    force: bool = False


@dataclass(frozen=True)
class Kind:
    """A registered kind: its handler and how its items are run."""

    name: str
    handler: Handler = field(compare=False)
    time_limit: float = 600
    max_attempts: int = 5
    batch_size: int = 1
    lease_seconds: float | None = None
    backoff_seconds: float = 5.0
    successors: tuple[Successor, ...] = field(default=(), compare=False)
    finish_batch: BatchHook | None = field(default=None, compare=False)
    start_batch: StartHook | None = field(default=None, compare=False)

    def run(self, job: Job) -> Any:
        """The handler, then the successors its outcome asks for (same transaction); with a
        ``finish_batch`` hook the successors wait for it (:meth:`follow`). The outcome."""
        outcome = self.handler(job)
        if self.finish_batch is None:
            self.follow(job, outcome)
        return outcome

    def follow(self, job: Job, outcome: Any) -> None:
        """Declare the successors a successful item's outcome asks for."""
        for successor in self.successors:
            successor.follow(job, outcome)

    def lease(self, default: float) -> float:
        """The lease of a claim: the kind's, or the setting, never shorter than needed to
        lock the batch right after the claim."""
        return float(self.lease_seconds or default)


KINDS: dict[str, Kind] = {}


def _origin(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def register(kind: str, *, time_limit: float = 600, max_attempts: int = 5, batch_size: int = 1,
             lease_seconds: float | None = None, backoff_seconds: float = 5.0,
             successors: tuple[Successor, ...] = (),
             finish_batch: BatchHook | None = None,
             start_batch: StartHook | None = None) -> Callable[[Handler], Handler]:
    """Register the handler of a kind (a decorator).

    ``batch_size`` items are claimed at once and run one after the other in one transaction
    (use more than 1 for small, fast items); ``time_limit`` seconds bound each attempt;
    after ``max_attempts`` failed attempts the item is ``failed``; retries wait
    ``backoff_seconds * 2**(attempt-1)``, with jitter. ``successors`` follow each
    successful item with the handler's return value (a profile declares them);
    ``start_batch`` reads for a whole batch at once (:data:`StartHook`), ``finish_batch``
    writes a whole batch's output at once (:data:`BatchHook`).

    Example
    -------
    >>> @register("thumbnail", time_limit=60, batch_size=10)
    ... def thumbnail(job):
    ...     job.conn.execute("INSERT INTO thumbs VALUES (%s)", [job.item.key])
    """
    if not kind or len(kind) > 200:
        raise QueueError(f"invalid kind name {kind!r}", "use a short non-empty name")
    if time_limit <= 0 or max_attempts < 1 or batch_size < 1:
        raise QueueError(f"invalid settings for kind {kind!r}",
                         "time_limit > 0, max_attempts >= 1, batch_size >= 1")

    def decorate(handler: Handler) -> Handler:
        existing = KINDS.get(kind)
        if existing is not None and _origin(existing.handler) != _origin(handler):
            raise QueueError(
                f"kind {kind!r} is registered twice ({_origin(existing.handler)} and "
                f"{_origin(handler)})", "give one of them another name")
        KINDS[kind] = Kind(kind, handler, float(time_limit), int(max_attempts), int(batch_size),
                           lease_seconds, float(backoff_seconds), tuple(successors),
                           finish_batch, start_batch)
        return handler

    return decorate


def get_kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS)) or "none"
        raise QueueError(f"unknown work-queue kind {name!r}",
                         f"registered kinds: {known}") from None
