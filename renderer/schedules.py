"""Cron schedules kept in the database, fired through the work queue exactly once per tick.

A schedule names a queue item (kind, key, payload) and a cron expression evaluated in UTC.
:func:`fire_due` locks the enabled schedules (skipping rows another scheduler holds),
advances each one's ``last_tick`` by compare-and-set and, in the same transaction, enqueues
one ``schedule-tick`` item keyed ``"{name}/{tick}"``. Two guards make a tick fire once
however many schedulers run: the compare-and-set, and the queue's (kind, key) upsert. The
tick's handler then enqueues the schedule's own item (forced, so a done item runs again).

Missed ticks (no scheduler running) coalesce into the latest one: a periodic task run late
once is what an operator wants, not a burst of catch-up runs. A new schedule first fires at
its first tick after it was added.

The default schedules come from the profiles (:func:`renderer.pipelines.default_schedules`,
the engine's own ``queue-prune`` included) and are added when a scheduler starts and when
schedules are listed. Removing a default leaves a disabled marker row in its place
(hidden from every listing), so it is not added back until ``restore_defaults``.

Example
-------
>>> add(conn, "coverage-nightly", "0 4 * * *", "coverage", "coverage")
>>> fire_due(conn)          # from `renderer scheduler` or the thread in `renderer serve`
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from renderer import db, pipelines
from renderer import queue as q
from renderer.db import Connection, Jsonb
from renderer.errors import ConstraintViolation, InputError, RendererError
from renderer.profile import DefaultSchedule, Profile, Stage
from renderer.queue import PRIORITY_BATCH, Job, NewItem, enqueue_many

log = logging.getLogger(__name__)

TICK_KIND = "schedule-tick"
PRUNE_KIND = "queue-prune"
REMOVED = "removed_default"
"""Payload flag of the disabled row left in place of a removed default schedule."""

SKIP_WHEN_IDLE: dict[str, Callable[[Connection], bool]] = {}
"""Kinds whose ticks are skipped while their check says nothing waits (set by the kind's
profile module, e.g. ``callbacks-sweep`` in :mod:`renderer.ops`): a skipped tick enqueues
nothing and stays due, so the scheduler's next wake-up asks again."""


@dataclass(frozen=True)
class Schedule:
    """One stored schedule."""

    name: str
    cron: str
    kind: str
    key: str
    payload: dict[str, Any]
    priority: int | None
    enabled: bool
    created_at: datetime
    last_tick: datetime | None
    last_fired_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Schedule:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    @property
    def removed(self) -> bool:
        """A marker of a removed default schedule, not a schedule."""
        return not self.enabled and self.payload.get(REMOVED) is True

    def next_tick(self, now: datetime | None = None) -> datetime:
        return next_tick(self.cron, now or utcnow())

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["next_tick"] = self.next_tick(now) if self.enabled else None
        return out


@dataclass(frozen=True)
class Fired:
    """A tick this scheduler fired."""

    schedule: str
    tick: datetime
    key: str


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_cron(expr: str) -> str:
    """``expr`` normalised, if it is a 5-field cron expression (or ``@daily`` etc.)."""
    text = " ".join(expr.split())
    fields = text.split(" ")
    if not (text.startswith("@") or len(fields) == 5) or not croniter.is_valid(text):
        raise InputError(f"invalid cron expression {expr!r}",
                         "use 5 fields 'minute hour day month weekday' in UTC, "
                         "e.g. '*/5 * * * *' or '0 2 * * 1'")
    return text


def latest_tick(cron: str, now: datetime) -> datetime:
    """The latest tick of ``cron`` at or before ``now`` (UTC).

    >>> latest_tick("*/5 * * * *", datetime(2026, 1, 5, 2, 7, tzinfo=UTC)).minute
    5
    """
    return croniter(cron, now.astimezone(UTC) + timedelta(microseconds=1)).get_prev(datetime)


def next_tick(cron: str, now: datetime) -> datetime:
    """The first tick of ``cron`` strictly after ``now`` (UTC)."""
    return croniter(cron, now.astimezone(UTC)).get_next(datetime)


def due_tick(schedule: Schedule, now: datetime) -> datetime | None:
    """The tick to fire now, or None: the latest tick, if after the last one fired and
    after the schedule was created."""
    tick = latest_tick(schedule.cron, now)
    since = schedule.last_tick or schedule.created_at
    return tick if tick > since else None


def tick_key(name: str, tick: datetime) -> str:
    """The queue key of one tick: ``"traffic-submit/2026-01-05T02:05Z"``."""
    return f"{name}/{tick.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def add(conn: Connection, name: str, cron: str, kind: str, key: str,
        payload: dict[str, Any] | None = None, *, priority: int | None = None,
        enabled: bool = True, replace: bool = False) -> Schedule:
    """Store a schedule; an existing name is an error unless ``replace``."""
    if payload is not None and not isinstance(payload, dict):
        raise InputError("a schedule payload must be a JSON object", "pass e.g. '{\"a\": 1}'")
    params = {"name": name, "cron": check_cron(cron), "kind": kind, "key": key,
              "payload": Jsonb(payload or {}), "priority": priority, "enabled": enabled,
              "replace": replace}
    try:
        with conn.transaction():
            row = conn.execute(db.query("schedules.upsert"), params).fetchone()
            if row is None and _find(conn, name, removed=True) is not None:
                # the marker of a removed default: the new schedule takes its place afresh
                conn.execute(db.query("schedules.remove"), {"name": name})
                row = conn.execute(db.query("schedules.upsert"), params).fetchone()
    except ConstraintViolation as exc:
        raise InputError(f"invalid schedule name {name!r}",
                         "use letters, digits, '.', '_' and '-' (at most 63)") from exc
    if row is None:
        raise InputError(f"a schedule named {name!r} exists",
                         "pass --replace to change it, or remove it first")
    return Schedule.from_row(row)


def _all(conn: Connection) -> list[Schedule]:
    return [Schedule.from_row(r) for r in conn.execute(db.query("schedules.list")).fetchall()]


def _find(conn: Connection, name: str, *, removed: bool) -> Schedule | None:
    return next((s for s in _all(conn) if s.name == name and s.removed == removed), None)


def _add_missing(conn: Connection, defaults: list[DefaultSchedule]) -> list[Schedule]:
    if not defaults:
        return []
    rows = conn.execute(db.query("schedules.add_missing"), {
        "names": [d.name for d in defaults], "crons": [d.cron for d in defaults],
        "kinds": [d.kind for d in defaults], "keys": [d.key for d in defaults]})
    return [Schedule.from_row(r) for r in rows.fetchall()]


def ensure_defaults(conn: Connection) -> list[Schedule]:
    """Add the profiles' default schedules that are missing, except those an operator
    removed; return those added (called when a scheduler starts and by listings)."""
    return _add_missing(conn, pipelines.default_schedules())


def restore_defaults(conn: Connection) -> list[Schedule]:
    """Add the default schedules that are missing, removed ones included; return them."""
    defaults = pipelines.default_schedules()
    for marker in [s for s in _all(conn) if s.removed]:
        conn.execute(db.query("schedules.remove"), {"name": marker.name})
    return _add_missing(conn, defaults)  # added afresh: each waits for its next tick


def list_schedules(conn: Connection) -> list[Schedule]:
    """Every schedule, by name (markers of removed defaults left out)."""
    return [s for s in _all(conn) if not s.removed]


def remove(conn: Connection, name: str) -> Schedule:
    """Remove a schedule; a default one leaves a disabled marker so that it stays removed."""
    found = _find(conn, name, removed=False)
    if found is None:
        raise InputError(f"no schedule named {name!r}", "see `renderer schedule list`")
    if any(d.name == name for d in pipelines.default_schedules()):
        add(conn, name, found.cron, found.kind, found.key, {REMOVED: True}, enabled=False,
            replace=True)
        return found
    row = conn.execute(db.query("schedules.remove"), {"name": name}).fetchone()
    if row is None:
        raise InputError(f"no schedule named {name!r}", "see `renderer schedule list`")
    return Schedule.from_row(row)


def fire_due(conn: Connection, now: datetime | None = None) -> list[Fired]:
    """Fire every due tick in one transaction; return the ticks this call fired."""
    now = now or utcnow()
    with conn.transaction():
        schedules = [Schedule.from_row(r)
                     for r in conn.execute(db.query("schedules.lock_enabled")).fetchall()]
        due = {s.name: t for s in schedules
               if (t := due_tick(s, now)) is not None and not _idle(conn, s.kind)}
        if not due:
            return []
        moved = conn.execute(db.query("schedules.advance"),
                             {"names": list(due), "ticks": list(due.values())}).fetchall()
        fired = [Fired(r["name"], r["last_tick"], tick_key(r["name"], r["last_tick"]))
                 for r in moved]
        enqueue_many(conn, [_tick_item(Schedule.from_row(r)) for r in moved])
    return fired


def _idle(conn: Connection, kind: str) -> bool:
    check = SKIP_WHEN_IDLE.get(kind)
    return check is not None and not check(conn)


def _tick_item(schedule: Schedule) -> NewItem:
    assert schedule.last_tick is not None
    priority = PRIORITY_BATCH if schedule.priority is None else schedule.priority
    return NewItem(kind=TICK_KIND, key=tick_key(schedule.name, schedule.last_tick),
                   payload={"schedule": schedule.name, "tick": schedule.last_tick.isoformat(),
                            "kind": schedule.kind, "key": schedule.key,
                            "payload": schedule.payload, "priority": priority},
                   priority=priority)


def seconds_until_next(conn: Connection, now: datetime | None = None) -> float | None:
    """Seconds until the earliest next tick of the enabled schedules (None: none enabled)."""
    now = now or utcnow()
    ticks = [s.next_tick(now) for s in list_schedules(conn) if s.enabled]
    return min((t - now).total_seconds() for t in ticks) if ticks else None


def run_scheduler(url: str, *, stop: threading.Event | None = None, once: bool = False,
                  max_sleep: float = 30.0,
                  on_fire: Callable[[list[Fired]], None] | None = None) -> int:
    """Fire due ticks until ``stop`` is set (or once); return the number of ticks fired.

    Sleeps until the next tick, at most ``max_sleep`` so that new schedules are picked up;
    a database outage is logged and retried, never fatal, unless ``once``.
    """
    stop = stop or threading.Event()
    total = 0
    started = False
    while not stop.is_set():
        wait = max_sleep
        try:
            with db.connect(url) as conn:
                if not started:
                    for line in pipelines.plan():
                        log.info("plan: %s", line)
                    added = ensure_defaults(conn)
                    conn.commit()
                    if added:
                        log.info("added the default schedules %s",
                                 ", ".join(s.name for s in added))
                    started = True
                fired = fire_due(conn)
                total += len(fired)
                if fired:
                    log.info("fired %s", ", ".join(f.key for f in fired))
                    if on_fire:
                        on_fire(fired)
                until = seconds_until_next(conn)
            if until is not None:
                wait = min(max_sleep, max(until + 0.05, 0.2))
        except RendererError as exc:
            if once:
                raise
            log.warning("scheduler: %s; retrying in %.0f s", " ".join(str(exc).split()), wait)
        if once:
            break
        stop.wait(wait)
    return total


# The engine's own stages: the tick enqueues the schedule's item in the tick's transaction.

def fire_tick(job: Job) -> None:
    """Enqueue the schedule's item (forced, so that a done item runs again)."""
    p = job.item.payload
    job.enqueue(p["kind"], p["key"], p.get("payload") or None,
                priority=p.get("priority"), force=True)


def prune_queue(job: Job) -> None:
    """Delete finished queue items older than the retention."""
    days = job.item.payload.get("days") or job.settings.queue_retention_days
    q.prune(job.conn, older_than=timedelta(days=days))


PROFILE = Profile(
    "engine",
    stages=(
        Stage(TICK_KIND, fire_tick, time_limit=60, max_attempts=5, progress=False),
        Stage(PRUNE_KIND, prune_queue, time_limit=3600, max_attempts=3, progress=False),
    ),
    schedules=(DefaultSchedule("queue-prune", "30 3 * * *", PRUNE_KIND, PRUNE_KIND),),
)
