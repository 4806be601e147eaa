"""Write and read OpenTraffic-compatible speed tiles: ``.spd``, ``.nex`` and ``.ref`` files.

Every file body is a gzipped ``SpeedTile`` protobuf (``speedtile.proto``) with one or more
subtiles. A :class:`SubTile` here is the header of a subtile plus its arrays of integers by
snake-case name (``speeds``, ``next_segment_ids``, ``reference_speeds_20``, ...); which arrays a
file carries depends on its :class:`Kind`:

========  ==============================================================  ======================
kind      arrays (proto fields)                                           length of each
========  ==============================================================  ======================
``spd``   speeds, speed variances, prevalences, next indices and counts   segments x 168
          (12-16)
``nex``   next segment ids, delays and queue lengths with variances       number of next entries
          (17-21)
``ref``   speeds: the mean speed per hour of week (12)                    segments x 168
          reference speeds at the 20th, 40th, 60th, 80th percentile       segments
          (22-25)
========  ==============================================================  ======================

A ``.ref`` file is one subtile holding every segment of its tile, as OpenTraffic's
``createRefSpeedTile`` wrote it (unitSize 604800, entrySize 3600); ``.spd``/``.nex`` files
hold one subtile of at most :data:`SEGMENTS_PER_SUBTILE` segments each.

Malformed input raises ``ValueError``; callers that read a user's file wrap it with the file's
name into :class:`renderer.errors.InputError`.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from google.protobuf.message import DecodeError

from renderer import tiles
from renderer.formats import speedtile_pb2

__all__ = [
    "ARRAYS",
    "ENTRY_SIZE",
    "HOURS_PER_WEEK",
    "SEGMENTS_PER_SUBTILE",
    "UNIT_SIZE",
    "Kind",
    "SubTile",
    "decode_speed_tile",
    "encode_speed_tile",
    "encode_subtile",
    "gzip_compress",
    "gzip_decompress",
    "hour_slot",
    "reference_tile_key",
    "speed_tile_key",
    "subtile_ranges",
]

UNIT_SIZE: Final = 604_800
"""Seconds in the unit that speed arrays fold time onto: one week (proto field ``unitSize``)."""
ENTRY_SIZE: Final = 3_600
"""Seconds per array entry: one hour (proto field ``entrySize``)."""
HOURS_PER_WEEK: Final = UNIT_SIZE // ENTRY_SIZE  # 168
"""Entries per segment in the per-hour arrays."""
SEGMENTS_PER_SUBTILE: Final = 10_000
"""Segments per subtile; a tile with more is cut into files ``.spd.0``, ``.spd.1``, ..."""


class Kind(StrEnum):
    """The kind of a speed tile file, named by its file extension."""

    SPEED = "spd"
    NEXT = "nex"
    REFERENCE = "ref"


# Our array names and the proto field names they travel in, by kind, in field-number order.
_PROTO_FIELDS: Final = MappingProxyType(
    {
        Kind.SPEED: {
            "speeds": "speeds",
            "speed_variances": "speedVariances",
            "prevalences": "prevalences",
            "next_segment_indices": "nextSegmentIndices",
            "next_segment_counts": "nextSegmentCounts",
        },
        Kind.NEXT: {
            "next_segment_ids": "nextSegmentIds",
            "next_segment_delays": "nextSegmentDelays",
            "next_segment_delay_variances": "nextSegmentDelayVariances",
            "next_segment_queue_lengths": "nextSegmentQueueLengths",
            "next_segment_queue_length_variances": "nextSegmentQueueLengthVariances",
        },
        Kind.REFERENCE: {
            "speeds": "speeds",
            "reference_speeds_20": "referenceSpeeds20",
            "reference_speeds_40": "referenceSpeeds40",
            "reference_speeds_60": "referenceSpeeds60",
            "reference_speeds_80": "referenceSpeeds80",
        },
    }
)

ARRAYS: Final = MappingProxyType({kind: tuple(names) for kind, names in _PROTO_FIELDS.items()})
"""The array names each kind of file carries."""

_HOURLY: Final = frozenset(ARRAYS[Kind.SPEED])
"""Arrays with one value per (segment, hour of week); ``speeds`` is also a ``.ref`` array."""
_KINDS_OF_ARRAY: Final = {
    name: tuple(kind for kind in Kind if name in ARRAYS[kind]) for names in ARRAYS.values()
    for name in names
}
_PROTO_NAME: Final = {
    ours: theirs for names in _PROTO_FIELDS.values() for ours, theirs in names.items()
}


@dataclass(frozen=True)
class SubTile:
    """One subtile: which segments of which tile over which time, and its arrays.

    ``arrays`` maps array names of :data:`ARRAYS` to sequences of non-negative integers (lists,
    tuples, ``array.array`` or numpy arrays); arrays left out or empty are not written.
    """

    level: int
    index: int
    start_segment_index: int
    total_segments: int
    subtile_segments: int
    range_start: int
    range_end: int
    arrays: Mapping[str, Sequence[int]] = field(default_factory=dict)
    unit_size: int = UNIT_SIZE
    entry_size: int = ENTRY_SIZE
    description: str = ""

    @property
    def tile(self) -> tiles.Tile:
        return tiles.Tile(self.level, self.index)

    @property
    def kind(self) -> Kind | None:
        """The kind of file whose arrays this subtile has; None if it has no array."""
        present = {name for name, values in self.arrays.items()
                   if len(values) and name in _KINDS_OF_ARRAY}
        if not present:
            return None
        fitting = [kind for kind in Kind if present <= set(ARRAYS[kind])]
        if not fitting:
            kinds = {str(kind) for name in present for kind in _KINDS_OF_ARRAY[name]}
            raise ValueError(f"subtile mixes arrays of {sorted(kinds)} files")
        return fitting[0]  # only ``speeds``: a .spd subtile (a .ref one may carry it too)


def subtile_ranges(total_segments: int) -> list[tuple[int, int]]:
    """``(start_segment_index, subtile_segments)`` of each subtile of a tile, by number N.

    Examples
    --------
    >>> subtile_ranges(25_000)
    [(0, 10000), (10000, 10000), (20000, 5000)]
    """
    if total_segments < 0:
        raise ValueError(f"total_segments must be >= 0, not {total_segments}")
    return [
        (start, min(SEGMENTS_PER_SUBTILE, total_segments - start))
        for start in range(0, total_segments, SEGMENTS_PER_SUBTILE)
    ]


def hour_slot(segment_index: int, start_segment_index: int, hour_of_week: int) -> int:
    """Position of (segment, hour of week) in a subtile's per-hour arrays.

    Examples
    --------
    >>> hour_slot(10_002, 10_000, 5)
    341
    """
    if not 0 <= hour_of_week < HOURS_PER_WEEK:
        raise ValueError(f"hour of week must be in 0..167, not {hour_of_week}")
    offset = segment_index - start_segment_index
    if not 0 <= offset < SEGMENTS_PER_SUBTILE:
        raise ValueError(
            f"segment index {segment_index} is not in the subtile starting at {start_segment_index}"
        )
    return offset * HOURS_PER_WEEK + hour_of_week


def _expected_length(subtile: SubTile, name: str) -> int | None:
    if name in _HOURLY:
        return subtile.subtile_segments * (subtile.unit_size // subtile.entry_size)
    if name in ARRAYS[Kind.REFERENCE]:
        return subtile.subtile_segments
    return None  # .nex arrays are as long as there are next entries


def _check_subtile(subtile: SubTile, kind: Kind | None) -> None:
    unknown = set(subtile.arrays) - set(_KINDS_OF_ARRAY)
    if unknown:
        raise ValueError(f"unknown speed tile arrays {sorted(unknown)}; known: {list(_PROTO_NAME)}")
    if subtile.entry_size <= 0 or subtile.unit_size <= 0:
        raise ValueError(
            f"unit and entry sizes must be > 0, not {subtile.unit_size}, {subtile.entry_size}"
        )
    actual = subtile.kind
    if actual is None:
        return
    if kind is not None and actual is not kind:
        present = {name for name, values in subtile.arrays.items() if len(values)}
        if not present <= set(ARRAYS[kind]):
            raise ValueError(f"a .{kind} file cannot carry the arrays of a .{actual} file")
        actual = kind
    lengths = {name: len(subtile.arrays.get(name, ())) for name in ARRAYS[actual]}
    common = max(lengths.values())
    wrong = {}
    for name, n in lengths.items():
        expected = _expected_length(subtile, name)
        if n not in (0, common if expected is None else expected):
            wrong[name] = (n, common if expected is None else expected)
    if wrong:
        detail = ", ".join(f"{name} must hold {want} values, not {n}"
                           for name, (n, want) in wrong.items())
        raise ValueError(f".{actual} arrays: {detail}")
    if not 0 <= subtile.start_segment_index <= subtile.total_segments:
        raise ValueError(
            f"start_segment_index {subtile.start_segment_index} is beyond total_segments "
            f"{subtile.total_segments}"
        )


def _values(values: Sequence[int]) -> Iterable[int]:
    tolist = getattr(values, "tolist", None)  # numpy: plain ints convert much faster
    return tolist() if tolist is not None else values


def encode_speed_tile(subtiles: Iterable[SubTile], kind: Kind | str | None = None) -> bytes:
    """The protobuf bytes (not gzipped) of a SpeedTile holding the given subtiles.

    With ``kind``, subtiles carrying another kind's arrays are refused.

    Examples
    --------
    >>> sub = SubTile(0, 2140, 0, 1, 1, 0, 604800, {"reference_speeds_20": [31]})
    >>> decode_speed_tile(encode_speed_tile([sub], "ref"))[0].arrays
    {'reference_speeds_20': [31]}
    """
    kind = None if kind is None else Kind(kind)
    message = speedtile_pb2.SpeedTile()
    for subtile in subtiles:
        _check_subtile(subtile, kind)
        tiles.bounds(subtile.tile)  # validates level and index
        out = message.subtiles.add()
        out.level = subtile.level
        out.index = subtile.index
        out.startSegmentIndex = subtile.start_segment_index
        out.totalSegments = subtile.total_segments
        out.subtileSegments = subtile.subtile_segments
        out.rangeStart = subtile.range_start
        out.rangeEnd = subtile.range_end
        out.unitSize = subtile.unit_size
        out.entrySize = subtile.entry_size
        out.description = subtile.description
        for name, values in subtile.arrays.items():
            try:
                getattr(out, _PROTO_NAME[name]).extend(_values(values))
            except (TypeError, ValueError) as error:
                raise ValueError(f"speed tile array {name}: {error}") from error
    return message.SerializeToString()


def encode_subtile(subtile: SubTile, kind: Kind | str | None = None) -> bytes:
    """The protobuf bytes of the SpeedTile of one ``.spd.N``/``.nex.N``/``.ref`` file."""
    return encode_speed_tile([subtile], kind)


def decode_speed_tile(data: bytes) -> list[SubTile]:
    """The subtiles of SpeedTile protobuf bytes (not gzipped); arrays absent are left out.

    Raises ``ValueError`` for bytes that are not a SpeedTile.
    """
    message = speedtile_pb2.SpeedTile()
    try:
        message.ParseFromString(data)
    except DecodeError as error:
        raise ValueError(f"not a speed tile: {error}") from error
    return [
        SubTile(
            level=sub.level,
            index=sub.index,
            start_segment_index=sub.startSegmentIndex,
            total_segments=sub.totalSegments,
            subtile_segments=sub.subtileSegments,
            range_start=sub.rangeStart,
            range_end=sub.rangeEnd,
            arrays={
                name: list(values)
                for name, proto in _PROTO_NAME.items()
                if (values := getattr(sub, proto))
            },
            unit_size=sub.unitSize,
            entry_size=sub.entrySize,
            description=sub.description,
        )
        for sub in message.subtiles
    ]


def gzip_compress(data: bytes, level: int = 6) -> bytes:
    """Gzip a file body reproducibly: no name and no time stamp, so equal input, equal bytes."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def gzip_decompress(data: bytes) -> bytes:
    """Gunzip a file body; ``ValueError`` if it is not gzip or is truncated."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"not a gzip body: {error}") from error


def speed_tile_key(year: int, week: int, tile: tiles.Tile, kind: Kind | str, number: int) -> str:
    """Object key of subtile ``number`` of a speed (``spd``) or next (``nex``) tile of an ISO week.

    Examples
    --------
    >>> speed_tile_key(2026, 7, tiles.Tile(0, 2140), "spd", 0)
    '2026/07/0/002/140.spd.0.gz'
    """
    kind = Kind(kind)
    if kind is Kind.REFERENCE:
        raise ValueError("reference tiles have no week: use reference_tile_key")
    if not 1 <= week <= 53 or not 0 <= year <= 9999 or number < 0:
        raise ValueError(f"no ISO week {year}-W{week} / subtile {number}")
    return f"{year:04d}/{week:02d}/{tiles.path_suffix(tile)}.{kind}.{number}.gz"


def reference_tile_key(tile: tiles.Tile) -> str:
    """Object key of the reference tile of a tile.

    Examples
    --------
    >>> reference_tile_key(tiles.Tile(1, 37740))
    '1/037/740.ref.gz'
    """
    return f"{tiles.path_suffix(tile)}.{Kind.REFERENCE}.gz"
