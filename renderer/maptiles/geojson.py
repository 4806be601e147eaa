"""The feature text of a block's tile pieces, made on the worker, as ``tile_features``' COPY rows.

The cut (``cut_block``) wrote each piece's text in SQL:
``ST_AsGeoJSON(ST_ForcePolygonCCW(ST_Transform(geom, 4326)), digits)`` between the region's
head and tail; that was the largest share of the cut's server CPU (the transform and the
formatting of every vertex), and the server is the part that does not scale out. Now the
cut returns each piece's WKB in Web Mercator metres and this module writes the same text:
``renderer._geojson.features_copy`` (from ``ext/geojson.c``) or, without the C build, its
twin :func:`features_copy_py` here (byte-equal, held so by a property test).

What it writes, per piece: the spherical Mercator's inverse as PROJ computes it for
``ST_Transform`` (``lon = x * (1 / R)``, ``lat = atan(sinh(y * (1 / R)))``, times 180 / pi:
the same doubles, checked on 20,000 random points), rings turned as
``ST_ForcePolygonCCW`` turns them (an exterior whose PostGIS signed area is positive, i.e.
clockwise, is reversed; a hole whose signed area is not positive is reversed), and each
coordinate rounded to ``digits`` decimals as ``rint(v * 10**digits)`` (half to even),
written without trailing zeros (``12.5``, ``-3``, ``0.00012``; never ``-0``).

How the bytes can differ from PostGIS's: PostGIS rounds the coordinate's exact value (half
to even), this rounds the product ``v * 10**digits``, whose own rounding can move a value
within about 1e-16 of a tie (or a tie itself) across it: the two then differ by one unit of
the last decimal (a tenth of a quarter pixel or less: the digits keep a quarter pixel).
The tests count such differences on two rendered samples. A covering piece's text (its
tile with the margin) is still made in SQL, once a tile.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

from renderer import kernels
from renderer._utfgrid_py import ring_at

__all__ = ["IMPLEMENTATION", "FeaturesCopy", "copy_field", "features_copy", "features_copy_py",
           "geometry", "implementations"]

RA = 1.0 / 6378137.0  # PROJ's inverse of EPSG:3857 multiplies by 1/a, then to degrees
DEGREES = 180.0 / math.pi
MAX_DIGITS = 15
FeaturesCopy = Callable[..., bytes]


def copy_field(text: str) -> str:
    """Text as a field of COPY's text format."""
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


def _coord(v: float, digits: int) -> str:
    scaled = v * 10.0**digits
    if not abs(scaled) < 9.0e18:
        raise ValueError("coordinate out of range")
    n = round(scaled)
    whole, frac = divmod(abs(n), 10**digits)
    sign = "-" if n < 0 else ""
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{digits}d}".rstrip("0")


def _polygon(wkb: bytes, pos: int, order: str, digits: int) -> tuple[str, int]:
    (nrings,) = struct.unpack_from(order + "I", wkb, pos)
    pos += 4
    rings = []
    for k in range(nrings):
        flat, pos = ring_at(wkb, pos, order)
        npoints = len(flat) // 2
        pts = [(x * RA * DEGREES, math.atan(math.sinh(y * RA)) * DEGREES)
               for x, y in zip(flat[0::2], flat[1::2], strict=True)]
        total = 0.0  # PostGIS's ptarray_signed_area (times 2): positive when clockwise
        if npoints >= 3:
            x0 = pts[0][0]
            for j in range(2, npoints):
                total += (pts[j - 1][0] - x0) * (pts[j - 2][1] - pts[j][1])
        clockwise = total / 2.0 > 0
        if clockwise if k == 0 else not clockwise:
            pts.reverse()
        rings.append("[" + ",".join(f"[{_coord(x, digits)},{_coord(y, digits)}]"
                                    for x, y in pts) + "]")
    return "[" + ",".join(rings) + "]", pos


def geometry(wkb: bytes, digits: int) -> str:
    """A Polygon's or MultiPolygon's WKB (Web Mercator metres) as GeoJSON in WGS84, as
    ``ST_AsGeoJSON(ST_ForcePolygonCCW(ST_Transform(geom, 4326)), digits)`` writes it (up
    to the rounding the module docstring describes)."""
    if len(wkb) < 5:
        raise ValueError("truncated WKB")
    order = "<" if wkb[0] == 1 else ">"
    (kind,) = struct.unpack_from(order + "I", wkb, 1)
    kind &= 0xFFFF
    if kind == 3:
        text, _ = _polygon(wkb, 5, order, digits)
        return '{"type":"Polygon","coordinates":' + text + "}"
    if kind != 6:
        raise ValueError(f"a piece must be a Polygon or MultiPolygon (WKB type {kind})")
    (n,) = struct.unpack_from(order + "I", wkb, 5)
    pos, parts = 9, []
    for _ in range(n):
        if pos + 5 > len(wkb):
            raise ValueError("truncated WKB")
        sub = "<" if wkb[pos] == 1 else ">"
        (part,) = struct.unpack_from(sub + "I", wkb, pos + 1)
        if part & 0xFFFF != 3:
            raise ValueError(f"a MultiPolygon part must be a Polygon (WKB type {part & 0xFFFF})")
        text, pos = _polygon(wkb, pos + 5, sub, digits)
        parts.append(text)
    return '{"type":"MultiPolygon","coordinates":[' + ",".join(parts) + "]}"


def features_copy_py(pieces: Sequence[Sequence[Any]], z: int, digits: int) -> bytes:
    """The COPY rows (text format, UTF-8: ``z, x, y, region_id, ord, feature``) of a block's
    pieces, tuples ``(x, y, key, type, wkb in pixels, region_id, head, tail, wkb in metres
    or None, covering text or None)`` a tile's together, larger region first (``ord`` counts
    them from 1 in each tile): the feature is ``head + geometry + tail``, the geometry the
    covering text for a covering piece, else :func:`geometry` of its WKB. The twin of
    ``renderer._geojson.features_copy``, byte for byte."""
    if not 0 <= digits <= MAX_DIGITS:
        raise ValueError(f"digits must be 0 to {MAX_DIGITS}")
    out = []
    tile, ord_ = None, 0
    for r in pieces:
        ord_ = ord_ + 1 if (r[0], r[1]) == tile else 1
        tile = (r[0], r[1])
        shape = r[9] if r[8] is None else geometry(r[8], digits)
        out.append(f"{z}\t{r[0]}\t{r[1]}\t{r[5]}\t{ord_}\t{copy_field(r[6] + shape + r[7])}\n")
    return "".join(out).encode()


features_copy: FeaturesCopy
features_copy, IMPLEMENTATION = kernels.pick("_geojson", "features_copy", features_copy_py)


def implementations() -> dict[str, FeaturesCopy]:
    """Every implementation available here (the C one whenever it imports)."""
    return kernels.both("_geojson", "features_copy", features_copy_py)
