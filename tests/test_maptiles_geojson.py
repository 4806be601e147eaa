"""The tile pieces' feature text written on the worker (renderer.maptiles.geojson): the C
writer and its Python twin byte for byte, and both against what PostGIS wrote before
(ST_AsGeoJSON(ST_ForcePolygonCCW(ST_Transform(geom, 4326)), digits)) on every piece of two
rendered samples."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from renderer.db import Database
from renderer.maptiles import geojson, zooms
from tests.maptiles_fixtures import connect, small_sample, world_sample
from tests.test_maptiles import _render

__all__ = ["small_sample", "world_sample"]

WRITERS = geojson.implementations()
HALF = 20037508.342789244


def test_both_implementations_are_here() -> None:
    assert set(WRITERS) == {"c", "python"}, "build the extension: make test builds it"


# -- the twin and the C writer -----------------------------------------------------------

metre = st.one_of(st.floats(min_value=-HALF, max_value=HALF, allow_nan=False),
                  st.sampled_from([0.0, -0.0, 1e-9, -1e-9, 0.5, -HALF, HALF]))
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)


@st.composite
def shapes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["ring", "box", "holed", "multi", "flat"]))
    x, y = draw(metre), draw(metre)
    if kind == "box":
        w = draw(st.floats(min_value=1e-3, max_value=1e6))
        return shapely.to_wkb(box(x, y, x + w, y + w))
    if kind == "flat":  # a ring with no area: its turn decided by a zero signed area
        return shapely.to_wkb(Polygon([(x, y), (x + 10, y), (x + 20, y), (x, y)]))
    pts = [(draw(metre), draw(metre)) for _ in range(draw(st.integers(3, 10)))]
    ring = Polygon(pts)  # possibly self-intersecting: both must write the same all the same
    if kind == "holed":
        return shapely.to_wkb(Polygon(box(0, 0, 9e5, 9e5).exterior.coords,
                                      [box(1e5, 1e5, 3e5, 4e5).exterior.coords[::-1]]))
    if kind == "multi":
        return shapely.to_wkb(MultiPolygon([ring, box(-5e5, -5e5, -1e5, -1e5)]))
    return shapely.to_wkb(ring)


@st.composite
def pieces(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    out = []
    for _ in range(draw(st.integers(0, 8))):
        x, y = draw(st.integers(0, 2)), draw(st.integers(0, 1))
        covers = draw(st.booleans())
        wkb = None if covers else draw(shapes())
        if wkb is not None and draw(st.booleans()):
            wkb = shapely.to_wkb(shapely.from_wkb(wkb), byte_order=0)
        out.append((x, y, "k", "t", None, draw(st.integers(1, 2**31 - 1)), draw(text),
                    draw(text), wkb, draw(text) if covers else None))
    return out


@settings(max_examples=300, deadline=None)
@given(pieces(), st.integers(0, 9), st.integers(0, 20))
def test_c_equals_twin(rows: list[tuple[Any, ...]], digits: int, z: int) -> None:
    assert WRITERS["c"](rows, z, digits) == WRITERS["python"](rows, z, digits)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_what_it_writes(name: str) -> None:
    write = WRITERS[name]
    # a clockwise square (on the map, y up) with a counterclockwise hole: both turned
    outer = [(0, 0), (0, 2e5), (2e5, 2e5), (2e5, 0), (0, 0)]
    hole = [(5e4, 5e4), (1e5, 5e4), (1e5, 1e5), (5e4, 1e5), (5e4, 5e4)]
    wkb = shapely.to_wkb(Polygon(outer, [hole]))
    rows = [(3, 4, "k", "t", None, 7, "H\t", "\\T", wkb, None),
            (3, 4, "k", "t", None, 8, "{", "}", None, '"cover"'),
            (5, 4, "k", "t", None, 9, "", "", wkb, None)]
    lines = write(rows, 12, 4).decode().splitlines()
    assert [line.split("\t")[:5] for line in lines] == [
        ["12", "3", "4", "7", "1"], ["12", "3", "4", "8", "2"], ["12", "5", "4", "9", "1"]]
    assert lines[0].split("\t", 5)[5].startswith("H\\t{") and lines[0].endswith("\\\\T")
    assert lines[1].split("\t", 5)[5] == '{"cover"}'
    got = json.loads(lines[2].split("\t", 5)[5])
    exterior, interior = got["coordinates"]
    assert got["type"] == "Polygon"
    assert shapely.Polygon(exterior).exterior.is_ccw  # RFC 7946: the right-hand rule
    assert not shapely.Polygon(interior).exterior.is_ccw
    assert exterior[0] == [0, 0] and exterior[1] == [1.7966, 0]  # no trailing zeros, no -0


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_bad_input_is_refused(name: str) -> None:
    write = WRITERS[name]
    square = shapely.to_wkb(box(0, 0, 10, 10))

    def row(wkb: bytes) -> list[tuple[Any, ...]]:
        return [(0, 0, "k", "t", None, 1, "", "", wkb, None)]

    with pytest.raises((ValueError, struct.error)):
        write(row(square[:-3]), 1, 5)
    with pytest.raises(ValueError, match="Polygon or MultiPolygon"):
        write(row(shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)]))), 1, 5)
    with pytest.raises(ValueError, match="digits"):
        write(row(square), 1, 16)


# -- against PostGIS -------------------------------------------------------------------------

POSTGIS = """
SELECT p.z, p.x, p.y, p.region_id, f.feature, f.ord,
       ST_AsGeoJSON(ST_ForcePolygonCCW(ST_Transform(p.geom, 4326)), %(digits)s) AS theirs
FROM tile_pieces p JOIN tile_features f USING (z, x, y, region_id)
WHERE p.z = %(z)s AND NOT p.covers
"""


def _coords(value: Any) -> list[float]:
    if isinstance(value, list):
        return [c for v in value for c in _coords(v)]
    return [value]


def _against_postgis(conn: Any) -> tuple[int, int]:
    """(pieces, pieces whose text is not PostGIS's byte for byte); every difference is one
    unit of the last decimal in some coordinates."""
    n = differ = 0
    zs = [r["z"] for r in conn.execute("SELECT DISTINCT z FROM tile_pieces ORDER BY z")]
    for z in zs:
        digits = zooms.digits(z)
        for r in conn.execute(POSTGIS, {"z": z, "digits": digits}):
            n += 1
            ours = r["feature"]
            start = ours.index(',"geometry":') + len(',"geometry":')
            geometry = ours[start:start + len(r["theirs"])]
            if geometry == r["theirs"] and ours[start + len(r["theirs"])] == ",":
                continue
            differ += 1
            mine = json.loads(ours + "}}")["geometry"]
            theirs = json.loads(r["theirs"])
            assert mine["type"] == theirs["type"]
            a, b = _coords(mine["coordinates"]), _coords(theirs["coordinates"])
            assert len(a) == len(b), (z, r["x"], r["y"], r["region_id"])
            assert all(abs(p - q) <= 1.000001 * 10.0**-digits for p, q in zip(a, b, strict=True))
    return n, differ


def test_same_text_as_postgis_on_every_piece(db: Database, small_sample: object,
                                             database_url: str) -> None:
    _render(database_url, 0, 13)
    with connect(db) as conn:
        n, differ = _against_postgis(conn)
        ords = conn.execute(
            "SELECT count(*) AS bad FROM (SELECT z, x, y, array_agg(f.ord ORDER BY r.area_m2"
            " DESC, r.id) AS o FROM tile_features f JOIN regions r ON r.id = f.region_id"
            " GROUP BY z, x, y) t WHERE o <> (SELECT array_agg(i ORDER BY i)"
            " FROM generate_series(1, cardinality(o)) i)").fetchone()
    assert n > 2000 and differ == 0  # byte for byte (see renderer/maptiles/geojson.py)
    assert ords is not None and ords["bad"] == 0  # larger regions first, 1..n in each tile


def test_same_text_as_postgis_on_real_coasts(db: Database, world_sample: object,
                                             database_url: str) -> None:
    # Natural Earth's countries: holes, islands, both sides of the equator and meridian
    _render(database_url, 0, 5)
    with connect(db) as conn:
        n, differ = _against_postgis(conn)
    assert n > 300 and differ == 0
