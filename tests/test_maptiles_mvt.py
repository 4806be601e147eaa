"""The MVT encoder: the C one and its Python twin byte for byte, both byte for byte against
PostGIS's ST_AsMVT on every rendered tile of the sample, and their output read back by an
independent decoder (protobuf's own, from the vector tile spec's .proto compiled here)."""

from __future__ import annotations

import importlib
import itertools
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import shapely
from grpc_tools import protoc
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from renderer.db import Database, query
from renderer.maptiles import export, features, mvt
from tests.maptiles_fixtures import connect, small_sample, world_sample
from tests.test_maptiles import _render

__all__ = ["small_sample", "world_sample"]

ENCODERS = mvt.implementations()
BOUNDS = mvt.bounds(12, 1000, 1500)
SIZE = BOUNDS[2] - BOUNDS[0]

# The vector tile specification 2.1's message definitions.
PROTO = """
syntax = "proto2";
package vector_tile;
message Tile {
  enum GeomType { UNKNOWN = 0; POINT = 1; LINESTRING = 2; POLYGON = 3; }
  message Value {
    optional string string_value = 1;
    optional float float_value = 2;
    optional double double_value = 3;
    optional int64 int_value = 4;
    optional uint64 uint_value = 5;
    optional sint64 sint_value = 6;
    optional bool bool_value = 7;
    extensions 8 to max;
  }
  message Feature {
    optional uint64 id = 1 [default = 0];
    repeated uint32 tags = 2 [packed = true];
    optional GeomType type = 3 [default = UNKNOWN];
    repeated uint32 geometry = 4 [packed = true];
  }
  message Layer {
    required uint32 version = 15 [default = 1];
    required string name = 1;
    repeated Feature features = 2;
    repeated string keys = 3;
    repeated Value values = 4;
    optional uint32 extent = 5 [default = 4096];
    extensions 16 to max;
  }
  repeated Layer layers = 3;
  extensions 16 to 8191;
}
"""


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    out = tmp_path_factory.mktemp("proto")
    (out / "vector_tile.proto").write_text(PROTO)
    assert protoc.main(["protoc", f"-I{out}", f"--python_out={out}",
                        str(out / "vector_tile.proto")]) == 0
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("vector_tile_pb2")
    finally:
        sys.path.remove(str(out))


def read(pb: ModuleType, data: bytes) -> dict[str, Any]:
    """A tile as the independent decoder reads it: per layer its name, extent, version and
    features (properties, and rings as integer points in tile units)."""
    tile = pb.Tile.FromString(data)
    layers = {}
    for layer in tile.layers:
        values = [getattr(v, _kind(v)) for v in layer.values]
        feats = []
        for f in layer.features:
            props = {layer.keys[f.tags[i]]: values[f.tags[i + 1]]
                     for i in range(0, len(f.tags), 2)}
            feats.append({"props": props, "type": f.type, "rings": _rings(list(f.geometry)),
                          "has_id": f.HasField("id")})
        layers[layer.name] = {"extent": layer.extent, "version": layer.version,
                              "features": feats}
    return layers


def _kind(v: Any) -> str:
    fields = [d.name for d, _ in v.ListFields()]
    assert len(fields) == 1
    return fields[0]


def _rings(cmds: list[int]) -> list[list[tuple[int, int]]]:
    """The geometry commands decoded (MoveTo, LineTo, ClosePath; zigzag deltas)."""
    rings: list[list[tuple[int, int]]] = []
    x = y = i = 0
    while i < len(cmds):
        op, count = cmds[i] & 7, cmds[i] >> 3
        i += 1
        if op == 7:
            assert count == 1
            rings[-1].append(rings[-1][0])
            continue
        assert op in (1, 2)
        if op == 1:
            assert count == 1
            rings.append([])
        for _ in range(count):
            dx, dy = cmds[i], cmds[i + 1]
            x += (dx >> 1) ^ -(dx & 1)
            y += (dy >> 1) ^ -(dy & 1)
            rings[-1].append((x, y))
            i += 2
    return rings


def _shape(rings: list[list[tuple[int, int]]]) -> shapely.Geometry:
    """Decoded rings as polygons: a ring of positive area (tile units, y down) starts one,
    a negative one is its hole."""
    polygons: list[list[list[tuple[int, int]]]] = []
    for ring in rings:
        if _area(ring) > 0:
            polygons.append([ring])
        else:
            polygons[-1].append(ring)
    return MultiPolygon([Polygon(p[0], p[1:]) for p in polygons])


def _area(ring: list[tuple[int, int]]) -> int:
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(ring))


def test_both_implementations_are_here() -> None:
    assert set(ENCODERS) == {"c", "python"}, "build the extension: make test builds it"


# -- the twin and the C encoder ----------------------------------------------------------

unit = st.floats(min_value=-0.2, max_value=1.2, allow_nan=False)
value = st.one_of(st.none(), st.text(max_size=6), st.booleans(),
                  st.integers(min_value=-(2**63), max_value=2**63 - 1),
                  st.floats(allow_nan=False), st.sampled_from([0, 1, -1, 0.5, "a", True]))


def _metres(u: float, v: float) -> tuple[float, float]:
    return BOUNDS[0] + u * SIZE, BOUNDS[3] - v * SIZE


@st.composite
def geometries(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["ring", "box", "holed", "multi", "tiny", "spiky"]))
    if kind == "box":
        u, v = draw(unit), draw(unit)
        w = draw(st.floats(min_value=1e-6, max_value=1.0))
        return shapely.to_wkb(box(*_metres(u, v + w), *_metres(u + w, v)))
    if kind == "tiny":  # under a tile unit: nothing left
        x, y = _metres(draw(unit), draw(unit))
        return shapely.to_wkb(box(x, y, x + SIZE / 20000, y + SIZE / 20000))
    pts = [_metres(draw(unit), draw(unit)) for _ in range(draw(st.integers(3, 14)))]
    if kind == "spiky":  # points within half a unit of each other and of the line
        pts = [p for q in pts for p in (q, (q[0] + SIZE / 9000, q[1]))]
    ring = Polygon(pts)
    if kind == "holed":
        a, b = _metres(0.1, 0.9), _metres(0.9, 0.1)
        c, d = _metres(0.3, 0.6), _metres(0.6, 0.3)
        return shapely.to_wkb(Polygon(box(*a, *b).exterior.coords, [box(*c, *d).exterior.coords]))
    if kind == "multi":
        return shapely.to_wkb(MultiPolygon([ring, box(*_metres(0.5, 0.9), *_metres(0.7, 0.6))]))
    return shapely.to_wkb(ring)


feature = st.tuples(geometries(), st.lists(value, min_size=2, max_size=2),
                    st.lists(st.tuples(st.sampled_from(["a", "bb", "key", "é"]), value),
                             max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(feature, max_size=6), st.booleans(), st.sampled_from([256, 4096]))
def test_c_equals_twin(items: list[Any], big_endian: bool, extent: int) -> None:
    feats = []
    for wkb, vals, extra in items:
        if big_endian:
            wkb = shapely.to_wkb(shapely.from_wkb(wkb), byte_order=0)
        feats.append((wkb, tuple(vals), tuple(extra)))
    got = {name: enc("t", BOUNDS, ("p", "q"), feats, extent) for name, enc in ENCODERS.items()}
    assert got["c"] == got["python"]


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_bad_input_is_refused(name: str) -> None:
    enc = ENCODERS[name]
    square = shapely.to_wkb(box(*_metres(0.1, 0.9), *_metres(0.9, 0.1)))
    with pytest.raises(ValueError, match="truncated"):
        enc("t", BOUNDS, (), [(square[:-3], (), ())])
    with pytest.raises(ValueError, match="polygon"):
        enc("t", BOUNDS, (), [(shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)])), (), ())])
    with pytest.raises(ValueError, match="one value per column"):
        enc("t", BOUNDS, ("a",), [(square, (), ())])
    with pytest.raises(TypeError):
        enc("t", BOUNDS, ("a",), [(square, ([1],), ())])
    with pytest.raises(OverflowError):
        enc("t", BOUNDS, ("a",), [(square, (2**64,), ())])
    with pytest.raises(ValueError, match="bounds"):
        enc("t", (0.0, 0.0, 0.0, 1.0), (), [(square, (), ())])


# -- read back by the independent decoder ------------------------------------------------

@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_read_back(pb: ModuleType, name: str) -> None:
    # a square with a hole, drawn clockwise on the map (y up): the exterior must come out
    # with a positive area in tile units (y down), the hole negative
    outer = [_metres(u, v) for u, v in ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75),
                                        (0.25, 0.25))]
    hole = [_metres(u, v) for u, v in ((0.4, 0.4), (0.4, 0.6), (0.6, 0.6), (0.6, 0.4),
                                       (0.4, 0.4))]
    wkb = shapely.to_wkb(Polygon(outer, [hole]))
    data = ENCODERS[name]("regions", BOUNDS, ("key", "name"), [
        (wkb, ("Land-1", None), (("pop", 5), ("neg", -3), ("rate", 0.5), ("ok", True),
                                 ("none", None))),
        (wkb, ("Land-2", "B"), (("pop", 5),))], 4096)
    layers = read(pb, data)
    assert set(layers) == {"regions"}
    layer = layers["regions"]
    assert (layer["extent"], layer["version"]) == (4096, 2)
    first, second = layer["features"]
    assert first["props"] == {"key": "Land-1", "pop": 5, "neg": -3, "rate": 0.5, "ok": True}
    assert second["props"] == {"key": "Land-2", "name": "B", "pop": 5}
    assert first["type"] == 3 and not first["has_id"]
    ext, inner = first["rings"]
    assert sorted(set(ext)) == [(1024, 1024), (1024, 3072), (3072, 1024), (3072, 3072)]
    assert sorted(set(inner)) == [(1638, 1638), (1638, 2458), (2458, 1638), (2458, 2458)]
    assert _area(ext) > 0 > _area(inner)
    assert second["rings"] == first["rings"]
    assert ENCODERS[name]("regions", BOUNDS, (), []) == b""


# -- against ST_AsMVT ---------------------------------------------------------------------

STATS = ("type,uid,population,rate,label,flag,neg,big,blank\n"
         "Land,1,5,0.25,north,true,-7,12345678901,\n"
         "Province,P0000,1000000,1.0,,false,-1,3.000000000000001,x\n")


def _reference(conn: Any, keys: list[tuple[int, int, int]]) -> dict[tuple[int, int, int], bytes]:
    """ST_AsMVT's tiles (the export's statement before this encoder)."""
    theirs = {}
    for i in range(0, len(keys), 200):
        chunk = keys[i:i + 200]
        for r in conn.execute(query("maptiles.export_mvt_sql"), {
                "zs": [k[0] for k in chunk], "xs": [k[1] for k in chunk],
                "ys": [k[2] for k in chunk], "margin": 4 / 256}):
            theirs[(r["z"], r["x"], r["y"])] = bytes(r["mvt"])
    return theirs


def _same_to_readers(pb: ModuleType, ours: dict[Any, bytes], theirs: dict[Any, bytes]
                     ) -> tuple[int, int]:
    """Every tile read alike: the same layer, extent, version, keys and values tables, the
    same features in the same order with the same tags, and polygons that differ from
    PostGIS's by no more than a band of half a tile unit (1/32 px) along their outline.
    Returns the features compared and how many of them have the same polygons (equal after
    normalizing: the same vertices, holes and parts).

    The bytes differ: PostGIS 3.3 rebuilds every polygon through wagyu (ST_AsMVTGeom's
    validation, with or without clipping), whose rings start at another vertex, where this
    encoder keeps the cut's. And a few polygons keep vertices that lie within half a tile
    unit of their neighbours' line, which this encoder drops as ST_Simplify does at that
    tolerance (ST_AsMVTGeom's code simplifies at half a unit; PostGIS 3.3.2 keeps some), or
    a spike one unit wide that wagyu removes (one feature of the world sample's 3,090)."""
    assert ours.keys() == theirs.keys()
    n = exact = 0
    for k in ours:
        mine, ref = pb.Tile.FromString(ours[k]), pb.Tile.FromString(theirs[k])
        assert len(mine.layers) == len(ref.layers) == 1
        a, b = mine.layers[0], ref.layers[0]
        assert (a.name, a.extent, a.version) == (b.name, b.extent, b.version) == (
            "regions", 4096, 2)
        assert list(a.keys) == list(b.keys) and list(a.values) == list(b.values)
        assert len(a.features) == len(b.features)
        for f, g in zip(a.features, b.features, strict=True):
            assert list(f.tags) == list(g.tags) and f.type == g.type == 3
            assert not f.HasField("id") and not g.HasField("id")
            one, two = _shape(_rings(list(f.geometry))), _shape(_rings(list(g.geometry)))
            exact += shapely.equals_exact(shapely.normalize(one), shapely.normalize(two), 0)
            # what differs lies along the outline: within half a tile unit of it, on average
            assert one.symmetric_difference(two).area <= 0.5 * two.length, k
            n += 1
    return n, exact
    return n


def _encoded(conn: Any) -> dict[tuple[int, int, int], bytes]:
    return {(t["z"], t["x"], t["y"]): t["mvt"] for t in export._tiles(conn, 0, 24, 4.0, False)}


def test_read_as_st_asmvt_on_every_tile(db: Database, small_sample: object,
                                        database_url: str, tmp_path: Path,
                                        pb: ModuleType) -> None:
    _render(database_url, 0, 13)
    csv = tmp_path / "s.csv"
    csv.write_text(STATS)
    with connect(db) as conn:
        with conn.transaction():
            features.import_stats(conn, csv)
        keys = [(r["z"], r["x"], r["y"]) for r in conn.execute("SELECT z, x, y FROM tiles")]
        ours = _encoded(conn)
        theirs = _reference(conn, keys)
    assert len(ours) == len(keys) > 150
    n, exact = _same_to_readers(pb, ours, theirs)
    assert n > 2000 and exact >= 0.98 * n
    # the statistics as PostGIS typed them, read back independently
    tagged = [f["props"] for data in ours.values()
              for f in read(pb, data)["regions"]["features"]
              if f["props"]["key"] in ("Land-1", "Province-P0000")]
    land = next(p for p in tagged if p["key"] == "Land-1")
    assert {k: land[k] for k in ("population", "rate", "flag", "neg", "big", "label")} == {
        "population": 5, "rate": 0.25, "flag": "true", "neg": -7, "big": 12345678901,
        "label": "north"}
    province = next(p for p in tagged if p["key"] == "Province-P0000")
    # 1.0 and 3.000000000000001 are integers within ST_AsMVT's 1e-12
    assert {k: province[k] for k in ("population", "rate", "big", "blank")} == {
        "population": 1000000, "rate": 1, "big": 3, "blank": "x"}


def test_stats_members_follow_jsonb() -> None:
    got = mvt.stats_members('"zz":1,"a":"x","bb":2.5,"a":3,"n":null,"o":{"k":1},'
                            '"t":true,"e":1e3,"f":-2.0')
    assert got == (("a", 3), ("e", 1000), ("f", -2), ("n", None), ("o", None), ("t", True),
                   ("bb", 2.5), ("zz", 1))
    assert mvt.stats_members("") == () and mvt.stats_members(None) == ()
    assert struct.pack("<d", mvt.stats_members('"v":0.1')[0][1]) == struct.pack("<d", 0.1)


def test_read_as_st_asmvt_on_real_coasts(db: Database, world_sample: object, database_url: str,
                                         pb: ModuleType) -> None:
    # Natural Earth's countries: islands, holes, coasts cut by every tile edge
    _render(database_url, 0, 5)
    with connect(db) as conn:
        keys = [(r["z"], r["x"], r["y"]) for r in conn.execute("SELECT z, x, y FROM tiles")]
        ours = _encoded(conn)
        theirs = _reference(conn, keys)
    assert len(ours) == len(keys)
    n, exact = _same_to_readers(pb, ours, theirs)
    assert n > 300 and exact >= 0.9 * n
