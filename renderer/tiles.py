"""Tile grids and id bit fields of the OpenTraffic / Valhalla hierarchy.

Three levels cover the globe (-180, -90, 180, 90) with square tiles, rows counted from the south
and columns from the west:

=====  ========  ===========  ==============
level  size (°)  grid         largest index
=====  ========  ===========  ==============
0      4         90 x 45      4049
1      1         360 x 180    64799
2      0.25      1440 x 720   1036799
=====  ========  ===========  ==============

A tile is half-open: it holds the points with ``west <= lon < east`` and ``south <= lat < north``,
except that the last column and row also hold ``lon == 180`` and ``lat == 90``.

Ids are bit fields: ``tile_id = index << 3 | level`` (25 bits) and
``segment_id = segment_index << 25 | tile_id`` (46 bits).

Web-Mercator z/x/y helpers for map tiles delegate to mercantile.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from types import MappingProxyType
from typing import Final, NamedTuple

import mercantile

__all__ = [
    "INVALID_NEXT_SEGMENT_ID",
    "LEVEL_BITS",
    "LEVEL_MASK",
    "LEVEL_SIZES",
    "MAX_SEGMENT_ID",
    "MAX_SEGMENT_INDEX",
    "NO_NEXT",
    "SEGMENT_ID_BITS",
    "SEGMENT_INDEX_BITS",
    "SEGMENT_INDEX_SHIFT",
    "TILE_ID_BITS",
    "TILE_ID_MASK",
    "TILE_INDEX_BITS",
    "Tile",
    "bounds",
    "children",
    "columns",
    "from_tile_id",
    "mercator_bounds",
    "mercator_tile",
    "mercator_tiles",
    "normalize_next",
    "parent",
    "parse_tile",
    "path_suffix",
    "rows",
    "segment_id",
    "segment_index",
    "segment_tile",
    "tile",
    "tile_count",
    "tile_from_key",
    "tile_id",
    "tiles_in_bbox",
]

LEVEL_SIZES: Final = MappingProxyType({0: 4.0, 1: 1.0, 2: 0.25})
"""Tile edge in degrees, by level."""

# Bit fields of the ids (the same numbers are spelled in sql/ and ext/binning.c).
LEVEL_BITS: Final = 3
LEVEL_MASK: Final = (1 << LEVEL_BITS) - 1
"""``tile_id & LEVEL_MASK`` is the tile's level (0x7); ``tile_id >> LEVEL_BITS`` its index."""

TILE_INDEX_BITS: Final = 22
TILE_ID_BITS: Final = LEVEL_BITS + TILE_INDEX_BITS  # 25
TILE_ID_MASK: Final = (1 << TILE_ID_BITS) - 1
"""``segment_id & TILE_ID_MASK`` is the tile id of the segment's tile (0x1FFFFFF, 33554431)."""

SEGMENT_INDEX_SHIFT: Final = TILE_ID_BITS
"""``segment_id >> SEGMENT_INDEX_SHIFT`` is the segment's index within its tile (25)."""

SEGMENT_INDEX_BITS: Final = 21
SEGMENT_ID_BITS: Final = TILE_ID_BITS + SEGMENT_INDEX_BITS  # 46

MAX_SEGMENT_INDEX: Final = (1 << SEGMENT_INDEX_BITS) - 1
"""Largest segment index a segment id can carry (2**21 - 1)."""

MAX_SEGMENT_ID: Final = (1 << SEGMENT_ID_BITS) - 1
"""Largest value of a segment id field (2**46 - 1, every bit set: also a "none" spelling)."""

INVALID_NEXT_SEGMENT_ID: Final = (1 << 42) - 1
"""OpenTraffic's ``INVALID_NEXT_SEGMENT_ID`` (2**42 - 1, 4398046511103)."""

NO_NEXT: Final = frozenset({MAX_SEGMENT_ID, INVALID_NEXT_SEGMENT_ID})
"""Sentinels that reporters write for "no next segment" (2**46 - 1 and 2**42 - 1)."""

# Padded width of the index in a path suffix, by level.
_PATH_WIDTH: Final = MappingProxyType({0: 6, 1: 6, 2: 9})
_FOLDER = re.compile(r"\d{3}")


class Tile(NamedTuple):
    """A tile of the hierarchy: its level (0, 1 or 2) and its index in that level's grid."""

    level: int
    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose


def _check_level(level: int) -> float:
    if type(level) is not int or level not in LEVEL_SIZES:
        raise ValueError(f"tile level must be 0, 1 or 2, not {level!r}")
    return LEVEL_SIZES[level]


def columns(level: int) -> int:
    """Number of tile columns of a level.

    Examples
    --------
    >>> columns(0)
    90
    """
    return int(360 / _check_level(level))


def rows(level: int) -> int:
    """Number of tile rows of a level.

    Examples
    --------
    >>> rows(2)
    720
    """
    return int(180 / _check_level(level))


def tile_count(level: int) -> int:
    """Number of tiles of a level; indices run from 0 to ``tile_count(level) - 1``.

    Examples
    --------
    >>> tile_count(0)
    4050
    """
    return columns(level) * rows(level)


def _check_tile(t: Tile) -> Tile:
    level, index = t
    count = tile_count(level)
    if type(index) is not int or not 0 <= index < count:
        raise ValueError(f"tile index at level {level} must be in 0..{count - 1}, not {index!r}")
    return Tile(level, index)


def _row_col(t: Tile) -> tuple[int, int]:
    level, index = _check_tile(t)
    return divmod(index, columns(level))


def _cell(value: float, origin: float, size: float, count: int) -> int:
    """The cell of ``value`` on an axis of ``count`` cells of ``size`` starting at ``origin``.

    ``floor((value - origin) / size)`` can be off by one within an ulp of a cell edge (the
    subtraction rounds); the edges themselves are exact in binary for our sizes, so the result
    is corrected against them and ``bounds(tile(...))`` always contains the point.
    """
    cell = min(max(math.floor((value - origin) / size), 0), count - 1)
    if cell > 0 and value < origin + cell * size:
        cell -= 1
    elif cell < count - 1 and value >= origin + (cell + 1) * size:
        cell += 1
    return cell


def _check_lonlat(lon: float, lat: float) -> None:
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"longitude must be in -180..180, not {lon!r}")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude must be in -90..90, not {lat!r}")


def tile(lon: float, lat: float, level: int) -> Tile:
    """The tile of a level that contains a point.

    Parameters
    ----------
    lon, lat : float
        Longitude in -180..180 and latitude in -90..90, in degrees (WGS 84).
    level : int
        0, 1 or 2.

    Examples
    --------
    >>> tile(-74.0, 40.7, 0)
    Tile(level=0, index=2906)
    """
    size = _check_level(level)
    _check_lonlat(lon, lat)
    row = _cell(lat, -90.0, size, rows(level))
    col = _cell(lon, -180.0, size, columns(level))
    return Tile(level, row * columns(level) + col)


def bounds(t: Tile) -> tuple[float, float, float, float]:
    """The bounding box of a tile: ``(minlon, minlat, maxlon, maxlat)`` in degrees.

    Examples
    --------
    >>> bounds(Tile(0, 2140))
    (100.0, 2.0, 104.0, 6.0)
    """
    row, col = _row_col(t)
    size = LEVEL_SIZES[t[0]]
    west, south = -180.0 + col * size, -90.0 + row * size
    return (west, south, west + size, south + size)


def children(t: Tile) -> list[Tile]:
    """The 16 tiles one level down that cover a tile, row by row from the south-west.

    Examples
    --------
    >>> len(children(Tile(0, 0)))
    16
    >>> [c.index for c in children(Tile(0, 0))][:5]
    [0, 1, 2, 3, 360]
    """
    row, col = _row_col(t)
    level = t[0] + 1
    if level not in LEVEL_SIZES:
        raise ValueError(f"level {t[0]} tiles have no children (2 is the finest level)")
    ratio = round(LEVEL_SIZES[t[0]] / LEVEL_SIZES[level])
    width = columns(level)
    return [
        Tile(level, (row * ratio + r) * width + col * ratio + c)
        for r in range(ratio)
        for c in range(ratio)
    ]


def parent(t: Tile) -> Tile:
    """The tile one level up that contains a tile.

    Examples
    --------
    >>> parent(Tile(1, 361))
    Tile(level=0, index=0)
    """
    row, col = _row_col(t)
    level = t[0] - 1
    if level not in LEVEL_SIZES:
        raise ValueError("level 0 tiles have no parent (0 is the coarsest level)")
    ratio = round(LEVEL_SIZES[level] / LEVEL_SIZES[t[0]])
    return Tile(level, (row // ratio) * columns(level) + col // ratio)


def tile_id(t: Tile) -> int:
    """The 25-bit tile id ``index << 3 | level``.

    Examples
    --------
    >>> tile_id(Tile(0, 2140))
    17120
    """
    level, index = _check_tile(t)
    return index << LEVEL_BITS | level


def from_tile_id(value: int) -> Tile:
    """The tile of a tile id; the inverse of :func:`tile_id`.

    Examples
    --------
    >>> from_tile_id(17120)
    Tile(level=0, index=2140)
    """
    if type(value) is not int or not 0 <= value <= TILE_ID_MASK:
        raise ValueError(f"tile id must be an integer in 0..{TILE_ID_MASK}, not {value!r}")
    level = value & LEVEL_MASK
    if level not in LEVEL_SIZES:
        raise ValueError(f"tile id {value} has level bits {level}; levels are 0, 1 and 2")
    return _check_tile(Tile(level, value >> LEVEL_BITS))


def segment_id(t: Tile, segment_index: int) -> int:
    """The 46-bit segment id of the ``segment_index``-th segment of a tile.

    Examples
    --------
    >>> segment_id(Tile(0, 2140), 3)
    100680416
    """
    if type(segment_index) is not int or not 0 <= segment_index <= MAX_SEGMENT_INDEX:
        raise ValueError(
            f"segment index must be an integer in 0..{MAX_SEGMENT_INDEX}, not {segment_index!r}"
        )
    return segment_index << SEGMENT_INDEX_SHIFT | tile_id(t)


def _check_segment_id(value: int) -> int:
    if type(value) is not int or not 0 <= value <= MAX_SEGMENT_ID:
        raise ValueError(f"segment id must be an integer in 0..2**46-1, not {value!r}")
    return value


def segment_tile(value: int) -> Tile:
    """The tile of a segment id.

    Examples
    --------
    >>> segment_tile(100680416)
    Tile(level=0, index=2140)
    """
    return from_tile_id(_check_segment_id(value) & TILE_ID_MASK)


def segment_index(value: int) -> int:
    """The index of a segment within its tile.

    Examples
    --------
    >>> segment_index(100680416)
    3
    """
    return _check_segment_id(value) >> SEGMENT_INDEX_SHIFT


def normalize_next(value: int | str | None) -> int | None:
    """A "next segment" field as reporters write it: the segment id, or None for no next.

    None, an empty (or blank) string and the sentinels of :data:`NO_NEXT` all mean none.

    Examples
    --------
    >>> normalize_next("70368744177663") is None
    True
    >>> normalize_next("100680416")
    100680416
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not text.isdigit():
            raise ValueError(f"next segment id must be digits or empty, not {value!r}")
        value = int(text)
    if value in NO_NEXT:
        return None
    return _check_segment_id(value)


def path_suffix(t: Tile) -> str:
    """The storage path of a tile: level, then the padded index in 3-digit folders.

    Examples
    --------
    >>> path_suffix(Tile(0, 2140))
    '0/002/140'
    >>> path_suffix(Tile(2, 1036799))
    '2/001/036/799'
    """
    level, index = _check_tile(t)
    digits = f"{index:0{_PATH_WIDTH[level]}d}"
    return "/".join([str(level), *(digits[i : i + 3] for i in range(0, len(digits), 3))])


def parse_tile(text: str) -> Tile:
    """The tile of a path suffix (``0/002/140``) or of ``level/index`` (``0/2140``).

    Examples
    --------
    >>> parse_tile("0/002/140")
    Tile(level=0, index=2140)
    >>> parse_tile("0/2140")
    Tile(level=0, index=2140)
    """
    parts = text.strip("/").split("/")
    if len(parts) < 2 or not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(f"a tile is written level/index or level/ddd/ddd, not {text!r}")
    level = int(parts[0])
    _check_level(level)
    if len(parts) > 2:
        folders = _PATH_WIDTH[level] // 3
        if len(parts) != folders + 1 or not all(_FOLDER.fullmatch(p) for p in parts[1:]):
            raise ValueError(
                f"a level {level} tile path has {folders} folders of 3 digits, not {text!r}"
            )
    return _check_tile(Tile(level, int("".join(parts[1:]))))


def tile_from_key(key: str) -> Tile:
    """The tile of an object key that ends with a path suffix and a file name.

    The last component is cut at its first dot, so ``140.spd.0.gz`` reads as ``140``.

    Examples
    --------
    >>> tile_from_key("2026/47/0/002/140.spd.0.gz")
    Tile(level=0, index=2140)
    """
    parts = key.strip("/").split("/")
    parts[-1] = parts[-1].split(".", 1)[0]
    for level in (2, 1, 0):
        n = _PATH_WIDTH[level] // 3 + 1
        if len(parts) >= n and parts[-n] == str(level):
            try:
                return parse_tile("/".join(parts[-n:]))
            except ValueError:
                continue
    raise ValueError(f"no tile path (level/ddd/ddd) at the end of {key!r}")


def tiles_in_bbox(bbox: tuple[float, float, float, float], level: int) -> Iterator[Tile]:
    """The tiles of a level that overlap a bounding box, by index.

    ``bbox`` is ``(minlon, minlat, maxlon, maxlat)``. A tile merely touching the box's north or
    east edge is left out, unless the box has no width (or height) there. A box with
    ``minlon > maxlon`` crosses the antimeridian.

    Examples
    --------
    >>> [t.index for t in tiles_in_bbox((100.0, 2.0, 108.0, 6.0), 0)]
    [2140, 2141]
    """
    minlon, minlat, maxlon, maxlat = bbox
    size = _check_level(level)
    _check_lonlat(minlon, minlat)
    _check_lonlat(maxlon, maxlat)
    if minlat > maxlat:
        raise ValueError(f"bbox minlat {minlat} is north of maxlat {maxlat}")
    spans = [(minlon, maxlon)] if minlon <= maxlon else [(minlon, 180.0), (-180.0, maxlon)]
    row_lo = _cell(minlat, -90.0, size, rows(level))
    row_hi = _last_cell(minlat, maxlat, -90.0, size, rows(level))
    cols: set[int] = set()
    for lo, hi in spans:
        first = _cell(lo, -180.0, size, columns(level))
        cols.update(range(first, _last_cell(lo, hi, -180.0, size, columns(level)) + 1))
    width = columns(level)
    for row in range(row_lo, row_hi + 1):
        for col in sorted(cols):
            yield Tile(level, row * width + col)


def _last_cell(lo: float, hi: float, origin: float, size: float, count: int) -> int:
    cell = _cell(hi, origin, size, count)
    if hi > lo and cell > 0 and hi == origin + cell * size:
        cell -= 1  # the box only touches this cell's edge
    return cell


def mercator_tile(lon: float, lat: float, zoom: int) -> mercantile.Tile:
    """The Web-Mercator map tile (x, y, z) containing a point.

    Examples
    --------
    >>> mercator_tile(-74.0, 40.7, 10)
    Tile(x=301, y=385, z=10)
    """
    return mercantile.tile(lon, lat, zoom)


def mercator_bounds(x: int, y: int, zoom: int) -> mercantile.LngLatBbox:
    """The bounds in degrees (west, south, east, north) of a Web-Mercator map tile.

    Examples
    --------
    >>> mercator_bounds(0, 0, 0).east
    180.0
    """
    return mercantile.bounds(x, y, zoom)


def mercator_tiles(t: Tile, zoom: int) -> Iterator[mercantile.Tile]:
    """The Web-Mercator map tiles of a zoom that overlap a tile of our grid.

    Latitudes beyond ±85.0511° (the Mercator limit) are clipped.

    Examples
    --------
    >>> len(list(mercator_tiles(Tile(0, 2140), 4)))
    1
    """
    west, south, east, north = bounds(t)
    return mercantile.tiles(west, south, east, north, zoom, truncate=True)


def ancestor(t: Tile, level: int = 0) -> Tile:
    """The tile of a coarser (or the same) level that contains a tile.

    Examples
    --------
    >>> ancestor(Tile(2, 0)), ancestor(Tile(1, 361), 1)
    (Tile(level=0, index=0), Tile(level=1, index=361))
    """
    if level > t[0]:
        raise ValueError(f"a level {t[0]} tile has no ancestor at the finer level {level}")
    while t[0] > level:
        t = parent(t)
    return t
