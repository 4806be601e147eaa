"""The sensor pipeline on the work queue: ``sensors-day`` items and the export fan-in.

``plan_etl`` records the run (its days, the raw version of each, its export target) and
enqueues one ``sensors-day`` item per UTC day (key ``YYYY-MM-DD``) in the queue set of the run,
all in the caller's transaction: a crash before its commit leaves no run and no item, after it
both. (Days need no partition beforehand: a day item makes its partition when it replaces it.)
Each day item replaces its day in ``sensors_enriched`` in the worker's transaction, so the
rows and the item's completion commit together: a crash before commit leaves neither, and a
rerun replaces the day, never duplicates it.

Fan-in: every day item belongs to one standing group, ``sensors-days``, with the rule "when
all its items are done, enqueue ``sensors-export``". A day item keeps the group it was first
enqueued with and a rule keeps its first payload (both by the queue's design), so the rule
carries nothing run-specific: the export item writes every recorded run whose days are all
enriched (from at least the raw version the run saw), grouping runs by target. A late file
that re-opens a day re-opens the group, and its run is exported when the group closes again.

A day that the ingest which brought it enriched already (:mod:`.fused`) is planned as any
other, for the export; its item finds the work done (:func:`enrich_item`) and completes.

A day item's fingerprint is the day's raw version: enqueueing a done day again does nothing
unless raw rows changed since (a late file) or the run forces it (``--from/--to``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from renderer.config import Settings
from renderer.db import Connection, query
from renderer.profile import Next
from renderer.queue import PRIORITY_BATCH, Job, NewItem, add_rule, create_set, enqueue_many
from renderer.sensors.enrich import day_key, enrich_day, parse_day, pending_days
from renderer.sensors.export import check_format, export_days

__all__ = ["DAY_KIND", "EXPORT_KIND", "GROUP", "STORE_PREFIX", "EtlRun", "ExportSpec",
           "default_export", "enrich_item", "export_runs", "export_when_days_done", "handle_day",
           "handle_export", "plan_days", "plan_etl"]

log = logging.getLogger(__name__)

DAY_KIND = "sensors-day"
EXPORT_KIND = "sensors-export"
GROUP = "sensors-days"
STORE_PREFIX = "sensors"


@dataclass(frozen=True)
class ExportSpec:
    """Where the fan-in export of a run writes."""

    out: str
    """A folder, ``file://`` or ``s3://`` URL."""
    format: str = "parquet"
    prefix: str = ""


def default_export(settings: Settings, fmt: str = "parquet") -> ExportSpec:
    """Where a run exports when it is given no target: ``[sensors] export`` (or
    ``RENDERER_SENSORS_EXPORT``) when set, else the object store under ``sensors/``; the one
    place the CLI and the web run API take it from."""
    if settings.sensors_export:
        return ExportSpec(settings.sensors_export, check_format(fmt))
    return ExportSpec(settings.store_url, check_format(fmt), STORE_PREFIX)


@dataclass(frozen=True)
class EtlRun:
    """What :func:`plan_etl` enqueued."""

    run: str
    """The run's id (also its queue set)."""
    days: list[date]
    enqueued: int
    """Day items added or re-opened (a pending or running one is left to finish)."""


def plan_etl(conn: Connection, days: Sequence[tuple[date, int]], *,
             export: ExportSpec | None, force: bool = False, name: str | None = None,
             priority: int = PRIORITY_BATCH) -> EtlRun:
    """Record a run of (day, raw version) pairs and enqueue its day items, all in the caller's
    transaction (it commits nothing).

    ``force`` recomputes days whose raw rows did not change since they were last done.
    """
    ordered = sorted(dict(days).items())
    if not ordered:
        return EtlRun("", [], 0)
    if force:  # recomputed, even where ingest enriched the day
        conn.execute(query("sensors_day.clear_ingest_enriched"),
                     {"days": [d for d, _ in ordered]})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    run = create_set(conn, name or f"sensors {ordered[0][0]}..{ordered[-1][0]} @{stamp}")
    conn.execute(query("sensors_day.record_run"), {
        "id": run, "days": [d for d, _ in ordered], "versions": [v for _, v in ordered],
        "out": export.out if export else None,
        "format": check_format(export.format) if export else None,
        "prefix": export.prefix if export else ""})
    enqueued = enqueue_many(conn, [
        NewItem(kind=DAY_KIND, key=day_key(day), payload={"run": run},
                fingerprint=str(version), set_id=run, priority=priority, group=GROUP,
                force=force)
        for day, version in ordered
    ])
    # after the enqueue: fires at once only when nothing of the group is left to do
    add_rule(conn, DAY_KIND, GROUP, EXPORT_KIND, GROUP)
    return EtlRun(run, [d for d, _ in ordered], enqueued)


def plan_days(conn: Connection, start: date | None, end: date | None, *,
              export: ExportSpec | None, force: bool = False,
              priority: int = PRIORITY_BATCH) -> EtlRun:
    """The days to enrich, planned as :func:`plan_etl`: without ``start``/``end`` every day
    whose raw rows changed since it was last enriched (every day with raw rows when
    ``force``), with them every day in the range, recomputed."""
    explicit = start is not None or end is not None
    days = pending_days(conn, start, end, every=explicit or force)
    return plan_etl(conn, days, export=export, force=explicit or force, priority=priority)


def export_runs(conn: Connection) -> list[str]:
    """Export every recorded run whose days are all enriched (each (target, day) written
    once however many runs share it); returns the ids of the runs exported."""
    runs = conn.execute(query("sensors_day.exportable_runs"), {}).fetchall()
    targets: dict[tuple[str, str, str], set[date]] = defaultdict(set)
    for r in runs:
        targets[(r["export_out"], r["export_format"], r["export_prefix"])].update(r["days"])
    rows: dict[tuple[tuple[str, str, str], date], int] = {}
    for target, wanted in targets.items():
        for written in export_days(conn, sorted(wanted), *target):
            rows[(target, written.day)] = written.rows
    conn.execute(query("sensors_day.mark_exported"), {
        "ids": [r["id"] for r in runs],
        "rows": [sum(rows[((r["export_out"], r["export_format"], r["export_prefix"]), d)]
                     for d in r["days"]) for r in runs]})
    return [r["id"] for r in runs]


def enrich_item(conn: Connection, day: date, engine: str = "c") -> tuple[int, bool]:
    """A day item's work, in the caller's transaction: (rows, computed). Nothing to compute
    when the ingest that brought the day enriched it and nothing changed since
    (:mod:`.fused`); else the day is enriched (:func:`.enrich.enrich_day`)."""
    done = conn.execute(query("sensors_day.skip_enriched"), {"day": day}).fetchone()
    if done is not None:
        return int(done["rows"]), False
    rows = enrich_day(conn, day, engine)
    conn.execute(query("sensors_day.clear_ingest_enriched"), {"days": [day]})
    return rows, True


def handle_day(job: Job) -> None:
    """Replace one day of sensors_enriched (unless ingest did); the export fans in when the
    group is done."""
    day = parse_day(job.item.key)
    rows, computed = enrich_item(job.conn, day, job.settings.sensors_enrich_engine)
    log.info("sensors day %s: %d rows%s", day, rows, "" if computed else " (enriched by ingest)")


def export_when_days_done(job: Job, outcome: None) -> list[Next]:
    """The export a day item's group fans into (items enqueued by hand, from psql, may have
    no group: then none)."""
    return [] if job.item.group is None else [Next(job.item.group)]


def handle_export(job: Job) -> None:
    """Write the runs that are ready (objects replaced whole, so a retry is harmless)."""
    runs = export_runs(job.conn)
    log.info("sensors export: %d runs", len(runs))
