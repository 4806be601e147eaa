"""Pure-Python twin of the C MVT encoder (``renderer._mvt``, from ``ext/mvt.c``).

``encode(name, bounds, columns, features, extent=4096)`` writes one Mapbox Vector Tile
(a Tile with one Layer, version 2) of polygon features, following PostGIS's
``ST_AsMVT(ST_AsMVTGeom(geom, bounds, extent, buffer, true))`` for geometries already within
the buffer (renderer/maptiles/mvt.py says how the two outputs differ):

- ``bounds`` = (xmin, ymin, xmax, ymax) of the tile in the geometries' units (no margin);
- ``columns``: the fixed property names, registered as keys first, in order (ST_AsMVT
  registers every column of its rows);
- a feature is ``(wkb, values, extra)``: a 2D Polygon or MultiPolygon WKB, one value per
  column (None: no tag), then ``(key, value)`` pairs (the members of a JSON object column;
  a None value registers the key without a tag, as ST_AsMVT does for a JSON null);
- values: str -> string_value, bool -> bool_value, int >= 0 -> uint_value, int < 0 ->
  sint_value, float -> double_value; keys and values are shared in order of first
  appearance, equal values once;
- geometry, per ring, in the order ST_AsMVTGeom takes: points within half a tile unit of
  the last kept one dropped (the last point kept, a ring keeps 4), Douglas-Peucker with
  the same half unit (a ring under 4 points dropped, an exterior's polygon with it), then
  the affine to tile units (y down) rounded half to even, consecutive equal points merged
  (again a ring under 4 points dropped); exteriors with a positive area in tile units,
  holes with a negative one (reversed when not, the first point kept); commands MoveTo 1,
  LineTo n-2, ClosePath, zigzag deltas from a cursor that runs through the feature;
- a feature left with no ring is skipped; a layer with no feature is ``b""``.

Not done (PostGIS does it and these tiles never need it): clipping to the buffer (the
pieces are cut to the tile and its margin before), and making a geometry valid when the
integer grid makes it invalid (GEOS ``isValid`` then ``MakeValid``, up to three times).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

__all__ = ["encode"]

DBL_EPSILON = 2.220446049250313e-16


def _varint(out: bytearray, v: int) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _field(out: bytearray, number: int, data: bytes | bytearray) -> None:
    _varint(out, (number << 3) | 2)
    _varint(out, len(data))
    out += data


def _zigzag(v: int) -> int:
    return ((v << 1) ^ (v >> 31)) & 0xFFFFFFFF


def _value(v: Any) -> bytes:
    out = bytearray()
    if isinstance(v, str):
        _field(out, 1, v.encode())
    elif isinstance(v, bool):
        _varint(out, 7 << 3)
        _varint(out, int(v))
    elif isinstance(v, int):
        if not -(2**63) <= v < 2**63:
            raise OverflowError("an integer value beyond 64 bits")
        if v >= 0:
            _varint(out, 5 << 3)
            _varint(out, v)
        else:
            _varint(out, 6 << 3)
            _varint(out, ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)
    elif isinstance(v, float):
        _varint(out, (3 << 3) | 1)
        out += struct.pack("<d", v)
    else:
        raise TypeError(f"an MVT value is str, bool, int or float, not {type(v).__name__}")
    return bytes(out)


def _drop_repeated(pts: list[tuple[float, float]], tol: float) -> list[tuple[float, float]]:
    min_points = 4
    n = len(pts)
    if n <= min_points:
        return pts
    tolsq = tol * tol
    out = [pts[0]]
    lx, ly = pts[0]
    for i in range(1, n):
        last_point = i == n - 1
        x, y = pts[i]
        if n + len(out) > min_points + i:
            dx, dy = lx - x, ly - y
            dsq = dx * dx + dy * dy
            if not last_point and dsq <= tolsq:
                continue
            if last_point and len(out) > 1 and dsq <= tolsq:
                out.pop()
        out.append((x, y))
        lx, ly = x, y
    return out


def _find_split(pts: list[tuple[float, float]], first: int, last: int, tolsq: float) -> int:
    split, max_sq = first, tolsq
    ax, ay = pts[first]
    bx, by = pts[last]
    abx, aby = ax - bx, ay - by
    if abx * abx + aby * aby < DBL_EPSILON:
        for k in range(first + 1, last):
            dx, dy = pts[k][0] - ax, pts[k][1] - ay
            d = dx * dx + dy * dy
            if d > max_sq:
                split, max_sq = k, d
        return split
    ba_x, ba_y = bx - ax, by - ay
    len_sq = ba_x * ba_x + ba_y * ba_y
    max_sq *= len_sq
    for k in range(first + 1, last):
        cx, cy = pts[k]
        ca_x, ca_y = cx - ax, cy - ay
        dot = ca_x * ba_x + ca_y * ba_y
        if dot <= 0.0:
            d = (ca_x * ca_x + ca_y * ca_y) * len_sq
        elif dot >= len_sq:
            cbx, cby = cx - bx, cy - by
            d = (cbx * cbx + cby * cby) * len_sq
        else:
            s = ca_x * ba_y - ca_y * ba_x
            d = s * s
        if d > max_sq:
            split, max_sq = k, d
    return split


def _simplify(pts: list[tuple[float, float]], tol: float) -> list[tuple[float, float]]:
    n = len(pts)
    if n < 3:
        return pts
    kept = [False] * n
    kept[0] = kept[-1] = True
    stack = [0]
    first, last = 0, n - 1
    tolsq = tol * tol
    while stack:
        split = _find_split(pts, first, last, tolsq)
        if split == first:
            first, last = last, stack.pop()
        else:
            kept[split] = True
            stack.append(last)
            last = split
    return [p for p, k in zip(pts, kept, strict=True) if k]


def _to_grid(pts: list[tuple[float, float]], t: tuple[float, float, float, float]
             ) -> list[tuple[float, float]]:
    fx, fy, xoff, yoff = t
    out: list[tuple[float, float]] = []
    for x, y in pts:
        p = (float(round(fx * x + xoff)), float(round(fy * y + yoff)))
        if not out or out[-1] != p:
            out.append(p)
    return out


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = bytes(data), 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        n = struct.calcsize(fmt)
        if self.pos + n > len(self.data):
            raise ValueError("truncated WKB")
        got = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += n
        return got

    def header(self) -> tuple[str, int]:
        (order,) = self.take("B")
        e = "<" if order == 1 else ">"
        (kind,) = self.take(e + "I")
        return e, kind


def _polygon(r: _Reader, e: str, res: float, t: tuple[float, float, float, float]
             ) -> list[list[tuple[float, float]]]:
    (nrings,) = r.take(e + "I")
    rings = []
    for _ in range(nrings):
        (np,) = r.take(e + "I")
        flat = r.take(e + f"{2 * np}d")
        rings.append([(flat[2 * i], flat[2 * i + 1]) for i in range(np)])
    rings = [ring for ring in (_drop_repeated(ring, res) for ring in rings) if len(ring) >= 4]
    simplified = []
    for k, ring in enumerate(rings):
        ring = _simplify(ring, res)
        if len(ring) < 4:
            if k == 0:
                return []
            continue
        simplified.append(ring)
    gridded = []
    for k, ring in enumerate(simplified):
        ring = _to_grid(ring, t)
        if len(ring) < 4:
            if k == 0:
                return []
            continue
        gridded.append(ring)
    return gridded


def _rings(wkb: bytes, res: float, t: tuple[float, float, float, float]
           ) -> list[tuple[list[tuple[float, float]], bool]]:
    r = _Reader(wkb)
    e, kind = r.header()
    if kind == 3:
        polygons = [_polygon(r, e, res, t)]
    elif kind == 6:
        (n,) = r.take(e + "I")
        polygons = []
        for _ in range(n):
            e2, part = r.header()
            if part != 3:
                raise ValueError("a multipolygon's part is not a polygon")
            polygons.append(_polygon(r, e2, res, t))
    else:
        raise ValueError(f"not a 2D polygon or multipolygon (WKB type {kind})")
    return [(ring, k == 0) for rings in polygons for k, ring in enumerate(rings)]


def _commands(rings: list[tuple[list[tuple[float, float]], bool]]) -> bytearray:
    out = bytearray()
    px = py = 0
    for ring, exterior in rings:
        n = len(ring)
        area = sum(ring[i][0] * ring[i + 1][1] - ring[i + 1][0] * ring[i][1]
                   for i in range(n - 1))
        reverse = area < 0 if exterior else area >= 0
        _varint(out, 1 | (1 << 3))
        for k in range(n - 1):
            i = n - 1 - k if reverse and k else k
            x, y = int(ring[i][0]), int(ring[i][1])
            _varint(out, _zigzag(x - px))
            _varint(out, _zigzag(y - py))
            px, py = x, y
            if k == 0:
                _varint(out, 2 | ((n - 2) << 3))
        _varint(out, 7 | (1 << 3))
    return out


def encode(name: str, bounds: tuple[float, float, float, float], columns: Sequence[str],
           features: Sequence[tuple[bytes, Sequence[Any], Sequence[tuple[str, Any]]]],
           extent: int = 4096) -> bytes:
    """One MVT layer ``name`` of ``features`` (see the module docstring)."""
    xmin, ymin, xmax, ymax = bounds
    if not 0 < extent <= 2**24 or not xmax > xmin or not ymax > ymin:
        raise ValueError("extent must be in 1..2^24 and the bounds not empty")
    width, height = xmax - xmin, ymax - ymin
    resx, resy = width / extent, height / extent
    res = (resx if resx < resy else resy) / 2
    fx, fy = extent / width, -(extent / height)
    t = (fx, fy, -xmin * fx, -ymax * fy)
    keys: dict[str, int] = {}
    values: dict[bytes, int] = {}
    for c in columns:
        keys.setdefault(c, len(keys))
    layer = bytearray()
    _field(layer, 1, name.encode())
    written = 0
    for wkb, vals, extra in features:
        geometry = _commands(_rings(wkb, res, t))
        if not geometry:
            continue
        if len(vals) != len(columns):
            raise ValueError("a feature has one value per column")
        tags = bytearray()
        for k, v in [*zip(columns, vals, strict=True), *extra]:
            ki = keys.setdefault(k, len(keys))
            if v is None:
                continue
            vi = values.setdefault(_value(v), len(values))
            _varint(tags, ki)
            _varint(tags, vi)
        feature = bytearray()
        if tags:
            _field(feature, 2, tags)
        _varint(feature, 3 << 3)
        _varint(feature, 3)
        _field(feature, 4, geometry)
        _field(layer, 2, feature)
        written += 1
    if not written:
        return b""
    for k in keys:
        _field(layer, 3, k.encode())
    for v in values:
        _field(layer, 4, v)
    _varint(layer, 5 << 3)
    _varint(layer, extent)
    _varint(layer, 15 << 3)
    _varint(layer, 2)
    out = bytearray()
    _field(out, 3, layer)
    return bytes(out)
