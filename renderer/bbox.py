"""Bounding boxes in degrees (WGS 84), parsed once for the CLI and the HTTP API.

A box is ``minlon, minlat, maxlon, maxlat``; ``minlon > maxlon`` means it crosses the
antimeridian (``170,-10,-170,10`` is 20 degrees wide around 180). ``minlat`` may not be north
of ``maxlat``. A box of no width or height (a line, a point) is allowed.

Example
-------
>>> box = parse_bbox("100,0,108,8")
>>> box, box.crosses_antimeridian
(BBox(minlon=100.0, minlat=0.0, maxlon=108.0, maxlat=8.0), False)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from renderer import tiles
from renderer.errors import InputError
from renderer.tiles import Tile

__all__ = ["BBox", "parse_bbox"]

_HINT = "write minlon,minlat,maxlon,maxlat in degrees (WGS 84); minlon > maxlon crosses 180"


class BBox(NamedTuple):
    """A checked bounding box (a tuple, so it serialises as a list of four numbers)."""

    minlon: float
    minlat: float
    maxlon: float
    maxlat: float

    @property
    def crosses_antimeridian(self) -> bool:
        return self.minlon > self.maxlon

    def spans(self) -> list[tuple[float, float]]:
        """Its longitude ranges: one, or two when it crosses the antimeridian."""
        if self.crosses_antimeridian:
            return [(self.minlon, 180.0), (-180.0, self.maxlon)]
        return [(self.minlon, self.maxlon)]

    def overlaps(self, tile: Tile) -> bool:
        """Whether a tile shares area with the box (or holds it, when it has none).

        Examples
        --------
        >>> parse_bbox([179, 0, -179, 1]).overlaps(Tile(0, 2069))  # west of 180
        True
        """
        west, south, east, north = tiles.bounds(tile)
        lat = ((south < self.maxlat and north > self.minlat)
               or (self.minlat == self.maxlat and south <= self.minlat <= north))
        return lat and any((west < hi and east > lo) or (lo == hi and west <= lo <= east)
                           for lo, hi in self.spans())

    def tiles(self, level: int) -> Iterator[Tile]:
        """The tiles of a level that overlap the box (:func:`renderer.tiles.tiles_in_bbox`)."""
        return tiles.tiles_in_bbox(self, level)


def parse_bbox(value: str | Sequence[object] | BBox) -> BBox:
    """A :class:`BBox` from ``"minlon,minlat,maxlon,maxlat"`` or four numbers (a JSON list);
    InputError naming the problem otherwise.

    Examples
    --------
    >>> parse_bbox("170,-10,-170,10").crosses_antimeridian
    True
    >>> parse_bbox([0, 10, 1, 5])
    Traceback (most recent call last):
    ...
    renderer.errors.InputError: invalid bbox [0, 10, 1, 5]: minlat is north of maxlat
    """
    if isinstance(value, BBox):
        return value
    parts: list[object] = list(value.split(",")) if isinstance(value, str) else list(value)
    if len(parts) != 4 or any(isinstance(p, bool) or not isinstance(p, str | int | float)
                              for p in parts):
        raise InputError(f"invalid bbox {value!r}: four numbers needed", _HINT)
    try:
        minlon, minlat, maxlon, maxlat = (float(p) for p in parts)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError(f"invalid bbox {value!r}: not numbers", _HINT) from exc
    if not all(-180 <= x <= 180 for x in (minlon, maxlon)) or not all(
            -90 <= y <= 90 for y in (minlat, maxlat)):
        raise InputError(f"invalid bbox {value!r}: out of range", _HINT)
    if minlat > maxlat:
        raise InputError(f"invalid bbox {value!r}: minlat is north of maxlat", _HINT)
    return BBox(minlon, minlat, maxlon, maxlat)
