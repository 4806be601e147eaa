"""Exports of speed and reference tiles to the object store, in OpenTraffic's public layout.

Speed tiles: ``{YYYY}/{WW}/{level}/{ddd}/{ddd}.spd.{N}.gz`` and ``.nex.{N}.gz`` (ISO year
and week; subtile N holds segments ``N * 10000`` up to ``N * 10000 + 9999``). Reference
tiles: ``{level}/{ddd}/{ddd}.ref.gz`` (every subtile in one file) with object metadata
``rangeStart`` and ``rangeEnd`` (epoch seconds; the end is exclusive). Mode AUTO is at the
root of the store, as OpenTraffic published it; any other mode under ``{MODE}/``.

Files are byte-identical when rebuilt from the same data: rows are read in segment order,
next segments in (hour, id) order, and gzip writes no name and no time stamp. A rebuild that
produces fewer subtiles (or none) deletes the files it no longer produces.

Per (segment, hour) OpenTraffic's arrays hold 0 for no data. ``.nex`` entries of the "no
next segment" group carry id 2^46 - 1, the reporter's spelling of none, as OpenTraffic's
did.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from renderer import tiles
from renderer.db import query
from renderer.formats.speedtiles import (
    HOURS_PER_WEEK,
    SEGMENTS_PER_SUBTILE,
    Kind,
    SubTile,
    encode_speed_tile,
    encode_subtile,
    gzip_compress,
    reference_tile_key,
    speed_tile_key,
    subtile_ranges,
)
from renderer.storage import Store
from renderer.traffic import weeks

__all__ = ["CONTENT_TYPE", "NO_NEXT_ID", "Exported", "mode_prefix", "reference_key",
           "reference_objects", "speed_keys", "speed_objects"]

CONTENT_TYPE = "application/gzip"
NO_NEXT_ID = (1 << 46) - 1
"""The id written in ``.nex`` files for the "no next segment" group."""
_UINT32 = (1 << 32) - 1


@dataclass(frozen=True)
class Exported:
    """What an export wrote and removed."""

    files: int = 0
    bytes: int = 0
    removed: int = 0

    def __add__(self, other: Exported) -> Exported:
        return Exported(self.files + other.files, self.bytes + other.bytes,
                        self.removed + other.removed)


def mode_prefix(mode: str) -> str:
    """Where a mode's files go: AUTO at the root (OpenTraffic's layout), others in a folder.

    Examples
    --------
    >>> mode_prefix("AUTO"), mode_prefix("BUS")
    ('', 'BUS/')
    """
    return "" if mode == "AUTO" else f"{mode}/"


def speed_keys(mode: str, week: str, tile: tiles.Tile, number: int) -> tuple[str, str]:
    """The ``.spd`` and ``.nex`` keys of subtile ``number`` of a tile-week.

    Examples
    --------
    >>> speed_keys("AUTO", "2016-W44", tiles.Tile(0, 2140), 0)
    ('2016/44/0/002/140.spd.0.gz', '2016/44/0/002/140.nex.0.gz')
    """
    year, number_of_week = weeks.parse_week(week)
    prefix = mode_prefix(mode)
    return (prefix + speed_tile_key(year, number_of_week, tile, Kind.SPEED, number),
            prefix + speed_tile_key(year, number_of_week, tile, Kind.NEXT, number))


def reference_key(mode: str, tile: tiles.Tile) -> str:
    """The ``.ref`` key of a tile, ``1/037/740.ref.gz`` for AUTO."""
    return mode_prefix(mode) + reference_tile_key(tile)


def _u32(value: int) -> int:
    return value if value <= _UINT32 else _UINT32


def speed_objects(conn: psycopg.Connection[Any], mode: str, week: str, tile: tiles.Tile,
                  total_segments: int) -> Iterator[tuple[int, bytes, bytes]]:
    """``(N, spd_body, nex_body)`` of every subtile of a built tile-week, gzipped."""
    first_hour, _ = weeks.hour_range_of_week(week)
    rows = conn.execute(query("traffic_speedtile.tile_speeds"),
                        {"mode": mode, "first_hour": first_hour,
                         "tile_id": tiles.tile_id(tile)})
    by_subtile = itertools.groupby(rows, key=lambda r: r["segment_index"] // SEGMENTS_PER_SUBTILE)
    groups = {n: list(g) for n, g in by_subtile}
    header = {"level": tile.level, "index": tile.index, "total_segments": total_segments,
              "range_start": first_hour * 3600,
              "range_end": first_hour * 3600 + HOURS_PER_WEEK * 3600,
              "description": f"{mode} speeds, 168 ordinal hours of ISO week {week}"}
    for number, (start, count) in enumerate(subtile_ranges(total_segments)):
        spd, nex = _subtile_arrays(groups.get(number, []), start, count)
        head = dict(header, start_segment_index=start, subtile_segments=count)
        yield (number,
               gzip_compress(encode_subtile(SubTile(**head, arrays=spd), Kind.SPEED)),
               gzip_compress(encode_subtile(SubTile(**head, arrays=nex), Kind.NEXT)))


def _subtile_arrays(rows: Sequence[dict[str, Any]], start: int,
                    count: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    size = count * HOURS_PER_WEEK
    speeds, variances, prevalences, nexts = [0] * size, [0] * size, [0] * size, [0] * size
    ids: list[int] = []
    delays: list[int] = []
    delay_variances: list[int] = []
    queues: list[int] = []
    queue_variances: list[int] = []
    for row in rows:
        base = (row["segment_index"] - start) * HOURS_PER_WEEK
        for how, speed, variance, prevalence in zip(row["hours"], row["speeds"],
                                                    row["speed_variances"],
                                                    row["prevalences"], strict=True):
            speeds[base + how] = speed
            variances[base + how] = variance
            prevalences[base + how] = prevalence
        for how in row["next_hours"]:
            nexts[base + how] += 1
        ids.extend(NO_NEXT_ID if n is None else n for n in row["next_ids"])
        delays.extend(row["delays"])
        delay_variances.extend(_u32(v) for v in row["delay_variances"])
        queues.extend(row["queue_lengths"])
        queue_variances.extend(_u32(v) for v in row["queue_length_variances"])
    # OpenTraffic: every (segment, hour) slot points at its first entry in the .nex arrays
    indices = list(itertools.accumulate(nexts[:-1], initial=0)) if size else []
    spd = {"speeds": speeds, "speed_variances": variances, "prevalences": prevalences,
           "next_segment_indices": indices, "next_segment_counts": nexts}
    nex = {"next_segment_ids": ids, "next_segment_delays": delays,
           "next_segment_delay_variances": delay_variances,
           "next_segment_queue_lengths": queues,
           "next_segment_queue_length_variances": queue_variances}
    return spd, nex


def _subtiles(total_segments: int) -> int:
    return len(subtile_ranges(total_segments))


def export_speed_tile(conn: psycopg.Connection[Any], store: Store, mode: str, week: str,
                      tile: tiles.Tile, total_segments: int,
                      old_total_segments: int) -> Exported:
    """Write a tile-week's ``.spd``/``.nex`` files and delete subtiles no longer produced."""
    files = size = removed = 0
    for number, spd, nex in speed_objects(conn, mode, week, tile, total_segments):
        spd_key, nex_key = speed_keys(mode, week, tile, number)
        store.put(spd_key, spd, content_type=CONTENT_TYPE)
        store.put(nex_key, nex, content_type=CONTENT_TYPE)
        files, size = files + 2, size + len(spd) + len(nex)
    for number in range(_subtiles(total_segments), _subtiles(old_total_segments)):
        for key in speed_keys(mode, week, tile, number):
            store.delete(key)
            removed += 1
    return Exported(files, size, removed)


def export_speed_week(conn: psycopg.Connection[Any], store: Store, build: Any) -> Exported:
    """Export every tile of a :class:`~renderer.traffic.speedtile.WeekBuild`."""
    total = Exported()
    for built in build.tiles:
        total += export_speed_tile(conn, store, build.spec.mode, build.spec.week, built.tile,
                                   built.total_segments, built.old_total_segments)
    return total


def reference_objects(conn: psycopg.Connection[Any], mode: str, tile: tiles.Tile,
                      total_segments: int, range_start: int, range_end: int,
                      weeks_used: int) -> bytes:
    """The gzipped ``.ref`` body of a tile: one subtile per 10,000 segments."""
    rows = conn.execute(query("traffic_reftile.tile_reference"),
                        {"mode": mode, "tile_id": tiles.tile_id(tile)}).fetchall()
    by_index = {r["segment_index"]: r for r in rows}
    span = max(range_end - range_start, 1)
    start_day = datetime.fromtimestamp(range_start, UTC).strftime("%Y-%m-%d")
    end_day = datetime.fromtimestamp(range_end, UTC).strftime("%Y-%m-%d")
    subtiles = []
    for start, count in subtile_ranges(total_segments):
        arrays: dict[str, list[int]] = {f"reference_speeds_{p}": [0] * count
                                        for p in (20, 40, 60, 80)}
        for offset in range(count):
            row = by_index.get(start + offset)
            if row is not None:
                for p in (20, 40, 60, 80):
                    arrays[f"reference_speeds_{p}"][offset] = row[f"ref{p}"]
        # unit and entry span the whole range, as OpenTraffic's reference tiles did
        subtiles.append(SubTile(
            tile.level, tile.index, start, total_segments, count, range_start, range_end,
            arrays, unit_size=span, entry_size=span,
            description=f"{mode} reference speeds over {weeks_used} weeks, "
                        f"{start_day} to {end_day}"))
    return gzip_compress(encode_speed_tile(subtiles, Kind.REFERENCE))


def export_reference_tile(conn: psycopg.Connection[Any], store: Store, mode: str,
                          tile: tiles.Tile, summary: dict[str, Any] | None) -> Exported:
    """Write a tile's ``.ref`` file with its range as metadata, or delete it when the tile
    has no reference data (``summary`` None)."""
    key = reference_key(mode, tile)
    if summary is None:
        store.delete(key)
        return Exported(removed=1)
    body = reference_objects(conn, mode, tile, summary["total_segments"],
                             summary["range_start"], summary["range_end"], summary["weeks"])
    store.put(key, body, metadata={"rangeStart": str(summary["range_start"]),
                                   "rangeEnd": str(summary["range_end"])},
              content_type=CONTENT_TYPE)
    return Exported(1, len(body))
