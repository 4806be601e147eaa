"""Which speed tiles to build: OpenTraffic's weekly schedule, and explicit rebuilds.

Speed tiles are normally enqueued by the histogram fan-in as soon as a tile-week's hours are
all binned. The schedule is the weekly safety net and the operator's lever:

- with no week, :func:`next_week` picks what OpenTraffic's weekly service picked: the first
  week after the latest built speed-tile week that has histograms and is over (its Monday
  00:00 UTC end has passed), or the first week with histograms when none is built;
- ``week`` (``2026-W47``), ``bbox`` (minlon, minlat, maxlon, maxlat) and ``level`` rebuild
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
from typing import Any

import psycopg

from renderer import tiles
from renderer.db import query
from renderer.errors import InputError
from renderer.queue import NewItem, create_set, enqueue_many
from renderer.tiles import Tile
from renderer.traffic import weeks
from renderer.traffic.speedtile import KIND, TileWeek

__all__ = ["Plan", "enqueue_weeks", "next_week", "parse_bbox", "plan"]

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Plan:
    """The speed tiles a schedule asks for; ``week`` None: nothing to build (``reason``)."""

    week: str | None
    reason: str
    items: tuple[TileWeek, ...]


def parse_bbox(value: str | Sequence[float]) -> BBox:
    """``minlon,minlat,maxlon,maxlat`` (text or 4 numbers) as a checked tuple.

    Examples
    --------
    >>> parse_bbox("100,0,108,8")
    (100.0, 0.0, 108.0, 8.0)
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        minlon, minlat, maxlon, maxlat = (float(p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad bbox {value!r}", "write minlon,minlat,maxlon,maxlat") from exc
    if not (-180 <= minlon <= 180 and -180 <= maxlon <= 180 and -90 <= minlat <= maxlat <= 90):
        raise InputError(f"bad bbox {value!r}: out of range or south above north",
                         "write minlon,minlat,maxlon,maxlat in degrees (WGS 84)")
    return minlon, minlat, maxlon, maxlat


def _overlaps(tile: Tile, bbox: BBox) -> bool:
    west, south, east, north = tiles.bounds(tile)
    minlon, minlat, maxlon, maxlat = bbox
    lat = (south < maxlat and north > minlat) or (minlat == maxlat and south <= minlat <= north)
    spans = [(minlon, maxlon)] if minlon <= maxlon else [(minlon, 180.0), (-180.0, maxlon)]
    lon = any((west < hi and east > lo) or (lo == hi and west <= lo <= east) for lo, hi in spans)
    return lat and lon


def next_week(conn: psycopg.Connection[Any], *, now: float | None = None) -> tuple[str | None, str]:
    """The week the weekly schedule builds next, and why (or None and why not)."""
    now = time.time() if now is None else now
    with_data = [r["first_hour"] for r in conn.execute(query("traffic_speedtile.histogram_weeks"))]
    latest = conn.execute(query("traffic_speedtile.latest_built_week")).fetchone()["first_hour"]
    if latest is None:
        if not with_data:
            return None, "there are no histograms yet"
        return weeks.week_of_hour(with_data[0]), "the first week with histograms"
    built = weeks.week_of_hour(latest)
    for first in with_data:
        if first > latest and (first + weeks.HOURS_PER_WEEK) * 3600 <= now:
            return weeks.week_of_hour(first), f"the first ended week with histograms after {built}"
    return None, f"no ended week with histograms after the latest built week {built}"


def plan(conn: psycopg.Connection[Any], *, week: str | None = None, bbox: BBox | None = None,
         level: int | None = None, modes: Sequence[str] | None = None,
         now: float | None = None) -> Plan:
    """The speed tiles to build: the scheduled week's, or those of an explicit rebuild."""
    if level is not None and level not in tiles.LEVEL_SIZES:
        raise InputError(f"no tile level {level!r}", "use --level 0, 1 or 2")
    if bbox is not None:
        bbox = parse_bbox(bbox)
    if week is None:
        week, reason = next_week(conn, now=now)
        if week is None:
            return Plan(None, reason, ())
    else:
        try:
            year, number = weeks.parse_week(week)
        except ValueError as exc:
            raise InputError(str(exc), "write the ISO week like 2026-W47") from exc
        week, reason = f"{year:04d}-W{number:02d}", "asked for"
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
        while tile.level > target:
            tile = tiles.parent(tile)
        if bbox is None or _overlaps(tile, bbox):
            found.add(TileWeek(row["mode"], tile, week))
    items = tuple(sorted(found, key=lambda s: (s.mode, s.tile)))
    return Plan(week, reason, items)


def enqueue_weeks(conn: psycopg.Connection[Any], *, week: str | None = None,
                  bbox: BBox | None = None, level: int | None = None,
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
                         "bbox": list(bbox) if bbox else None, "level": level, "modes": modes})
    payload_extra = {} if min_count is None else {"min_count": min_count}
    enqueue_many(conn, (
        NewItem(kind=KIND, key=spec.key, set_id=set_id, priority=priority, group=spec.group,
                force=True, payload={"mode": spec.mode, "level": spec.tile.level,
                                     "tile": spec.tile.index, "week": spec.week,
                                     **payload_extra})
        for spec in found.items))
    return set_id
