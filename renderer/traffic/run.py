"""The main job, ``renderer traffic run``: submit a source, work every stage until the
pipeline is idle, and say what was done.

1. :func:`renderer.traffic.ingest.submit` lists the source and enqueues one ``histogram``
   item per (tile, hour) with new files, all in a new set;
2. a worker pool (:func:`renderer.pool.run_pool`, ``until_empty``) runs the traffic kinds:
   histograms fan into speed tiles, speed tiles into reference tiles, reference tiles into
   the coverage refresh, each through the queue;
3. the summary is read back from the database: files, observations and rejected rows
   consumed, speed and reference tiles built, files exported, time taken.

``progress`` (for the CLI's bars) gets, twice a second, ``{stage: (done, remaining)}`` for
the stages ``histogram``, ``speedtile``, ``reftile`` and ``coverage``, counted from the
start of the run.

Example
-------
>>> run(url, "./sample", processes=4).observations  # doctest: +SKIP
1204331
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from renderer import config, db
from renderer.db import query
from renderer.queue import create_set, status

__all__ = ["KINDS", "STAGES", "RunSummary", "run"]

STAGES = ("histogram", "speedtile", "reftile", "coverage")
KINDS = [*STAGES, "histogram-archive"]
"""The queue kinds a traffic run works (nothing else in the queue is touched)."""

Progress = Callable[[dict[str, tuple[int, int]]], None]


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


def _counts(conn: Any) -> dict[str, tuple[int, int]]:
    kinds = status(conn)["kinds"]
    counts = {}
    for stage in STAGES:
        entry = kinds.get(stage, {})
        counts[stage] = (int(entry.get("done", 0)),
                         sum(int(entry.get(s, 0)) for s in ("pending", "running", "held")))
    return counts


def run(url: str, source: str, *, processes: int, after: str = "archive",
        progress: Progress | None = None, settings: config.Settings | None = None) -> RunSummary:
    """Submit ``source`` and work the traffic pipeline until idle (see the module docstring)."""
    from renderer.pool import run_pool
    from renderer.traffic import ingest

    settings = settings or config.load()
    started = time.monotonic()
    with db.transaction(url) as conn:
        since = conn.execute(query("traffic_speedtile.now")).fetchone()["now"]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        set_id = create_set(conn, f"traffic run {stamp}", {"source": source})
        submitted = ingest.submit(conn, source, after=after, set_id=set_id)
    watcher = db.connect(url, autocommit=True)
    try:
        base = _counts(watcher)

        def report(done: int, remaining: int | None) -> None:
            if progress is None:
                return
            now = _counts(watcher)
            progress({s: (max(0, now[s][0] - base[s][0]), now[s][1]) for s in STAGES})

        stats = run_pool(url, processes=processes, kinds=KINDS, until_empty=True,
                         progress=report if progress is not None else None, settings=settings)
        row = watcher.execute(query("traffic_speedtile.run_summary"), {"since": since}).fetchone()
    finally:
        watcher.close()
    from renderer.traffic import weeks

    example_week = (weeks.week_of_hour(row["example_first_hour"])
                    if row["example_first_hour"] is not None else None)
    return RunSummary(
        source=submitted.source, set_id=set_id, store_url=settings.store_url,
        files_new=submitted.files_new, files_consumed=row["consumed"],
        files_rejected=row["rejected_files"], rows_rejected=row["rejected_rows"],
        observations=row["observations"], speed_tiles=row["speed_tiles"], tiles=row["tiles"],
        weeks=tuple(row["weeks"]), segments=row["segments"],
        reference_tiles=row["reference_tiles"], coverage_features=row["coverage_features"],
        files_written=(row["speed_files"] + row["reference_tiles"] + row["coverage_files"]),
        items_done=stats.done, items_failed=stats.failed, processes=stats.processes,
        seconds=time.monotonic() - started, example_segment=row["example_segment"],
        example_mode=row["example_mode"], example_week=example_week)
