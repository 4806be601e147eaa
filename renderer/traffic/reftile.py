"""Stage 3 of the traffic pipeline: reference tiles over the last weeks of speed tiles.

One ``reftile`` item per (mode, tile), key ``AUTO/0/2140``, builds the reference speeds of
the tile and its descendants down to ``traffic_max_level`` from the speeds of the
``traffic_reference_weeks`` (52) weeks ending with the latest week that has speeds for
them: per segment the 20/40/60/80th percentiles of every non-zero hourly speed (lower
nearest rank, as OpenTraffic), per hour of week the mean, and per tile the range (earliest
start, latest end of the weeks used). Bulk SQL in ``sql/traffic_reftile.sql``; the ``.ref``
files go to the store (:mod:`renderer.traffic.export`); the profile then asks for a
coverage refresh (:mod:`renderer.traffic.coverage`).

A finished speed tile asks for its reference tile only when its week is inside the
tile's window (:func:`for_speed_week`), so late data for an old week re-triggers exactly
the reference tiles whose window includes it.

Example
-------
>>> build(conn, TileRef("AUTO", Tile(0, 2140)), weeks=52)  # doctest: +SKIP
RefBuild(spec=..., end_hour=410520, tiles=(RefTile(tile=Tile(0, 2140), segments=812, ...),))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from renderer import tiles
from renderer.db import Connection, query, scalar
from renderer.errors import InputError
from renderer.profile import Next
from renderer.queue import Job
from renderer.tiles import Tile
from renderer.traffic import export
from renderer.traffic.speedtile import WeekBuild, family

__all__ = ["KIND", "RefBuild", "RefTile", "TileRef", "build", "for_speed_week", "handle",
           "in_window"]

log = logging.getLogger(__name__)

KIND = "reftile"


@dataclass(frozen=True)
class TileRef:
    """What one ``reftile`` item builds: a mode and a tile (and its descendants)."""

    mode: str
    tile: Tile

    @property
    def key(self) -> str:
        """The queue key, ``AUTO/0/2140``."""
        return f"{self.mode}/{self.tile.level}/{self.tile.index}"

    @classmethod
    def parse(cls, key: str) -> TileRef:
        """The spec of a key like ``AUTO/0/2140``; InputError if malformed."""
        mode, _, rest = key.partition("/")
        try:
            tile = tiles.parse_tile(rest)
        except ValueError as exc:
            raise InputError(f"bad reference tile key {key!r}: {exc}",
                             "write MODE/LEVEL/INDEX, e.g. AUTO/0/2140") from exc
        if not mode:
            raise InputError(f"bad reference tile key {key!r}: no mode", "e.g. AUTO/0/2140")
        return cls(mode, tile)


@dataclass(frozen=True)
class RefTile:
    """One tile of a reference build; ``present`` False: it has no reference data (any
    more) and its file is to be deleted."""

    tile: Tile
    present: bool
    range_start: int
    range_end: int
    weeks: int
    total_segments: int
    segments: int
    observations: int

    def summary(self) -> dict[str, int] | None:
        if not self.present:
            return None
        return {"range_start": self.range_start, "range_end": self.range_end,
                "weeks": self.weeks, "total_segments": self.total_segments}


@dataclass(frozen=True)
class RefBuild:
    """The outcome of building one :class:`TileRef`; ``end_hour`` None: no speeds at all."""

    spec: TileRef
    end_hour: int | None
    weeks: int
    tiles: tuple[RefTile, ...]

    @property
    def segments(self) -> int:
        return sum(t.segments for t in self.tiles)


def _params(spec: TileRef, weeks: int, max_level: int) -> dict[str, Any]:
    if weeks < 1:
        raise InputError(f"the reference window must be at least 1 week, not {weeks}",
                         "set RENDERER_TRAFFIC_REFERENCE_WEEKS to 52")
    return {"mode": spec.mode, "weeks": weeks, "root": tiles.ancestor(spec.tile).index,
            "tile_ids": [tiles.tile_id(t) for t in family(spec.tile, max_level)]}


def window_end(conn: Connection, spec: TileRef, *, max_level: int = 1) -> int | None:
    """First hour of the latest week with speeds for the tile (or descendants), or None."""
    params = _params(spec, 1, max_level)
    end: int | None = scalar(conn, "traffic_reftile.window_end", params)
    return end


def in_window(conn: Connection, spec: TileRef, first_hour: int, *,
              weeks: int = 52, max_level: int = 1) -> bool:
    """Whether the week starting at ``first_hour`` is in the tile's reference window (or
    the tile has no speeds at all, so its reference tile must go)."""
    end = window_end(conn, spec, max_level=max_level)
    return end is None or first_hour > end - weeks * 168


def build(conn: Connection, spec: TileRef, *, weeks: int = 52,
          max_level: int = 1) -> RefBuild:
    """Build the reference speeds of a tile and its descendants in the caller's
    transaction, replacing the previous ones."""
    params = _params(spec, weeks, max_level)
    conn.execute(query("traffic_reftile.lock_tile"), params)
    params["end_hour"] = scalar(conn, "traffic_reftile.window_end", params)
    conn.execute(query("traffic_reftile.delete_reference"), params)
    if params["end_hour"] is not None:
        conn.execute(query("traffic_reftile.build_reference"), params)
    else:
        params["end_hour"] = 0  # nothing in any window: every tile row goes
    rows = conn.execute(query("traffic_reftile.summarize_tiles"), params).fetchall()
    built = tuple(
        RefTile(Tile(r["level"], r["tile_index"]), r["present"], r["range_start"],
                r["range_end"], r["weeks"], r["total_segments"], r["segments"],
                r["observations"])
        for r in rows
    )
    end = params["end_hour"] or None
    return RefBuild(spec, end, weeks, built)


def for_speed_week(job: Job, week: WeekBuild) -> list[Next]:
    """The reference tile a finished speed tile asks for: its tile's, when its week is in
    the reference window (else none)."""
    settings = job.settings
    spec = TileRef(week.spec.mode, week.spec.tile)
    if not in_window(job.conn, spec, week.first_hour, weeks=settings.traffic_reference_weeks,
                     max_level=settings.traffic_max_level):
        log.info("speed tile %s is outside the reference window of %s", week.spec.key, spec.key)
        return []
    # An enqueue (forced, in the profile), not a group rule: a rule, once declared, fires
    # whenever its group closes again, so every re-run of an old week would rebuild the
    # reference tile, in its window or not. Forced, so a done reference tile runs again;
    # the upsert merges requests while it is pending (it is claimed after the speed tiles
    # enqueued before it, so a backfill of many weeks builds it about once) and re-runs it
    # once if it is running.
    return [Next(spec.key, {"mode": spec.mode, "level": spec.tile.level,
                            "tile": spec.tile.index})]


def handle(job: Job) -> RefBuild:
    """Build and export one reference tile."""
    spec = TileRef.parse(job.item.key)
    settings = job.settings
    result = build(job.conn, spec, weeks=settings.traffic_reference_weeks,
                   max_level=settings.traffic_max_level)
    written = export.Exported()
    for ref in result.tiles:
        written += export.export_reference_tile(job.conn, job.store, spec.mode, ref.tile,
                                                ref.summary())
    log.info("reference tile %s: %d segments, %d files", spec.key, result.segments,
             written.files)
    return result
