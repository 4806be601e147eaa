"""Exports of speed and reference tiles to the object store, in OpenTraffic's public layout.

Speed tiles: ``{YYYY}/{WW}/{level}/{ddd}/{ddd}.spd.{N}.gz`` and ``.nex.{N}.gz`` (ISO year
and week; subtile N holds segments ``N * 10000`` up to ``N * 10000 + 9999``). Reference
tiles: ``{level}/{ddd}/{ddd}.ref.gz`` with object metadata ``rangeStart`` and ``rangeEnd``
(epoch seconds; the end is exclusive): as OpenTraffic's ``createRefSpeedTile`` wrote it, ONE
subtile holding every segment of the tile, unitSize 604800 and entrySize 3600, ``speeds``
the 168 hourly mean speeds of each segment and ``referenceSpeeds20..80`` one value per
segment. Mode AUTO is at the root of the store, as OpenTraffic published it; any other mode
under ``{MODE}/``.

Files are byte-identical when rebuilt from the same data: rows are read in segment order,
next segments in (hour, id) order, and gzip writes no name and no time stamp. A rebuild that
produces fewer subtiles (or none) deletes the files it no longer produces.

Per (segment, hour) OpenTraffic's arrays hold 0 for no data. ``.nex`` entries of the "no
next segment" group carry id 2^42 - 1 (0x3ffffffffff), OpenTraffic's
``INVALID_NEXT_SEGMENT_ID``, the id its datastore gave a row without a readable next segment
and that its ``.nex`` tiles hold. Every reporter spelling of none (an empty field, 2^42 - 1,
2^46 - 1) is that group here; OpenTraffic kept a numeric 2^46 - 1 as an id of its own
(docs/opentraffic.md).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from renderer import kernels, tiles
from renderer.db import Connection, query
from renderer.formats.speedtiles import (
    HOURS_PER_WEEK,
    SEGMENTS_PER_SUBTILE,
    Kind,
    SubTile,
    gzip_compress,
    reference_tile_key,
    speed_tile_key,
    subtile_ranges,
)
from renderer.storage import Store
from renderer.traffic import weeks
from renderer.traffic.speedtile_pack import unpack_records

__all__ = ["CONTENT_TYPE", "NO_NEXT_ID", "Exported", "mode_prefix", "reference_key",
           "reference_objects", "speed_keys", "speed_objects"]

CONTENT_TYPE = "application/gzip"
NO_NEXT_ID = (1 << 42) - 1
"""The id written in ``.nex`` files for the "no next segment" group: OpenTraffic's
``INVALID_NEXT_SEGMENT_ID``, 0x3ffffffffff."""
_UINT32 = (1 << 32) - 1
SPEED_GZIP_LEVEL = 6
"""zlib's level 6 for the .spd/.nex bodies, as before the C writer (wave 9): the files
are written once and downloaded by every reader, so their size counts more than the export's
CPU. ISA-L's level 1 took 0.5 CPU s of a 50k-segment tile-week's 1.1 GB of protobuf against
zlib's 10.9, but made the files 26 % larger (26.2 MB against 20.8), and its bytes may differ
between CPUs (its code paths are chosen by the CPU's features), so a rerun on another worker
host could write other bytes; zlib's depend only on its version (BENCHMARKS.md, "The speed
files' export in C")."""


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
    return 0 if value < 0 else value if value <= _UINT32 else _UINT32


def speed_objects(conn: Connection, mode: str, week: str, tile: tiles.Tile,
                  total_segments: int) -> Iterator[tuple[int, bytes, bytes]]:
    """``(N, spd_body, nex_body)`` of every subtile of a built tile-week, gzipped."""
    first_hour, _ = weeks.hour_range_of_week(week)
    # binary: bytea raw and the arrays without text parsing (a third of the text's CPU)
    rows = conn.execute(query("traffic_speedtile.tile_speeds"),
                        {"mode": mode, "first_hour": first_hour, "tile_id": tiles.tile_id(tile)},
                        binary=True)
    by_subtile = itertools.groupby(rows, key=lambda r: r["segment_index"] // SEGMENTS_PER_SUBTILE)
    groups = {n: [(r["segment_index"], r["hours"], r["speeds"], r["hour_values"], r["nexts"])
                  for r in g] for n, g in by_subtile}
    header = SubTile(tile.level, tile.index, 0, total_segments, 0, first_hour * 3600,
                     first_hour * 3600 + HOURS_PER_WEEK * 3600,
                     description=f"{mode} speeds, 168 ordinal hours of ISO week {week}")
    for number, (start, count) in enumerate(subtile_ranges(total_segments)):
        head = dataclasses.replace(header, start_segment_index=start, subtile_segments=count)
        spd, nex = subtile(_header(head), start, count, groups.get(number, []))
        yield number, _gzip(spd), _gzip(nex)


def _gzip(data: bytes) -> bytes:
    """A speed file's gzip body: one gzip member, mtime 0 (the same bytes every export), at
    :data:`SPEED_GZIP_LEVEL`."""
    return gzip_compress(data, SPEED_GZIP_LEVEL)


# --- the .spd/.nex protobuf, written directly ---------------------------------------------
# A subtile of 10,000 segments has 1.68 million slots per array, nearly all 0 in practice;
# filling Python lists and handing them to protobuf costs about half a second per subtile.
# These functions write the same bytes (packed varints, fields in number order, as upb
# serializes them; tests hold them equal to encode_subtile) in time proportional to the
# slots with data.

_SMALL = [bytes([v]) for v in range(128)]


def _varint(value: int) -> bytes:
    if value < 128:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _sparse(size: int, slots: Sequence[int], values: Sequence[int]) -> bytes:
    """Packed payload of ``size`` values, 0 except ``values`` at ascending ``slots``."""
    parts = []
    last = 0
    for slot, value in zip(slots, values, strict=True):
        parts.append(bytes(slot - last))
        parts.append(_varint(value))
        last = slot + 1
    parts.append(bytes(size - last))
    return b"".join(parts)


def _running(size: int, slots: Sequence[int], counts: Sequence[int]) -> bytes:
    """Packed payload of OpenTraffic's nextSegmentIndices: at every slot, the number of
    next-segment entries of the slots before it (constant between slots with entries)."""
    parts = [bytes(slots[0] + 1 if slots else size)]
    total = 0
    for k, slot in enumerate(slots):
        total += counts[k]
        end = slots[k + 1] if k + 1 < len(slots) else size - 1
        parts.append(_varint(total) * (end - slot))
    return b"".join(parts)


def _dense(values: Iterable[int]) -> bytes:
    return b"".join(map(_varint, values))


def _header(sub: SubTile) -> bytes:
    text = sub.description.encode()
    return b"".join([
        _varint(1 << 3), _varint(sub.level), _varint(2 << 3), _varint(sub.index),
        _varint(3 << 3), _varint(sub.start_segment_index),
        _varint(4 << 3), _varint(sub.total_segments),
        _varint(5 << 3), _varint(sub.subtile_segments),
        _varint(6 << 3), _varint(sub.range_start), _varint(7 << 3), _varint(sub.range_end),
        _varint(8 << 3), _varint(sub.unit_size), _varint(9 << 3), _varint(sub.entry_size),
        _field(10, text)])


PackedRow = tuple[int, list[int], list[int], bytes, bytes]
"""A ``tile_speeds`` row as the writers take it: segment index, ``hours``, ``speeds``,
``hour_values``, ``nexts`` (renderer/traffic/speedtile_pack.py)."""


def subtile_py(header: bytes, start: int, segments: int,
               rows: Sequence[PackedRow]) -> tuple[bytes, bytes]:
    """Protobuf bytes (SpeedTile of one subtile) of the .spd and the .nex file, from packed
    rows: the twin of ``renderer._speedfile.subtile`` (ext/speedfile.c; tests hold them
    equal). ``header`` is :func:`_header`'s bytes of the subtile."""
    unpacked = [{"segment_index": index, "hours": hours, "speeds": speeds,
                 **unpack_records(hour_values, nexts)}
                for index, hours, speeds, hour_values, nexts in rows]
    return _subtile_bytes(header, start, segments, unpacked)


subtile, IMPLEMENTATION = kernels.pick("_speedfile", "subtile", subtile_py)
"""The subtile writer that runs: C (1.4 client CPU s with the fetch for a 50k-segment
tile-week, the twin 29; BENCHMARKS.md, "The speed files' export in C") or, without the
build or under ``RENDERER_NO_EXT=1``, the twin."""


def _speed_subtile(head: SubTile, rows: Sequence[Mapping[str, Any]]) -> tuple[bytes, bytes]:
    """The .spd and .nex protobuf bytes of a subtile from unpacked rows."""
    return _subtile_bytes(_header(head), head.start_segment_index, head.subtile_segments, rows)


def _subtile_bytes(header: bytes, start: int, segments: int,
                   rows: Sequence[Mapping[str, Any]]) -> tuple[bytes, bytes]:
    # Every uint32 value clamped into its range (no builder writes one outside: a negative
    # would have no uint32 encoding; protobuf's Python writer refuses it).
    size = segments * HOURS_PER_WEEK
    slots: list[int] = []
    speeds: list[int] = []
    variances: list[int] = []
    prevalences: list[int] = []
    next_slots: list[int] = []
    next_counts: list[int] = []
    nex: list[list[int]] = [[], [], [], [], []]
    for row in rows:
        base = (row["segment_index"] - start) * HOURS_PER_WEEK
        slots.extend(base + how for how in row["hours"])
        speeds.extend(map(_u32, row["speeds"]))
        variances.extend(map(_u32, row["speed_variances"]))
        prevalences.extend(map(_u32, row["prevalences"]))
        for how, group in itertools.groupby(row["next_hours"]):
            next_slots.append(base + how)
            next_counts.append(sum(1 for _ in group))
        nex[0].extend(NO_NEXT_ID if n is None else max(n, 0) for n in row["next_ids"])
        nex[1].extend(map(_u32, row["delays"]))
        nex[2].extend(map(_u32, row["delay_variances"]))
        nex[3].extend(map(_u32, row["queue_lengths"]))
        nex[4].extend(map(_u32, row["queue_length_variances"]))
    spd = header
    if size:
        spd += b"".join([
            _field(12, _sparse(size, slots, speeds)),
            _field(13, _sparse(size, slots, variances)),
            _field(14, _sparse(size, slots, prevalences)),
            _field(15, _running(size, next_slots, next_counts)),
            _field(16, _sparse(size, next_slots, next_counts))])
    nexb = header + b"".join(_field(17 + i, _dense(values)) for i, values in enumerate(nex)
                             if values)
    return _field(1, spd), _field(1, nexb)


def _subtiles(total_segments: int) -> int:
    return len(subtile_ranges(total_segments))


def export_speed_tile(conn: Connection, store: Store, mode: str, week: str,
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


def export_speed_week(conn: Connection, store: Store, build: Any) -> Exported:
    """Export every tile of a :class:`~renderer.traffic.speedtile.WeekBuild`."""
    total = Exported()
    for built in build.tiles:
        total += export_speed_tile(conn, store, build.spec.mode, build.spec.week, built.tile,
                                   built.total_segments, built.old_total_segments)
    return total


def reference_objects(conn: Connection, mode: str, tile: tiles.Tile,
                      total_segments: int, range_start: int, range_end: int,
                      weeks_used: int) -> bytes:
    """The gzipped ``.ref`` body of a tile: OpenTraffic's layout (``createRefSpeedTile``),
    ONE subtile holding all ``total_segments`` segments, unitSize 604800 and entrySize 3600,
    ``speeds`` the 168 hourly mean speeds of each segment (0: no data) and
    ``referenceSpeeds20..80`` one value per segment."""
    rows = conn.execute(query("traffic_reftile.tile_reference"),
                        {"mode": mode, "tile_id": tiles.tile_id(tile)}).fetchall()
    start_day = datetime.fromtimestamp(range_start, UTC).strftime("%Y-%m-%d")
    end_day = datetime.fromtimestamp(range_end, UTC).strftime("%Y-%m-%d")
    head = SubTile(tile.level, tile.index, 0, total_segments, total_segments, range_start,
                   range_end, description=f"{mode} reference speeds over {weeks_used} weeks, "
                                          f"{start_day} to {end_day}")
    return gzip_compress(_reference_subtile(head, rows))


def _reference_subtile(head: SubTile, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Protobuf bytes (SpeedTile of one subtile) of a ``.ref`` file. The hourly speeds are
    written sparse, as the ``.spd`` arrays are: a tile of 100,000 segments has 16.8 million
    slots. Tests hold the bytes equal to :func:`encode_subtile`'s."""
    size = head.subtile_segments * HOURS_PER_WEEK
    slots: list[int] = []
    means: list[int] = []
    refs: dict[int, tuple[list[int], list[int]]] = {p: ([], []) for p in (20, 40, 60, 80)}
    for row in rows:
        index = row["segment_index"]
        base = index * HOURS_PER_WEEK
        for how, mean in zip(row["hours"], row["hourly"], strict=True):
            if mean:
                slots.append(base + how)
                means.append(mean)
        for p, (at, values) in refs.items():
            if row[f"ref{p}"]:
                at.append(index)
                values.append(row[f"ref{p}"])
    body = _header(head)
    if head.subtile_segments:
        body += _field(12, _sparse(size, slots, means)) + b"".join(
            _field(field, _sparse(head.subtile_segments, at, values))
            for field, (at, values) in zip((22, 23, 24, 25), refs.values(), strict=True))
    return _field(1, body)


def export_reference_tile(conn: Connection, store: Store, mode: str,
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
