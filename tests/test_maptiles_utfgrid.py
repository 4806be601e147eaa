"""UTFGrids: the C loop and its Python twin cell for cell, both against mapnik's grid
renderer (an independent rasterizer), and the UTFGrid 1.2 rules."""

from __future__ import annotations

import json
import math
import struct

import mapnik
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon, box

from renderer import _utfgrid_py
from renderer.maptiles import utfgrid

PAINTERS = utfgrid.implementations()
COPIERS = utfgrid.tiles_copy_implementations()
STYLE = ('<Map srs="+proj=longlat +ellps=WGS84 +no_defs"><Style name="s"><Rule>'
         '<PolygonSymbolizer fill="black"/></Rule></Style></Map>')


def test_both_implementations_are_here() -> None:
    assert set(PAINTERS) == {"c", "python"}, "build the extension: make test builds it"
    assert set(COPIERS) == {"c", "python"}


# -- the twin and the C loop -------------------------------------------------------------

coord = st.floats(min_value=-40, max_value=300, allow_nan=False, width=32)
wild = st.one_of(coord, st.sampled_from([0.0, 0.5, 1.0, 3.5, 4.0, 255.5, 256.0, -1e12, 1e12]))


@st.composite
def shapes(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["ring", "box", "holed", "multi", "none", "line"]))
    if kind == "none":
        return None
    if kind == "line":
        return shapely.to_wkb(shapely.LineString([(0, 0), (9, 9)]))
    if kind == "box":
        x, y = draw(coord), draw(coord)
        return shapely.to_wkb(box(x, y, x + draw(coord) + 41, y + draw(coord) + 41))
    pts = draw(st.lists(st.tuples(wild, wild), min_size=3, max_size=12))
    ring = Polygon(pts)  # possibly self-intersecting: both must agree all the same
    if kind == "holed":
        return shapely.to_wkb(Polygon(box(0, 0, 200, 200).exterior.coords,
                                      [box(50, 50, 100, 120).exterior.coords]))
    if kind == "multi":
        return shapely.to_wkb(MultiPolygon([ring, box(200, 10, 230, 250)]))
    return shapely.to_wkb(ring)


@settings(max_examples=400)
@given(st.lists(shapes(), max_size=6), st.sampled_from([1, 2, 4, 8, 16]),
       st.booleans())
def test_c_equals_twin(items: list[bytes | None], resolution: int, big_endian: bool) -> None:
    if big_endian:
        items = [None if w is None else shapely.to_wkb(shapely.from_wkb(w), byte_order=0)
                 for w in items]
    assert PAINTERS["c"](items, 256, resolution) == PAINTERS["python"](items, 256, resolution)


@pytest.mark.parametrize("name", sorted(PAINTERS))
def test_bad_input_is_a_value_error(name: str) -> None:
    paint = PAINTERS[name]
    wkb = shapely.to_wkb(box(0, 0, 10, 10))
    for bad in (wkb[:-3], b"\x01\x09\x00\x00\x00", b""):
        with pytest.raises((ValueError, struct.error)):
            paint([bad])
    with pytest.raises(ValueError):
        paint([wkb], 256, 3)


CHAINS = utfgrid.chain_sets([["A", "B"], ["A", "C"], ["D"], ["A", "B", "C"]])
key_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), key_text,
                          st.sampled_from(["A", "B", "C", "D", "E"]), shapes()), max_size=10),
       st.sampled_from([4, 8, 16, 256]))
def test_tiles_copy_c_equals_twin(rows: list[tuple[object, ...]], resolution: int) -> None:
    # a block's tiles at once: their grids' JSON as COPY rows, byte for byte
    got = {name: copy(rows, CHAINS, 9, resolution=resolution) for name, copy in COPIERS.items()}
    assert got["c"] == got["python"]


def _unescape(field: str) -> str:
    return (field.replace("\\\\", "\0").replace("\\t", "\t").replace("\\n", "\n")
            .replace("\\r", "\r").replace("\0", "\\"))


@pytest.mark.parametrize("name", sorted(COPIERS))
def test_tiles_copy_rows_are_the_tiles_grids(name: str) -> None:
    half = shapely.to_wkb(box(0, 0, 128, 256))
    tile = [('A"1', "A", None), ("B\\2", "B", half), ("C\t3", "C", half), ("é", "E", None)]
    rows = [(5, 6, *p) for p in tile] + [(6, 6, "E-1", "E", None)]
    lines = COPIERS[name](rows, CHAINS, 11).decode().split("\n")
    assert lines[-1] == "" and len(lines) == 3
    z, x, y, field = lines[0].split("\t")
    assert (z, x, y) == ("11", "5", "6")
    assert json.loads(_unescape(field)) == utfgrid.tile_grids(
        tile, [["A", "B"], ["A", "C"], ["D"], ["A", "B", "C"]])
    assert lines[1] == "11\t6\t6\t[]"  # a tile with no region of any hierarchy: no grid


# -- UTFGrid 1.2 ---------------------------------------------------------------------------

def test_key_encoding_skips_quote_and_backslash() -> None:
    assert [_utfgrid_py.codepoint(i) for i in (0, 1, 2, 58, 59, 60)] == [32, 33, 35, 91,
                                                                         93, 94]
    many = [shapely.to_wkb(box(i, 0, i + 1, 256)) for i in range(256)]
    rows, order = utfgrid.paint(many, 256, 1)
    assert '"' not in rows[0] and "\\" not in rows[0]
    assert order == list(range(256))
    assert len({*rows[0]}) == 256


def test_collapse_drop_and_dedupe() -> None:
    whole, half = None, shapely.to_wkb(box(0, 0, 128, 256))
    assert utfgrid.grid([whole], ["A-1"]) == {"grid": [" "], "keys": ["A-1"]}
    assert utfgrid.grid([shapely.to_wkb(box(300, 300, 400, 400))], ["A-1"]) is None
    g = utfgrid.grid([whole, half], ["A-1", "B-2"])
    assert g is not None and g["keys"] == ["B-2", "A-1"] and len(g["grid"]) == 64
    assert g["grid"][0] == " " * 32 + "!" * 32
    grids = utfgrid.tile_grids([("A-1", "A", whole), ("B-2", "B", half), ("C-3", "C", half)],
                               [["A", "B"], ["A", "C"], ["A", "D"], ["E"]])
    assert [g["hierarchies"] for g in grids] == [["A > B"], ["A > C"], ["A > D"]]
    grids = utfgrid.tile_grids([("A-1", "A", whole)], [["A", "B"], ["A", "C"]])
    assert grids == [{"grid": [" "], "keys": ["A-1"], "hierarchies": ["A > B", "A > C"]}]
    assert utfgrid.decode(grids[0]) == [["A-1"]]


# -- against mapnik ------------------------------------------------------------------------

def mapnik_cells(polygons: list[Polygon | MultiPolygon], resolution: int = 4) -> list[list[str]]:
    """mapnik's grid of the polygons (tile pixels, y down), painted in order, as keys."""
    m = mapnik.Map(256, 256)
    mapnik.load_map_from_string(m, STYLE)
    ctx = mapnik.Context()
    ctx.push("key")
    ds = mapnik.MemoryDatasource()
    for i, poly in enumerate(polygons):
        f = mapnik.Feature(ctx, i + 1)
        f["key"] = f"k{i}"
        flipped = shapely.transform(poly, lambda xy: xy * [1, -1] + [0, 256])  # y up
        f.geometry = mapnik.Geometry.from_wkt(flipped.wkt)
        ds.add_feature(f)
    layer = mapnik.Layer("l")
    layer.datasource = ds
    layer.styles.append("s")
    m.layers.append(layer)
    m.zoom_to_box(mapnik.Box2d(0, 0, 256, 256))
    grid = mapnik.Grid(256, 256)
    mapnik.render_layer(m, grid, layer=0, fields=["key"])
    out = grid.encode("utf", resolution=resolution)
    data = out["data"]
    ids = {_utfgrid_py.codepoint(i): (data[k]["key"] if k else "")
           for i, k in enumerate(out["keys"])}
    return [[ids[ord(c)] for c in row] for row in out["grid"]]


def ours(polygons: list[Polygon | MultiPolygon], painter: utfgrid.Paint,
         resolution: int = 4) -> list[list[str]]:
    g = utfgrid.grid([shapely.to_wkb(p) for p in polygons],
                     [f"k{i}" for i in range(len(polygons))], resolution=resolution,
                     painter=painter)
    if g is None:
        return [[""] * (256 // resolution) for _ in range(256 // resolution)]
    cells = utfgrid.decode(g)
    if len(cells) == 1:
        return [[cells[0][0]] * (256 // resolution) for _ in range(256 // resolution)]
    return cells


@st.composite
def whole_pixel_shapes(draw: st.DrawFn) -> Polygon:
    """Rectilinear polygons with integer vertices: every edge on a pixel boundary."""
    x0, y0 = draw(st.integers(-20, 250)), draw(st.integers(-20, 250))
    w, h = draw(st.integers(1, 200)), draw(st.integers(1, 200))
    outer = box(x0, y0, x0 + w, y0 + h)
    if draw(st.booleans()) and w > 4 and h > 4:
        hx, hy = x0 + draw(st.integers(1, w - 3)), y0 + draw(st.integers(1, h - 3))
        return Polygon(outer.exterior.coords, [box(hx, hy, hx + 2, hy + 2).exterior.coords])
    if draw(st.booleans()):  # an L shape
        cut = box(x0 + w // 2, y0 + h // 2, x0 + w, y0 + h)
        shape = outer.difference(cut)
        if isinstance(shape, Polygon) and not shape.is_empty:
            return shape
    return outer


@settings(max_examples=60)
@given(st.lists(whole_pixel_shapes(), min_size=1, max_size=4), st.sampled_from([1, 4]))
def test_pixel_for_pixel_as_mapnik_on_whole_pixel_edges(polygons: list[Polygon],
                                                          resolution: int) -> None:
    expected = mapnik_cells(polygons, resolution)
    for painter in PAINTERS.values():
        assert ours(polygons, painter, resolution) == expected


@st.composite
def any_shapes(draw: st.DrawFn) -> Polygon:
    cx, cy = draw(st.floats(0, 256)), draw(st.floats(0, 256))
    r = draw(st.floats(3, 120))
    n = draw(st.integers(3, 24))
    return Point(cx, cy).buffer(r, quad_segs=max(1, n // 4)) if draw(st.booleans()) else \
        Polygon([(cx + r * draw(st.floats(0.3, 1)) * math.cos(k * math.tau / n),
                  cy + r * draw(st.floats(0.3, 1)) * math.sin(k * math.tau / n))
                 for k in range(n)])


@settings(max_examples=60)
@given(st.lists(any_shapes(), min_size=1, max_size=3))
def test_within_one_pixel_of_mapnik_on_other_shapes(polygons: list[Polygon]) -> None:
    polygons = [p for p in polygons if p.is_valid] or [box(10, 10, 20, 20)]
    expected = mapnik_cells(polygons, 1)
    boundaries = shapely.union_all([p.boundary for p in polygons])
    for painter in PAINTERS.values():
        got = ours(polygons, painter, 1)
        for y, (row_a, row_b) in enumerate(zip(got, expected, strict=True)):
            for x, (a, b) in enumerate(zip(row_a, row_b, strict=True)):
                if a != b:  # only where a shape's edge passes within a pixel of the sample
                    assert boundaries.distance(Point(x + 0.5, y + 0.5)) <= 1.0, (x, y, a, b)
