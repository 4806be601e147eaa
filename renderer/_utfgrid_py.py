"""The pure-Python twin of ``renderer._utfgrid`` (ext/utfgrid.c): same signature, same
results, cell for cell (the tests hold them equal on random shapes).

``paint(shapes, size, resolution)`` paints shapes in order (a later shape over an earlier
one) into a grid of ``size / resolution`` cells a side. A shape is the WKB of a Polygon,
MultiPolygon or GeometryCollection of them in tile pixels (x right, y down), or None for a
shape covering the whole tile. A cell takes the last shape containing the centre of its
top-left pixel, ``(col * resolution + 0.5, row * resolution + 0.5)``, by the even-odd rule
over all rings of the shape (a valid polygon's holes stay holes); a point on a left or top
edge is inside, on a right or bottom edge outside. Returns the UTFGrid 1.2 rows and, for
each key id in order of first appearance (row by row), the index of its shape, -1 for the
empty key: code point = id + 32, skipping 34 (") and 92 (\\).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

__all__ = ["codepoint", "paint"]

LIMIT = 4096  # cells a side at most


def codepoint(key_id: int) -> int:
    """UTFGrid 1.2: id + 32, skipping 34 and 92."""
    c = key_id + 32
    if c >= 34:
        c += 1
    if c >= 92:
        c += 1
    return c


def _rings(wkb: bytes) -> list[list[tuple[float, float]]]:
    rings: list[list[tuple[float, float]]] = []

    def geometry(pos: int) -> int:
        if pos + 5 > len(wkb):
            raise ValueError("truncated WKB")
        order = "<" if wkb[pos] == 1 else ">"
        (kind,) = struct.unpack_from(order + "I", wkb, pos + 1)
        pos += 5
        kind &= 0xFFFF  # no Z/M/SRID flags expected; keep the base type
        if kind == 3:
            (nrings,) = struct.unpack_from(order + "I", wkb, pos)
            pos += 4
            for _ in range(nrings):
                (npoints,) = struct.unpack_from(order + "I", wkb, pos)
                pos += 4
                if pos + 16 * npoints > len(wkb):
                    raise ValueError("truncated WKB")
                flat = struct.unpack_from(order + f"{2 * npoints}d", wkb, pos)
                pos += 16 * npoints
                rings.append(list(zip(flat[0::2], flat[1::2], strict=True)))
            return pos
        if kind in (6, 7):
            (n,) = struct.unpack_from(order + "I", wkb, pos)
            pos += 4
            for _ in range(n):
                pos = geometry(pos)
            return pos
        if kind in (1, 2, 4, 5):  # points and lines paint nothing
            return _skip(wkb, pos, order, kind)
        raise ValueError(f"unsupported WKB type {kind}")

    geometry(0)
    return rings


def _skip(wkb: bytes, pos: int, order: str, kind: int) -> int:
    if kind == 1:
        return pos + 16
    (n,) = struct.unpack_from(order + "I", wkb, pos)
    pos += 4
    if kind == 2:
        return pos + 16 * n
    for _ in range(n):  # multipoint / multilinestring: full geometries
        sub_order = "<" if wkb[pos] == 1 else ">"
        (sub,) = struct.unpack_from(sub_order + "I", wkb, pos + 1)
        pos = _skip(wkb, pos + 5, sub_order, sub & 0xFFFF)
    return pos


def _index(value: float, hi: int) -> int:
    """ceil(value) as an int, the value clamped to [-1, hi] first (as the C code does)."""
    if value != value or value <= -1:  # NaN paints nothing
        return -1
    if value >= hi:
        return hi
    return math.ceil(value)


def paint(shapes: Sequence[bytes | None], size: int = 256,
          resolution: int = 4) -> tuple[list[str], list[int]]:
    if resolution < 1 or size < resolution or size % resolution:
        raise ValueError("size must be a positive multiple of resolution")
    g = size // resolution
    if g > LIMIT:
        raise ValueError(f"at most {LIMIT} cells a side")
    res = float(resolution)
    cells = [0] * (g * g)
    for i, shape in enumerate(shapes):
        value = i + 1
        if shape is None:
            cells = [value] * (g * g)
            continue
        rows: list[list[float]] = [[] for _ in range(g)]
        for ring in _rings(bytes(shape)):
            n = len(ring)
            if n < 2:
                continue
            for j in range(n):
                x0, y0 = ring[j]
                x1, y1 = ring[(j + 1) % n]
                if y0 == y1:
                    continue
                ylo, yhi = (y0, y1) if y0 < y1 else (y1, y0)
                r0 = max(0, _index((ylo - 0.5) / res, g))
                r1 = min(g - 1, _index((yhi - 0.5) / res, g) - 1)
                for r in range(r0, r1 + 1):
                    yr = r * res + 0.5
                    rows[r].append(x0 + (yr - y0) * (x1 - x0) / (y1 - y0))
        for r, xs in enumerate(rows):
            if len(xs) < 2:
                continue
            xs.sort()
            base = r * g
            for k in range(0, len(xs) - 1, 2):
                c0 = max(0, _index((xs[k] - 0.5) / res, g))
                c1 = min(g - 1, _index((xs[k + 1] - 0.5) / res, g) - 1)
                for c in range(c0, c1 + 1):
                    cells[base + c] = value
    ids: dict[int, int] = {}
    order: list[int] = []
    out: list[str] = []
    for r in range(g):
        chars = []
        for v in cells[r * g:(r + 1) * g]:
            key_id = ids.get(v)
            if key_id is None:
                key_id = ids[v] = len(order)
                order.append(v - 1)
            chars.append(chr(codepoint(key_id)))
        out.append("".join(chars))
    return out, order
