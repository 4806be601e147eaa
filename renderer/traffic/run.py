"""The main job, ``renderer traffic run``: the traffic profile's batch, run by the engine's
generic "submit, work until idle, summarise" (:func:`renderer.runner.run_until_idle`).

1. :func:`submit` creates the run's set, lists the source and enqueues one ``histogram``
   item per (tile, hour) with new files (a run's ``min_count`` rides in their payloads, and
   from there in the speed tiles' payloads);
2. the engine works the profile's stages until idle: histograms fan into speed tiles,
   speed tiles into reference tiles, reference tiles into the coverage refresh, each
   through the queue, with progress per stage;
3. :func:`summarize` reads the summary back from the database: files, observations and
   rejected rows consumed, speed and reference tiles built, files exported, time taken.

Example
-------
>>> run_until_idle(url, traffic.profile.PROFILE, {"source": "./sample"},
...                processes=4, settings=settings).observations  # doctest: +SKIP
1204331
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from renderer import db
from renderer.config import Settings
from renderer.db import Connection
from renderer.errors import InputError
from renderer.profile import Finished, Submitted
from renderer.queue import create_set
from renderer.traffic import ingest, weeks

__all__ = ["RunSummary", "submit", "summarize"]


@dataclass(frozen=True)
class RunSummary:
    """What one run did."""

    source: str
    set_id: str
    store_url: str
    files_new: int
    files_consumed: int
    files_rejected: int
    rows_rejected: int
    observations: int
    speed_tiles: int
    tiles: int
    weeks: tuple[str, ...]
    segments: int
    reference_tiles: int
    coverage_features: int | None
    files_written: int
    items_done: int
    items_failed: int
    processes: int
    seconds: float
    example_segment: int | None
    example_mode: str | None
    example_week: str | None

    @property
    def observations_per_second(self) -> float:
        return self.observations / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "weeks": list(self.weeks),
                "observations_per_second": round(self.observations_per_second, 1)}


def submit(conn: Connection, options: dict[str, Any], settings: Settings) -> Submitted:
    """Create the run's set and enqueue the source's new files (``options``: ``source``,
    ``after`` (default: the setting), ``min_count``)."""
    source = options.get("source")
    if not source:
        raise InputError("a traffic run needs a source", "pass --source ROOT")
    min_count = options.get("min_count")
    if min_count is not None and (not isinstance(min_count, int) or min_count < 1):
        raise InputError(f"min count must be at least 1, not {min_count}", "use --min-count 1")
    since = db.scalar(conn, "traffic_speedtile.now")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    set_id = create_set(conn, f"traffic run {stamp}", {"source": source})
    submitted = ingest.submit(conn, source, after=options.get("after") or settings.traffic_after,
                              set_id=set_id, follow_symlinks=settings.follow_symlinks,
                              options=None if min_count is None else {"min_count": min_count})
    return Submitted(set_id, True, (since, submitted))


def summarize(conn: Connection, finished: Finished) -> RunSummary:
    """What the run did, read back from the database (see the module docstring)."""
    since, submitted = finished.submitted.detail
    row = db.one(conn, "traffic_speedtile.run_summary", {"since": since})
    stats = finished.stats
    example_week = (weeks.week_of_hour(row["example_first_hour"])
                    if row["example_first_hour"] is not None else None)
    return RunSummary(
        source=submitted.source, set_id=finished.submitted.set_id or "",
        store_url=finished.settings.store_url,
        files_new=submitted.files_new, files_consumed=row["consumed"],
        files_rejected=row["rejected_files"], rows_rejected=row["rejected_rows"],
        observations=row["observations"], speed_tiles=row["speed_tiles"], tiles=row["tiles"],
        weeks=tuple(row["weeks"]), segments=row["segments"],
        reference_tiles=row["reference_tiles"], coverage_features=row["coverage_features"],
        files_written=(row["speed_files"] + row["reference_tiles"] + row["coverage_files"]),
        items_done=stats.done, items_failed=stats.failed,
        processes=getattr(stats, "processes", 1),  # one in-process worker: WorkerStats
        seconds=finished.seconds, example_segment=row["example_segment"],
        example_mode=row["example_mode"], example_week=example_week)
