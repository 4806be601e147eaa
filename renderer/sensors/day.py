"""The sensor pipeline on the work queue: ``sensors-day`` items and the export fan-in.

``plan_etl`` makes the enriched partitions of the run's days (in its own short transaction,
see the migration), names a queue set for the run and enqueues one ``sensors-day`` item per
UTC day (key ``YYYY-MM-DD``) in a group of the run. Each day item replaces its day in
``sensors_enriched`` in the worker's transaction, so the rows and the item's completion
commit together: a crash before commit leaves neither, a rerun replaces, never duplicates.
When every day of the group is done, the fan-in enqueues one ``sensors-export`` item that
writes the run's days as Hive partitions (:mod:`.export`).

A day item's fingerprint is the day's raw version: enqueueing a done day again does nothing
unless raw rows changed since (a late file) or the run forces it (``--from/--to``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from renderer.queue import PRIORITY_BATCH, Job, NewItem, create_set, enqueue_many, register
from renderer.sensors.enrich import day_key, enrich_day, ensure_partitions, parse_day
from renderer.sensors.export import check_format, export_days

__all__ = ["DAY_KIND", "EXPORT_KIND", "EtlRun", "ExportSpec", "plan_etl"]

log = logging.getLogger(__name__)

DAY_KIND = "sensors-day"
EXPORT_KIND = "sensors-export"


@dataclass(frozen=True)
class ExportSpec:
    """Where the fan-in export of a run writes."""

    out: str
    """A folder, ``file://`` or ``s3://`` URL."""
    format: str = "parquet"
    prefix: str = ""

    def payload(self, days: Sequence[date]) -> dict[str, Any]:
        return {"out": self.out, "format": check_format(self.format), "prefix": self.prefix,
                "days": [day_key(d) for d in days]}


@dataclass(frozen=True)
class EtlRun:
    """What :func:`plan_etl` enqueued."""

    group: str
    """The run's group: its day items, and the key of its export item."""
    set_id: str | None
    days: list[date]
    enqueued: int
    """Day items added or re-opened (a pending one stays as it is)."""


def plan_etl(conn: psycopg.Connection[Any], days: Sequence[tuple[date, int]], *,
             export: ExportSpec | None, force: bool = False, name: str | None = None,
             priority: int = PRIORITY_BATCH) -> EtlRun:
    """Enqueue one day item per (day, raw version); commit ``conn`` afterwards.

    ``force`` recomputes days whose raw rows did not change since they were last done.
    """
    ordered = sorted(dict(days).items())
    if not ordered:
        return EtlRun("", None, [], 0)
    ensure_partitions(conn, [d for d, _ in ordered])
    conn.commit()  # partitions in their own short transaction
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    set_id = create_set(conn, name or f"sensors etl {ordered[0][0]}..{ordered[-1][0]} {stamp}")
    group = f"sensors-run-{set_id}"
    payload: dict[str, Any] = {}
    if export is not None:
        payload["export"] = export.payload([d for d, _ in ordered])
    enqueued = enqueue_many(conn, [
        NewItem(kind=DAY_KIND, key=day_key(day), payload=payload, fingerprint=str(version),
                set_id=set_id, priority=priority, group=group, force=force)
        for day, version in ordered
    ])
    return EtlRun(group, set_id, [d for d, _ in ordered], enqueued)


@register(DAY_KIND, time_limit=1800, max_attempts=3)
def handle_day(job: Job) -> None:
    """Replace one day of sensors_enriched; the fan-in exports the run when all are done."""
    day = parse_day(job.item.key)
    rows = enrich_day(job.conn, day)
    log.info("sensors day %s: %d rows", day, rows)
    export = job.item.payload.get("export")
    if export and job.item.group:
        job.when_group_done(EXPORT_KIND, job.item.group, export, set_id=job.item.set_id)


@register(EXPORT_KIND, time_limit=3600, max_attempts=3)
def handle_export(job: Job) -> None:
    """Write the run's days (each object replaced whole, so a retry is harmless)."""
    spec = job.item.payload
    written = export_days(job.conn, [parse_day(d) for d in spec["days"]], spec["out"],
                          spec["format"], spec.get("prefix", ""))
    log.info("sensors export %s: %d days, %d rows", job.item.key, len(written),
             sum(d.rows for d in written))
