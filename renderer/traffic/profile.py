"""The traffic pipeline, declared in one place: its stages and how they follow each other,
its default schedules, the runs it offers over HTTP and its run-until-idle batch.

::

    histogram --fan-in: every hour of (tile, week) done--> speedtile
         \\--after commit, unless kept--> histogram-archive
    speedtile --when its week is in the reference window--> reftile --> coverage

Each handler lives in its stage's module and returns its outcome; the successors below
turn the outcome into the next items, in the item's transaction.
"""

from __future__ import annotations

from typing import Any

from renderer.bbox import parse_bbox
from renderer.config import Settings
from renderer.db import Connection
from renderer.errors import InputError
from renderer.profile import Batch, DefaultSchedule, Offer, Profile, Stage, Then
from renderer.queue import PRIORITY_ON_DEMAND, create_set
from renderer.storage import within
from renderer.traffic import coverage, histogram, ingest, reftile, run, schedule, speedtile, weeks
from renderer.traffic.extract import extracts
from renderer.traffic.layout import Prefix

__all__ = ["PROFILE"]

SUBMIT = "traffic-submit"
SCHEDULE = "traffic-schedule"


# -- the runs offered to POST /api/runs: fields checked here, errors one line ---------------

def _week(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return weeks.week_name(value)
    except ValueError as exc:
        raise InputError(f"invalid week {value!r}", "write an ISO week like 2026-W47") from exc


def _level(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2:
        raise InputError(f"invalid level {value!r}", "use 0, 1 or 2")
    return value


def _modes(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise InputError(f"invalid modes {value!r}", 'give a list like ["auto"]')
    return value


def start_speedtiles(conn: Connection, spec: dict[str, Any], settings: Settings) -> str:
    """Rebuild the speed tiles of a week (default: the next one), on demand."""
    bbox = spec.get("bbox")
    return schedule.enqueue_weeks(
        conn, week=_week(spec.get("week")),
        bbox=parse_bbox(bbox) if bbox is not None else None,
        level=_level(spec.get("level")), modes=_modes(spec.get("modes")),
        priority=PRIORITY_ON_DEMAND)


def start_submit(conn: Connection, spec: dict[str, Any], settings: Settings) -> str:
    """Submit the traffic source (or ``source``, inside it or an allowed root), on demand:
    a request must not make the service read, and archive, files anywhere it can reach."""
    source = spec.get("source") or settings.traffic_source
    if not source or not isinstance(source, str):
        raise InputError("no traffic source", "pass \"source\" or set RENDERER_TRAFFIC_SOURCE")
    roots = [r for r in (settings.traffic_source, *settings.traffic_allowed_sources.split(","))
             if r.strip()]
    if not within(source, [r.strip() for r in roots]):
        raise InputError(f"source {source!r} is not under the traffic source or an allowed root",
                         "submit it with `renderer traffic submit`, or add it to "
                         "RENDERER_TRAFFIC_ALLOWED_SOURCES")
    set_id = create_set(conn, f"traffic submit {source}")
    ingest.submit(conn, source, priority=PRIORITY_ON_DEMAND, set_id=set_id,
                  follow_symlinks=settings.follow_symlinks)
    return set_id


PROFILE = Profile(
    "traffic",
    stages=(
        Stage(histogram.KIND, histogram.handle_histogram, time_limit=900, max_attempts=5,
              batch_size=32, key=Prefix, start_batch=histogram.start_histograms,
              finish_batch=histogram.finish_histograms, then=(
                  Then(speedtile.KIND, speedtile.for_histogram, fan_in=True,
                       when="every hour of its (level-0 tile, week) is done"),
                  Then(histogram.ARCHIVE_KIND, histogram.archive_after, force=True,
                       when="files were consumed and are not kept"))),
        Stage(histogram.ARCHIVE_KIND, histogram.handle_archive, time_limit=600, max_attempts=10,
              key=Prefix, progress=False),
        Stage(speedtile.KIND, speedtile.handle, time_limit=1800, max_attempts=5,
              key=speedtile.TileWeek, then=(
                  Then(reftile.KIND, reftile.for_speed_week, force=True,
                       when="its week is in the reference window"),)),
        Stage(reftile.KIND, reftile.handle, time_limit=1800, max_attempts=5,
              key=reftile.TileRef, then=(
                  Then(coverage.KIND, coverage.for_reference, force=True),)),
        Stage(coverage.KIND, coverage.handle, time_limit=600, max_attempts=5),
        Stage(SUBMIT, ingest.submit_tick, time_limit=600, max_attempts=3,
              until_idle=False),
        Stage(SCHEDULE, schedule.schedule_tick, time_limit=600, max_attempts=3,
              until_idle=False),
    ),
    schedules=(
        DefaultSchedule("traffic-submit", "*/5 * * * *", SUBMIT, SUBMIT),
        DefaultSchedule("traffic-speedtiles", "0 2 * * 1", SCHEDULE, SCHEDULE),
    ),
    runs=(
        Offer("speedtiles", frozenset({"week", "bbox", "level", "modes"}), start_speedtiles),
        Offer("submit", frozenset({"source"}), start_submit),
    ),
    batch=Batch(run.submit, run.summarize),
    extracts=extracts,
)
