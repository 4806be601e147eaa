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

import psycopg
from croniter import croniter
from psycopg.types.json import Jsonb

from renderer import db
from renderer.errors import ConstraintViolation, InputError, RendererError
from renderer.queue import PRIORITY_BATCH, Job, NewItem, enqueue_many, register

log = logging.getLogger(__name__)

TICK_KIND = "schedule-tick"


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


# name, cron, kind, key: also written literally by migration 0006 (a test keeps them equal).
DEFAULTS: list[tuple[str, str, str, str]] = [
    ("traffic-submit", "*/5 * * * *", "traffic-submit", "traffic-submit"),
    ("traffic-speedtiles", "0 2 * * 1", "traffic-schedule", "traffic-schedule"),
    ("queue-prune", "30 3 * * *", "queue-prune", "queue-prune"),
]


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


def add(conn: psycopg.Connection[Any], name: str, cron: str, kind: str, key: str,
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
    except ConstraintViolation as exc:
        raise InputError(f"invalid schedule name {name!r}",
                         "use letters, digits, '.', '_' and '-' (at most 63)") from exc
    if row is None:
        raise InputError(f"a schedule named {name!r} exists",
                         "pass --replace to change it, or remove it first")
    return Schedule.from_row(row)


def restore_defaults(conn: psycopg.Connection[Any]) -> list[Schedule]:
    """Add the default schedules that are missing; return those added."""
    names, crons, kinds, keys = (list(col) for col in zip(*DEFAULTS, strict=True))
    rows = conn.execute(db.query("schedules.add_missing"),
                        {"names": names, "crons": crons, "kinds": kinds, "keys": keys})
    return [Schedule.from_row(r) for r in rows.fetchall()]


def list_schedules(conn: psycopg.Connection[Any]) -> list[Schedule]:
    return [Schedule.from_row(r) for r in conn.execute(db.query("schedules.list")).fetchall()]


def remove(conn: psycopg.Connection[Any], name: str) -> Schedule:
    row = conn.execute(db.query("schedules.remove"), {"name": name}).fetchone()
    if row is None:
        raise InputError(f"no schedule named {name!r}", "see `renderer schedule list`")
    return Schedule.from_row(row)


def fire_due(conn: psycopg.Connection[Any], now: datetime | None = None) -> list[Fired]:
    """Fire every due tick in one transaction; return the ticks this call fired."""
    now = now or utcnow()
    with conn.transaction():
        schedules = [Schedule.from_row(r)
                     for r in conn.execute(db.query("schedules.lock_enabled")).fetchall()]
        due = {s.name: t for s in schedules if (t := due_tick(s, now)) is not None}
        if not due:
            return []
        moved = conn.execute(db.query("schedules.advance"),
                             {"names": list(due), "ticks": list(due.values())}).fetchall()
        fired = [Fired(r["name"], r["last_tick"], tick_key(r["name"], r["last_tick"]))
                 for r in moved]
        enqueue_many(conn, [_tick_item(Schedule.from_row(r)) for r in moved])
    return fired


def _tick_item(schedule: Schedule) -> NewItem:
    assert schedule.last_tick is not None
    priority = PRIORITY_BATCH if schedule.priority is None else schedule.priority
    return NewItem(kind=TICK_KIND, key=tick_key(schedule.name, schedule.last_tick),
                   payload={"schedule": schedule.name, "tick": schedule.last_tick.isoformat(),
                            "kind": schedule.kind, "key": schedule.key,
                            "payload": schedule.payload, "priority": priority},
                   priority=priority)


def seconds_until_next(conn: psycopg.Connection[Any], now: datetime | None = None) -> float | None:
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
    while not stop.is_set():
        wait = max_sleep
        try:
            with db.connect(url) as conn:
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


# Handlers. The tick enqueues the schedule's item in the tick's own transaction.

@register(TICK_KIND, time_limit=60, max_attempts=5)
def _fire_tick(job: Job) -> None:
    p = job.item.payload
    job.enqueue(p["kind"], p["key"], p.get("payload") or None,
                priority=p.get("priority"), force=True)


def traffic_source(settings: Any) -> str | None:
    """The traffic source root URL (``traffic_source``: ``[traffic] source`` or
    ``$RENDERER_TRAFFIC_SOURCE``), or None when it is not set."""
    return settings.traffic_source or None


@register("traffic-submit", time_limit=600, max_attempts=3)
def _traffic_submit(job: Job) -> None:
    """List the traffic source and enqueue histogram items for new files."""
    from renderer import config
    from renderer.traffic import ingest

    source = job.item.payload.get("source") or traffic_source(config.load())
    if source is None:
        # No source configured: nothing to list. Logged, not failed, so that the default
        # schedule does not fill the failure list every five minutes on a fresh install.
        log.warning("traffic-submit: no traffic source configured (set RENDERER_TRAFFIC_SOURCE)")
        return
    after = job.item.payload.get("after") or config.load().traffic_after
    ingest.submit(job.conn, source, after=after, set_id=job.item.set_id)


@register("traffic-schedule", time_limit=600, max_attempts=3)
def _traffic_schedule(job: Job) -> None:
    """Enqueue the next week's speed tiles, as OpenTraffic's weekly service did."""
    from renderer.traffic import schedule

    p = job.item.payload
    schedule.enqueue_weeks(job.conn, week=p.get("week"), bbox=p.get("bbox"),
                           level=p.get("level"), priority=PRIORITY_BATCH)


@register("queue-prune", time_limit=3600, max_attempts=3)
def _queue_prune(job: Job) -> None:
    """Delete finished queue items older than the retention."""
    from renderer import config, queue

    days = job.item.payload.get("days") or config.load().queue_retention_days
    queue.prune(job.conn, older_than=timedelta(days=days))
