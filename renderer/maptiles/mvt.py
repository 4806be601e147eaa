"""Mapbox Vector Tiles of the rendered tiles, encoded here from their pieces.

The export used ``ST_AsMVT(ST_AsMVTGeom(...))`` in the database: 0.2-0.4 ms of server CPU a
tile, most of the export's. The pieces are already cut to their tile and its margin (the MVT
buffer), so what is left is scaling them to the tile's grid and writing the protobuf: done
here by ``renderer._mvt.encode`` (from ``ext/mvt.c``) or, without the C build, its twin
``renderer._mvt_py.encode``; ``RENDERER_NO_EXT=1`` forces the twin. Readers get what
``ST_AsMVT`` gave them (tests/test_maptiles_mvt.py compares every tile of two samples): the
same layer, extent, keys, values, features in the same order with the same tags. The bytes
differ: PostGIS 3.3 rebuilds each polygon through wagyu, whose rings start at another
vertex, and keeps a few vertices within half a tile unit of their neighbours' line that
this encoder drops; a polygon the integer grid makes invalid is written as it is (PostGIS
repairs it; none seen in the samples).

Layer ``regions``, extent 4096, features larger region first; properties ``key``, ``uid``,
``type``, ``name`` (absent when NULL), ``parents`` (comma-separated) and the region's
statistics, as ``ST_AsMVT`` writes a jsonb column: members in jsonb's key order (shorter
first, then bytewise), the last of repeated keys, numbers integral within 1e-12 as
integers (uint or sint), others as doubles, a null or nested value as a key without a tag.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from renderer import _mvt_py, db, kernels

__all__ = ["COLUMNS", "EXTENT", "IMPLEMENTATION", "LAYER", "Encode", "Regions", "bounds",
           "encode", "implementations", "int_array", "key_arrays", "stats_members", "tiles"]

LAYER = "regions"
EXTENT = 4096
COLUMNS = ("key", "uid", "type", "name", "parents")
HALF_WORLD = 20037508.342789244
LONG_MAX = 2**63 - 1
Encode = Callable[..., bytes]


encode: Encode
encode, IMPLEMENTATION = kernels.pick("_mvt", "encode", _mvt_py.encode)


def implementations() -> dict[str, Encode]:
    """Every implementation available here (the C one whenever it imports)."""
    return kernels.both("_mvt", "encode", _mvt_py.encode)


def bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's box in Web Mercator metres, computed as ``ST_TileEnvelope(z, x, y)`` does
    (so the affine to tile units is the one ``ST_AsMVTGeom`` used)."""
    size = (HALF_WORLD - -HALF_WORLD) / (1 << z)
    return (-HALF_WORLD + size * x, HALF_WORLD - size * (y + 1),
            -HALF_WORLD + size * (x + 1), HALF_WORLD - size * y)


def _number(text: str) -> int | float:
    """A JSON number as ST_AsMVT reads jsonb's: strtod and strtol of its decimal text, an
    integer when the two agree within 1e-12."""
    d = decimal.Decimal(text)
    as_double = float(d)
    whole = max(-LONG_MAX - 1, min(LONG_MAX, int(d)))
    return as_double if abs(as_double - float(whole)) > 1e-12 else whole


def _value(v: Any) -> Any:
    if isinstance(v, dict | list):
        return None
    return _number(str(v)) if isinstance(v, decimal.Decimal) else v


def stats_members(members: str | None) -> tuple[tuple[str, Any], ...]:
    """The (key, value) tags of a region's statistics members (``"pop":12,"rate":0.5``),
    as ``ST_AsMVT`` takes a jsonb object."""
    if not members:
        return ()
    pairs = json.loads("{" + members + "}", object_pairs_hook=list,
                       parse_float=decimal.Decimal, parse_int=decimal.Decimal)
    last = dict(pairs)
    order = sorted(last, key=lambda k: (len(k.encode()), k.encode()))
    return tuple((k, _value(last[k])) for k in order)


class Regions:
    """Each region's properties, read once per export (a region is in many tiles)."""

    def __init__(self, conn: db.Connection) -> None:
        self.conn = conn
        self.known: dict[int, tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]]] = {}
        self.members: dict[int, str | None] = {}  # the statistics as stored, for GeoJSON

    def load(self, ids: Iterable[int]) -> None:
        missing = sorted(set(ids) - self.known.keys())
        if not missing:
            return
        with self.conn.cursor(row_factory=db.tuple_row) as cur:
            for rid, key, uid, kind, name, parents, members in cur.execute(
                    db.query("maptiles.export_regions"), {"ids": int_array(missing)}):
                self.known[rid] = ((key, uid, kind, name, parents), stats_members(members))
                self.members[rid] = members

    def features(self, pieces: Sequence[tuple[int, bytes]]
                 ) -> list[tuple[bytes, tuple[Any, ...], tuple[tuple[str, Any], ...]]]:
        """The encoder's features of one tile's (region id, WKB) pieces, in order."""
        known = self.known
        return [(wkb, *known[rid]) for rid, wkb in pieces]


def int_array(values: Iterable[int]) -> str:
    """Integers as an array literal (``{1,2,3}``) for a ``%(name)s::int[]`` parameter: the
    driver's array dumper (Python, with a regular expression per element) cost 1.5 ms for
    256 integers, 0.035 ms of the export's client CPU a tile for its six arrays a batch."""
    return "{" + ",".join(map(str, values)) + "}"


def key_arrays(keys: Sequence[tuple[int, int, int]]) -> dict[str, str]:
    """The ``zs``, ``xs`` and ``ys`` parameters of tiles (z, x, y), as array literals."""
    return {"zs": int_array(k[0] for k in keys), "xs": int_array(k[1] for k in keys),
            "ys": int_array(k[2] for k in keys)}


def tiles(conn: db.Connection, keys: Sequence[tuple[int, int, int]], regions: Regions, *,
          margin_px: float = 4.0, encoder: Encode | None = None) -> list[bytes]:
    """The MVT of each tile (z, x, y) of ``keys``, in order: its pieces read in one
    statement (WKB, binary), its regions' properties from ``regions``."""
    params = {**key_arrays(keys), "margin": margin_px / 256}
    pieces: list[list[tuple[int, bytes]]] = [[] for _ in keys]
    with conn.cursor(row_factory=db.tuple_row) as cur:
        # one row a tile (its region ids and WKBs as arrays): a row a piece cost the client
        # more to fetch than the encoder took
        for n, region_ids, wkbs in cur.execute(db.query("maptiles.export_pieces"), params,
                                               binary=True).fetchall():
            pieces[n - 1] = list(zip(region_ids, wkbs, strict=True))
    regions.load(rid for tile in pieces for rid, _ in tile)
    run = encoder or encode
    return [run(LAYER, bounds(*k), COLUMNS, regions.features(tile), EXTENT)
            for k, tile in zip(keys, pieces, strict=True)]
