"""A week's speeds as one table: ``renderer traffic export-speeds``.

One row per (mode, segment, hour of week) that the week's speed tiles publish (hours under
the build's minimum count are not published, in the files or here), with the columns of
:data:`renderer.traffic.tables.EXPORT_COLUMNS`: the ``.spd`` fields under their OpenTraffic
names and what the files leave out (the true observation count, the count-weighted mean
speed, the segment length). Rows come in (mode, level, tile index, segment, hour) order.

Streamed: the tiles of the week are read one at a time through a server-side cursor in
batches, so memory stays flat whatever the week's size.

Example
-------
>>> with open_table("week.parquet", EXPORT_COLUMNS, "parquet") as out:  # doctest: +SKIP
...     export(conn, "2016-W44", out)
ExportedSpeeds(week='2016-W44', tiles=2, segments=1800, rows=98112)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from renderer import tiles
from renderer.db import Connection, query, tuple_row
from renderer.errors import InputError
from renderer.traffic import weeks
from renderer.traffic.tables import BATCH, TableWriter

__all__ = ["ExportedSpeeds", "WeekTile", "export", "week_tiles"]


@dataclass(frozen=True)
class WeekTile:
    """A built speed tile of the week: what one pass of the export reads."""

    mode: str
    tile: tiles.Tile
    segments: int


@dataclass(frozen=True)
class ExportedSpeeds:
    week: str
    tiles: int
    segments: int
    rows: int


def _week(week: str) -> tuple[str, int]:
    try:
        name = weeks.week_name(week)
    except ValueError as exc:
        raise InputError(str(exc), "write the ISO week like 2016-W44") from exc
    return name, weeks.hour_range_of_week(name)[0]


def _within(tile: tiles.Tile, chosen: Iterable[tiles.Tile]) -> bool:
    """Whether a tile is one of ``chosen`` or lies inside one (a level-0 tile holds its
    level-1 and level-2 children)."""
    return any(tile.level >= c.level and tiles.ancestor(tile, c.level) == c for c in chosen)


def week_tiles(conn: Connection, week: str, *, modes: Iterable[str] | None = None,
               only: Iterable[tiles.Tile] | None = None) -> list[WeekTile]:
    """The built speed tiles of a week, in export order; InputError naming the built weeks
    when none matches."""
    name, first_hour = _week(week)
    wanted = [m.upper() for m in modes] if modes else None
    rows = conn.execute(query("traffic_tables.week_tiles"),
                        {"first_hour": first_hour, "modes": wanted}).fetchall()
    chosen = list(only or [])
    found = [WeekTile(r["mode"], tiles.Tile(r["level"], r["tile_index"]), r["segments"])
             for r in rows]
    found = [t for t in found if not chosen or _within(t.tile, chosen)]
    if not found:
        built = [r["week"] for r in conn.execute(query("traffic_tables.built_weeks"))]
        what = " of the given modes and tiles" if rows or wanted else ""
        fix = (f"weeks with speed tiles: {', '.join(built)}" if built
               else "build one first: `renderer traffic run --source ROOT`")
        raise InputError(f"no speed tiles{what} built for {name}", fix)
    return found


def _tile_rows(conn: Connection, week: str, first_hour: int,
               tile: WeekTile) -> Iterator[list[tuple[Any, ...]]]:
    head = (tile.mode, week, tile.tile.level, tile.tile.index)
    with conn.cursor(name="export_speeds", row_factory=tuple_row) as cur:
        cur.execute(query("traffic_tables.tile_hours"),
                    {"mode": tile.mode, "first_hour": first_hour,
                     "tile_id": tiles.tile_id(tile.tile)})
        while batch := cur.fetchmany(BATCH):
            yield [(*head, segment_id, segment_id >> 25, *rest)
                   for segment_id, *rest in batch]


def export(conn: Connection, week: str, out: TableWriter, *,
           modes: Iterable[str] | None = None, only: Iterable[tiles.Tile] | None = None,
           progress: Callable[[int], None] | None = None) -> ExportedSpeeds:
    """Write the week's published hours to ``out``; ``progress(n)`` after each batch, with
    the number of segments it reached (their total: the tiles' ``segments``)."""
    name, first_hour = _week(week)
    chosen = week_tiles(conn, name, modes=modes, only=only)
    rows = segments = 0
    for tile in chosen:
        started, last = 0, None
        for batch in _tile_rows(conn, name, first_hour, tile):
            out.write(batch)
            rows += len(batch)
            new = 0
            for row in batch:
                if row[4] != last:
                    new, last = new + 1, row[4]
            started += new
            if progress is not None:
                progress(new)
        segments += started
        if progress is not None and tile.segments > started:
            progress(tile.segments - started)  # segments with no published hour
    return ExportedSpeeds(name, len(chosen), segments, rows)
