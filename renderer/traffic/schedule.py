"""Which speed tiles to build: OpenTraffic's weekly schedule, and explicit rebuilds.

Speed tiles are normally enqueued by the histogram fan-in as soon as a tile-week's hours are
all binned. The schedule is the weekly safety net and the operator's lever:

- with no week, :func:`next_week` picks what OpenTraffic's weekly service picked: the first
  week after the latest built speed-tile week that has histograms and is over (its Monday
  00:00 UTC end has passed), or the first week with histograms when none is built;
- ``week`` (``2026-W47``), ``bbox`` (:func:`renderer.bbox.parse_bbox`: minlon, minlat,
  maxlon, maxlat, across the antimeridian when minlon > maxlon) and ``level`` rebuild
  explicitly: one item per (mode, tile of that level) with histograms in the week (level 0
  by default), forced so that done items run again.

Items of one schedule share a set (returned, for ``renderer queue status`` and the HTTP API);
each tile's weeks share a group (``AUTO/0/2140``), for status.

Example
-------
>>> enqueue_weeks(conn, week="2016-W44", bbox=(100, 0, 108, 8), priority=PRIORITY_ON_DEMAND)
'speedtiles 2016-W44 20260105T020000Z-1a2b3c'
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from renderer import tiles
from renderer.bbox import BBox, parse_bbox
from renderer.db import Connection, query, scalar
from renderer.errors import InputError
from renderer.queue import PRIORITY_BATCH, Job, NewItem, create_set, enqueue_bulk
from renderer.traffic import weeks
from renderer.traffic.speedtile import KIND, TileWeek

__all__ = ["Plan", "enqueue_weeks", "next_week", "plan", "schedule_tick"]


@dataclass(frozen=True)
class Plan:
    """The speed tiles a schedule asks for; ``week`` None: nothing to build (``reason``)."""

    week: str | None
    reason: str
    items: tuple[TileWeek, ...]


def next_week(conn: Connection, *, now: float | None = None) -> tuple[str | None, str]:
    """The week the weekly schedule builds next, and why (or None and why not)."""
    now = time.time() if now is None else now
    with_data = [r["first_hour"] for r in conn.execute(query("traffic_speedtile.histogram_weeks"))]
    latest = scalar(conn, "traffic_speedtile.latest_built_week")
    if latest is None:
        if not with_data:
            return None, "there are no histograms yet"
        return weeks.week_of_hour(with_data[0]), "the first week with histograms"
    built = weeks.week_of_hour(latest)
    for first in with_data:
        if first > latest and (first + weeks.HOURS_PER_WEEK) * 3600 <= now:
            return weeks.week_of_hour(first), f"the first ended week with histograms after {built}"
    return None, f"no ended week with histograms after the latest built week {built}"


def plan(conn: Connection, *, week: str | None = None,
         bbox: BBox | Sequence[float] | str | None = None,
         level: int | None = None, modes: Sequence[str] | None = None,
         now: float | None = None) -> Plan:
    """The speed tiles to build: the scheduled week's, or those of an explicit rebuild."""
    if level is not None and level not in tiles.LEVEL_SIZES:
        raise InputError(f"no tile level {level!r}", "use --level 0, 1 or 2")
    box = parse_bbox(bbox) if bbox is not None else None
    if week is None:
        week, reason = next_week(conn, now=now)
        if week is None:
            return Plan(None, reason, ())
    else:
        try:
            week, reason = weeks.week_name(week), "asked for"
        except ValueError as exc:
            raise InputError(str(exc), "write the ISO week like 2026-W47") from exc
    wanted = {m.upper() for m in modes} if modes else None
    target = level or 0
    first_hour, _ = weeks.hour_range_of_week(week)
    found: set[TileWeek] = set()
    for row in conn.execute(query("traffic_speedtile.week_tiles"), {"first_hour": first_hour}):
        if wanted is not None and row["mode"] not in wanted:
            continue
        tile = tiles.from_tile_id(row["tile_id"])
        if tile.level < target:
            continue
        tile = tiles.ancestor(tile, target)
        if box is None or box.overlaps(tile):
            found.add(TileWeek(row["mode"], tile, week))
    items = tuple(sorted(found, key=lambda s: (s.mode, s.tile)))
    return Plan(week, reason, items)


def enqueue_weeks(conn: Connection, *, week: str | None = None,
                  bbox: BBox | Sequence[float] | str | None = None, level: int | None = None,
                  modes: list[str] | None = None, priority: int,
                  min_count: int | None = None, now: float | None = None) -> str:
    """Enqueue the speed tiles of :func:`plan` into a new set, in the caller's transaction;
    return the set id (the set is empty when there is nothing to build)."""
    if min_count is not None and min_count < 1:
        raise InputError(f"min count must be at least 1, not {min_count}", "use --min-count 1")
    found = plan(conn, week=week, bbox=bbox, level=level, modes=modes, now=now)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    set_id = create_set(conn, f"speedtiles {found.week or 'none'} {stamp}-{secrets.token_hex(3)}",
                        {"week": found.week, "reason": found.reason, "items": len(found.items),
                         "bbox": list(parse_bbox(bbox)) if bbox is not None else None,
                         "level": level, "modes": modes})
    payload_extra = {} if min_count is None else {"min_count": min_count}
    enqueue_bulk(conn, (
        NewItem(kind=KIND, key=spec.key, set_id=set_id, priority=priority, group=spec.group,
                force=True, payload={"mode": spec.mode, "level": spec.tile.level,
                                     "tile": spec.tile.index, "week": spec.week,
                                     **payload_extra})
        for spec in found.items))
    return set_id


def schedule_tick(job: Job) -> None:
    """The ``traffic-schedule`` stage (fired weekly by its default schedule): enqueue the
    next week's speed tiles, as OpenTraffic's weekly service did; the payload may name a
    ``week``, ``bbox`` and ``level``."""
    p = job.item.payload
    enqueue_weeks(job.conn, week=p.get("week"), bbox=p.get("bbox"), level=p.get("level"),
                  priority=PRIORITY_BATCH)
