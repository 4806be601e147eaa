"""Pipelines as profiles: what a pipeline declares, in one place, to run on the engine.

A :class:`Profile` names a pipeline's stages (queue kinds: handler, limits, key type), the
successors each stage's outcome asks for (plain enqueues or fan-in group rules), its default
schedules, the runs it offers to ``POST /api/runs`` and its "run until idle" batch (submit,
summary). The engine registers the stages with the queue, runs the successors in the item's
transaction, logs the plan before claiming, adds the schedules and lists the runs; a handler
does its stage's work and returns its outcome, and knows nothing of the stages after it.

Adding a stage is one module-level handler plus one :class:`Stage` line in the profile.

Reading and writing a batch at once
-----------------------------------
A stage whose items are small (many per claim) can save a round trip or a statement per item.
``Stage.start_batch(jobs)`` is called once per claimed batch before the handlers, in the
batch's transaction: it reads what the handlers need in one statement and returns it by item
id; each handler finds its own as ``job.prefetched`` (None when the hook had nothing for it).
It runs in a savepoint: if it raises, it is rolled back and every ``job.prefetched`` stays
None, so a handler must be able to read for itself.

``Stage.finish_batch(done)`` splits the work in two: the handler prepares one item (reads,
computes; it should not write), and the hook writes the prepared outcomes of the whole
claimed batch at once (one COPY, one statement), in the same transaction that then completes
the items. The engine calls the hook once per batch
with the ``(job, outcome)`` of every item whose handler succeeded, then runs the successors
of the items it did not refuse. A hook refuses an item by returning ``{item.id: error}`` and
must then have written nothing for it (check before writing); the item fails with that error
and the rest complete. A hook that raises is rolled back to before it (a savepoint) and
called again for each item alone, each in its own savepoint, so a bad item fails only itself,
with its own error. Exactly once holds as for any item: whatever the hook wrote commits with
"done" or not at all, and a completion refused by fencing rolls it all back.

Example
-------
>>> PROFILE = Profile("demo", stages=(
...     Stage("thumb", make_thumb, then=(Then("index", lambda job, out: [Next("all")]),)),
...     Stage("index", build_index),
... ))
>>> PROFILE.kinds
('thumb', 'index')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from renderer.config import Settings
from renderer.db import Connection
from renderer.errors import QueueError
from renderer.queue import BatchHook, Job, StartHook, register

__all__ = ["Batch", "DefaultSchedule", "Finished", "KeyType", "Next", "Offer", "Profile",
           "Stage", "Submitted", "Then"]


class KeyType(Protocol):
    """What a stage's key parses into: ``parse(key)`` (InputError/ValueError if malformed)
    and a ``key`` property formatting it back."""

    @classmethod
    def parse(cls, key: str) -> Any: ...


@dataclass(frozen=True)
class Next:
    """One successor item: its key and payload (the set and priority are the item's)."""

    key: str
    payload: dict[str, Any] | None = None


@dataclass(frozen=True)
class Then:
    """A successor of a stage: ``select(job, outcome)`` lists the items of ``kind`` to ask
    for after a successful item (none: nothing). With ``fan_in`` each becomes a group rule
    (enqueued once every item of the finished item's group is done); else a plain enqueue,
    ``force``\\ d to run again when done. ``when`` says in words when it fires (the plan)."""

    kind: str
    select: Callable[[Job, Any], Iterable[Next]] = field(compare=False)
    fan_in: bool = False
    force: bool = False
    when: str = ""

    def follow(self, job: Job, outcome: Any) -> None:
        for nxt in self.select(job, outcome):
            if self.fan_in:
                job.when_group_done(self.kind, nxt.key, nxt.payload)
            else:
                job.enqueue(self.kind, nxt.key, nxt.payload, force=self.force)

    def describe(self) -> str:
        how = "fan-in" if self.fan_in else "forced" if self.force else "enqueue"
        return f"{self.kind} ({how}{': ' + self.when if self.when else ''})"


@dataclass(frozen=True)
class Stage:
    """One stage: a queue kind, its handler (``handler(job) -> outcome``), how its items run
    (see :func:`renderer.queue.register`), its key type and its successors. ``until_idle``
    False leaves it out of the profile's run-until-idle (stages fired by schedules, not by
    the batch); ``progress`` False leaves it out of the progress shown (housekeeping).

    ``start_batch(jobs) -> {item_id: value} | None`` and ``finish_batch(done) -> {item_id:
    error} | None``, both optional: read for, and write the outcomes of, a whole claimed
    batch at once (see "Reading and writing a batch at once" in the module docstring); the
    handler then only prepares its item. Worth it with a ``batch_size`` above 1."""

    kind: str
    handler: Callable[[Job], Any] = field(compare=False)
    time_limit: float = 600
    max_attempts: int = 5
    batch_size: int = 1
    lease_seconds: float | None = None
    backoff_seconds: float = 5.0
    key: type[KeyType] | None = None
    then: tuple[Then, ...] = ()
    until_idle: bool = True
    progress: bool = True
    finish_batch: BatchHook | None = field(default=None, compare=False)
    start_batch: StartHook | None = field(default=None, compare=False)

    def describe(self) -> str:
        key = f" key {self.key.__name__}" if self.key is not None else ""
        then = ", ".join(t.describe() for t in self.then) or "nothing"
        hooks = " and ".join(w for w, hook in (("read", self.start_batch),
                                               ("written", self.finish_batch)) if hook)
        at_once = f" {hooks} at once" if hooks else ""
        return (f"{self.kind}{key}: {self.time_limit:g} s, {self.max_attempts} attempts, "
                f"batch {self.batch_size}{at_once} -> {then}")


@dataclass(frozen=True)
class DefaultSchedule:
    """A schedule the profile adds unless the operator removed it (UTC cron)."""

    name: str
    cron: str
    kind: str
    key: str


@dataclass(frozen=True)
class Offer:
    """A run offered to ``POST /api/runs`` as ``{"pipeline": profile, "stage": name, ...}``:
    ``start(conn, spec, settings)`` validates ``fields`` (the only ones allowed), enqueues
    at on-demand priority in the caller's transaction and returns the set id (None:
    nothing to do)."""

    name: str
    fields: frozenset[str]
    start: Callable[[Connection, dict[str, Any], Settings], str | None] = field(compare=False)


@dataclass(frozen=True)
class Submitted:
    """What a batch's submit enqueued: its set (None: none), whether there is work to wait
    for, and whatever the summary needs."""

    set_id: str | None
    work: bool = True
    detail: Any = None


@dataclass(frozen=True)
class Finished:
    """What the engine hands a batch's summary: the submit's answer, the worker (or pool)
    stats, the settings and the wall time."""

    submitted: Submitted
    stats: Any
    settings: Settings
    seconds: float


@dataclass(frozen=True)
class Batch:
    """The profile's "submit, work until idle, summarise" (``renderer.runner``):
    ``submit(conn, options, settings)`` in one transaction, then the profile's kinds are
    worked until idle, then ``summarize(conn, finished)``."""

    submit: Callable[[Connection, dict[str, Any], Settings], Submitted] = field(compare=False)
    summarize: Callable[[Connection, Finished], Any] = field(compare=False)


@dataclass(frozen=True)
class Profile:
    """A pipeline, declared in one place (see the module docstring)."""

    name: str
    stages: tuple[Stage, ...]
    schedules: tuple[DefaultSchedule, ...] = ()
    runs: tuple[Offer, ...] = ()
    batch: Batch | None = None
    extracts: Callable[..., Any] | None = field(default=None, compare=False)
    """``extracts(store, settings) -> list[renderer.extracts.model.Extract]``: what the
    pipeline contributes to the nightly downloads (the ``collect`` stage)."""

    def __post_init__(self) -> None:
        kinds = [s.kind for s in self.stages]
        if len(set(kinds)) != len(kinds):
            raise QueueError(f"profile {self.name!r} names a stage twice", "rename one")

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(s.kind for s in self.stages)

    @property
    def run_kinds(self) -> tuple[str, ...]:
        """The stages a run-until-idle works (and nothing else in the queue)."""
        return tuple(s.kind for s in self.stages if s.until_idle)

    @property
    def progress_kinds(self) -> tuple[str, ...]:
        """The stages a run-until-idle shows progress for, in pipeline order."""
        return tuple(s.kind for s in self.stages if s.until_idle and s.progress)

    def stage(self, kind: str) -> Stage:
        for s in self.stages:
            if s.kind == kind:
                return s
        raise QueueError(f"profile {self.name!r} has no stage {kind!r}",
                         "stages: " + ", ".join(self.kinds))

    def register(self) -> None:
        """Register every stage with the queue (idempotent)."""
        for s in self.stages:
            register(s.kind, time_limit=s.time_limit, max_attempts=s.max_attempts,
                     batch_size=s.batch_size, lease_seconds=s.lease_seconds,
                     backoff_seconds=s.backoff_seconds, successors=s.then,
                     finish_batch=s.finish_batch, start_batch=s.start_batch)(s.handler)

    def plan(self) -> list[str]:
        """The plan, one line per stage, then one for the schedules."""
        lines = [f"{self.name}: {s.describe()}" for s in self.stages]
        if self.schedules:
            lines.append(f"{self.name}: schedules " + ", ".join(
                f"{d.name} '{d.cron}' -> {d.kind}" for d in self.schedules))
        return lines
