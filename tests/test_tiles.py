"""Tile grid and id bit fields: facts from ARCHITECTURE.md and hypothesis round trips."""

from __future__ import annotations

import doctest

import mercantile
import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderer import tiles
from renderer.tiles import Tile

LEVELS = st.sampled_from([0, 1, 2])
LONS = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
LATS = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
SEGMENT_INDICES = st.integers(min_value=0, max_value=tiles.MAX_SEGMENT_INDEX)


@st.composite
def any_tile(draw: st.DrawFn, levels: st.SearchStrategy[int] = LEVELS) -> Tile:
    level = draw(levels)
    return Tile(level, draw(st.integers(0, tiles.tile_count(level) - 1)))


def edge(level: int, axis: str) -> st.SearchStrategy[float]:
    """Cell edges of a level and their nearest floats: where rounding bites."""
    size = tiles.LEVEL_SIZES[level]
    origin, count = (-180.0, tiles.columns(level)) if axis == "lon" else (-90.0, tiles.rows(level))
    exact = st.integers(0, count).map(lambda i: origin + i * size)
    nudged = st.tuples(exact, st.sampled_from([-1e-12, -5e-15, 5e-15, 1e-12])).map(sum)
    return st.one_of(exact, nudged).filter(lambda v: origin <= v <= -origin)


def test_doctests() -> None:
    assert doctest.testmod(tiles).failed == 0


def test_grid_facts() -> None:
    assert dict(tiles.LEVEL_SIZES) == {0: 4.0, 1: 1.0, 2: 0.25}
    assert [(tiles.columns(lv), tiles.rows(lv)) for lv in (0, 1, 2)] == [
        (90, 45),
        (360, 180),
        (1440, 720),
    ]
    assert tiles.tile_count(0) - 1 == 4049
    assert tiles.tile(180.0, 90.0, 0) == Tile(0, 4049)
    assert tiles.tile(-180.0, -90.0, 2) == Tile(2, 0)
    assert tiles.path_suffix(Tile(0, 2140)) == "0/002/140"
    assert tiles.path_suffix(Tile(1, 7)) == "1/000/007"
    assert tiles.path_suffix(Tile(2, 1036799)) == "2/001/036/799"
    assert tiles.tile_id(Tile(0, 2140)) == 2140 << 3


def test_formula_matches_architecture() -> None:
    # row = floor((lat+90)/size), col = floor((lon+180)/size), index = row * (360/size) + col
    lon, lat = 13.4, 52.5
    for level, size in tiles.LEVEL_SIZES.items():
        row, col = int((lat + 90) // size), int((lon + 180) // size)
        assert tiles.tile(lon, lat, level).index == row * int(360 / size) + col


@given(LONS, LATS, LEVELS)
def test_point_in_its_tile(lon: float, lat: float, level: int) -> None:
    t = tiles.tile(lon, lat, level)
    assert 0 <= t.index < tiles.tile_count(level)
    west, south, east, north = tiles.bounds(t)
    assert west <= lon <= east and south <= lat <= north
    # half-open: only the last column and row hold their east / north edge
    assert lon < east or east == 180.0
    assert lat < north or north == 90.0


@given(st.data(), LEVELS)
def test_point_near_edges_in_its_tile(data: st.DataObject, level: int) -> None:
    lon, lat = data.draw(edge(level, "lon")), data.draw(edge(level, "lat"))
    west, south, east, north = tiles.bounds(tiles.tile(lon, lat, level))
    assert west <= lon <= east and south <= lat <= north
    assert (lon < east or east == 180.0) and (lat < north or north == 90.0)


@given(any_tile())
def test_tile_of_its_own_corner(t: Tile) -> None:
    west, south, east, north = tiles.bounds(t)
    assert tiles.tile(west, south, t.level) == t
    assert tiles.tile((west + east) / 2, (south + north) / 2, t.level) == t
    assert east - west == north - south == tiles.LEVEL_SIZES[t.level]


@given(any_tile(st.sampled_from([0, 1])))
def test_children_parent_round_trip(t: Tile) -> None:
    kids = tiles.children(t)
    assert len(kids) == len(set(kids)) == 16
    assert all(tiles.parent(k) == t for k in kids)
    west, south, east, north = tiles.bounds(t)
    boxes = [tiles.bounds(k) for k in kids]
    assert min(b[0] for b in boxes) == west and max(b[2] for b in boxes) == east
    assert min(b[1] for b in boxes) == south and max(b[3] for b in boxes) == north


@given(any_tile(st.sampled_from([1, 2])))
def test_parent_contains_child(t: Tile) -> None:
    p = tiles.parent(t)
    assert t in tiles.children(p)
    cw, cs, ce, cn = tiles.bounds(t)
    pw, ps, pe, pn = tiles.bounds(p)
    assert pw <= cw < ce <= pe and ps <= cs < cn <= pn


@given(any_tile())
def test_tile_id_round_trip(t: Tile) -> None:
    tid = tiles.tile_id(t)
    assert tid == (t.index << 3) | t.level
    assert tid < 1 << 25
    assert tiles.from_tile_id(tid) == t


@given(any_tile(), SEGMENT_INDICES)
def test_segment_id_round_trip(t: Tile, index: int) -> None:
    sid = tiles.segment_id(t, index)
    assert sid < 1 << 46
    assert sid & 0x1FFFFFF == tiles.tile_id(t)
    assert tiles.segment_tile(sid) == t
    assert tiles.segment_index(sid) == index
    assert tiles.normalize_next(str(sid)) == sid
    assert tiles.normalize_next(sid) == sid


@given(any_tile())
def test_path_suffix_round_trip(t: Tile) -> None:
    suffix = tiles.path_suffix(t)
    folders = suffix.split("/")
    assert folders[0] == str(t.level)
    assert all(len(f) == 3 for f in folders[1:])
    assert len(folders) == (4 if t.level == 2 else 3)
    assert tiles.parse_tile(suffix) == t
    assert tiles.parse_tile(f"{t.level}/{t.index}") == t
    assert tiles.tile_from_key(f"2026/47/{suffix}.spd.0.gz") == t
    assert tiles.tile_from_key(f"{suffix}.ref.gz") == t


@given(any_tile(), any_tile())
def test_bbox_of_two_tiles(a: Tile, b: Tile) -> None:
    level = a.level
    b = Tile(level, b.index % tiles.tile_count(level))
    (aw, as_, ae, an), (bw, bs, be, bn) = tiles.bounds(a), tiles.bounds(b)
    box = (min(aw, bw), min(as_, bs), max(ae, be), max(an, bn))
    found = list(tiles.tiles_in_bbox(box, level))
    rows = {t.index // tiles.columns(level) for t in (a, b)}
    cols = {t.index % tiles.columns(level) for t in (a, b)}
    assert len(found) == (max(rows) - min(rows) + 1) * (max(cols) - min(cols) + 1)
    assert a in found and b in found
    assert found == sorted(found)


def test_tiles_in_bbox_edges() -> None:
    assert [t.index for t in tiles.tiles_in_bbox((100.0, 2.0, 104.0, 6.0), 0)] == [2140]
    assert [t.index for t in tiles.tiles_in_bbox((101.0, 3.0, 101.0, 3.0), 0)] == [2140]
    # across the antimeridian: the last and the first column of row 0
    assert [t.index for t in tiles.tiles_in_bbox((179.0, -90.0, -179.0, -89.0), 0)] == [0, 89]
    assert len(list(tiles.tiles_in_bbox((-180.0, -90.0, 180.0, 90.0), 0))) == 4050


@pytest.mark.parametrize(
    "value", [None, "", "  ", "70368744177663", 70368744177663, "4398046511103", 4398046511103]
)
def test_no_next(value: object) -> None:
    assert tiles.normalize_next(value) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tiles.tile(0.0, 0.0, 3), "level must be 0, 1 or 2"),
        (lambda: tiles.tile(181.0, 0.0, 0), "longitude"),
        (lambda: tiles.tile(0.0, float("nan"), 0), "latitude"),
        (lambda: tiles.bounds(Tile(0, 4050)), "0..4049"),
        (lambda: tiles.children(Tile(2, 0)), "no children"),
        (lambda: tiles.parent(Tile(0, 0)), "no parent"),
        (lambda: tiles.from_tile_id(3), "level bits 3"),
        (lambda: tiles.from_tile_id(1 << 25), "tile id"),
        (lambda: tiles.segment_id(Tile(0, 0), 1 << 21), "segment index"),
        (lambda: tiles.segment_tile(-1), "segment id"),
        (lambda: tiles.normalize_next("12a"), "digits"),
        (lambda: tiles.normalize_next(1 << 46), "segment id"),
        (lambda: tiles.parse_tile("0/02/140"), "3 digits"),
        (lambda: tiles.parse_tile("2/002/140"), "3 folders"),
        (lambda: tiles.parse_tile("0"), "level/index"),
        (lambda: tiles.parse_tile("0/4050"), "0..4049"),
        (lambda: tiles.tile_from_key("2026/47/foo.spd.0.gz"), "no tile path"),
        (lambda: list(tiles.tiles_in_bbox((0.0, 5.0, 1.0, 4.0), 0)), "north of"),
    ],
)
def test_validation_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_mercator_helpers_delegate_to_mercantile() -> None:
    assert tiles.mercator_tile(13.4, 52.5, 12) == mercantile.tile(13.4, 52.5, 12)
    assert tiles.mercator_bounds(1, 2, 3) == mercantile.bounds(1, 2, 3)
    covering = list(tiles.mercator_tiles(Tile(1, tiles.tile(13.4, 52.5, 1).index), 8))
    assert mercantile.tile(13.4, 52.5, 8) in covering
    assert all(t.z == 8 for t in covering)
