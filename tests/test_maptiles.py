"""Map tiles: import, zoom levels, shared-border simplification, slicing through work items,
feature tiles with statistics merged last (against the real PostGIS)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import mercantile
import pytest
from shapely.geometry import shape

from renderer import db
from renderer.config import Settings
from renderer.db import Database
from renderer.errors import InputError
from renderer.maptiles import features, regions, slice, utfgrid, zooms
from renderer.maptiles.profile import PROFILE, RenderSummary
from renderer.runner import run_until_idle
from tests.maptiles_fixtures import connect, small_sample, world_sample

__all__ = ["small_sample", "world_sample"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RENDERER_POLL_SECONDS": "0.2"}
    return subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def _geojson(path: Path, features_: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features_}))
    return path


def _feature(geometry: dict[str, object], **props: object) -> dict[str, object]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def _square(x: float, y: float, s: float = 1.0) -> dict[str, object]:
    return {"type": "Polygon",
            "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


def test_import_repairs_or_rejects_with_a_reason(db: Database, tmp_path: Path) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    path = _geojson(tmp_path / "r.geojson", [
        _feature(_square(0, 0), uid="a", name="A"),
        _feature(bowtie, uid="b", name="Bowtie"),
        _feature({"type": "Point", "coordinates": [0, 0]}, uid="c"),
        _feature(_square(2, 0), name="no uid"),
        _feature(_square(3, 0), uid="a", name="again"),
        _feature(None, uid="d"),  # type: ignore[arg-type]
    ])
    with connect(db) as conn, conn.transaction():
        report = regions.import_file(conn, path, "Zone", uid_field="uid")
        rows = {r["uid"]: r for r in conn.execute(
            "SELECT uid, name, repaired, ST_IsValid(geom) AS valid, min_zoom FROM regions")}
        rejects = {(r["feature"], r["reason"]) for r in regions.rejects(conn)}
    assert (report.read, report.imported, report.repaired, report.rejected) == (6, 2, 1, 4)
    assert rows["a"]["name"] == "A" and not rows["a"]["repaired"]
    assert rows["b"]["repaired"] and rows["b"]["valid"]
    assert all(r["min_zoom"] is None for r in rows.values())
    assert rejects == {(2, "not a polygon (POINT)"), (3, "no uid"),
                       (4, "uid a repeated in the file (first kept)"), (5, "no geometry")}


def test_region_types_form_a_dag(db: Database, tmp_path: Path) -> None:
    path = _geojson(tmp_path / "r.geojson", [_feature(_square(0, 0), uid="1", up="1")])
    with connect(db) as conn, conn.transaction():
        regions.import_file(conn, path, "A", uid_field="uid", parent_fields={"B": "up"})
        with pytest.raises(InputError, match="cycle: A > B > A"):
            regions.import_file(conn, path, "B", uid_field="uid", parent_fields={"A": "up"})
    with pytest.raises(InputError, match="has no field 'nope'"):
        regions.read_features(path, uid_field="nope")
    assert utfgrid.chains({"C": [], "P": ["C"], "D": ["P"], "E": ["P"]}) == [
        ["C", "P", "D"], ["C", "P", "E"]]


def test_zoom_levels(db: Database, world_sample: object) -> None:
    with connect(db) as conn, conn.transaction():
        zooms.set_min_zooms(conn)
        rows = list(conn.execute(
            "SELECT type, parents[1] AS parent, min(min_zoom) AS lo, max(min_zoom) AS hi,"
            " avg(area_m2) AS area, avg(lat) AS lat FROM regions GROUP BY 1, 2"))
        late = conn.execute(
            "SELECT count(*) AS n FROM regions c JOIN regions p ON p.key = ANY(c.parents)"
            " WHERE c.min_zoom < p.min_zoom").fetchone()
    assert late is not None and late["n"] == 0  # never before a parent
    for r in rows:
        assert r["lo"] == r["hi"], r  # siblings together
    # The blocks' average area covers >= 400 px2 from their zoom on, not one zoom before.
    block = next(r for r in rows if r["type"] == "Block")

    def px2(z: int) -> float:
        scale = zooms.WORLD * math.cos(math.radians(block["lat"])) / (256 * 2**z)
        return float(block["area"]) / scale**2

    assert px2(block["lo"]) >= 400 > px2(block["lo"] - 1)


def _areas(conn: db.Connection, zoom: int, kind: str) -> tuple[float, float] | None:
    row = conn.execute(
        "SELECT sum(ST_Area(s.geom)) AS total, ST_Area(ST_Union(s.geom)) AS union_"
        " FROM region_shapes s JOIN regions r ON r.id = s.region_id"
        " WHERE s.zoom = %s AND r.type = %s", [zoom, kind]).fetchone()
    assert row is not None
    return None if row["total"] is None else (row["total"], row["union_"])


def test_neighbours_never_gap_or_overlap_after_simplification(
        db: Database, world_sample: object) -> None:
    checked: set[tuple[int, str]] = set()
    with connect(db) as conn, conn.transaction():
        slice.prepare(conn, 0, 12)
        for zoom in (3, 6, 9, 11, 12):
            zooms.build_shapes(conn, zoom)
            px2 = zooms.pixel_m(zoom) ** 2
            for kind in ("Continent", "Country", "Province", "District", "Ward", "Block"):
                found = _areas(conn, zoom, kind)
                if found is None:
                    continue
                total, union = found
                # no overlap: the union is the sum, to well under a pixel
                assert total - union < max(1.0, 1e-9 * total) * px2, (zoom, kind)
                checked.add((zoom, kind))
            land = _areas(conn, zoom, "Land")
            for kind in ("District", "Ward", "Block"):
                found = _areas(conn, zoom, kind)
                if land is None or found is None:
                    continue
                # no gap: the blocks, the wards and the districts tile their land exactly
                assert abs(land[0] - found[1]) < max(1.0, 1e-9 * land[0]) * px2, (zoom, kind)
                checked.add((zoom, "gap " + kind))
        # simplification really happened: fewer points at zoom 9 than at 12
        points = {r["zoom"]: r["n"] for r in conn.execute(
            "SELECT zoom, sum(ST_NPoints(geom)) AS n FROM region_shapes GROUP BY zoom")}
    assert points[9] < points[12]
    assert {(12, "Block"), (12, "gap Block"), (9, "Ward"), (3, "Country")} <= checked


def test_a_band_of_zooms_takes_its_deepest_zooms_borders(db: Database,
                                                         world_sample: object) -> None:
    assert zooms.zoom_bands(0, 14) == [(13, 14), (11, 12), (9, 10), (7, 8), (5, 6), (3, 4),
                                       (1, 2), (0, 0)]
    assert zooms.zoom_bands(3, 6, band=1) == [(6, 6), (5, 5), (4, 4), (3, 3)]
    with connect(db) as conn, conn.transaction():
        slice.prepare(conn, 0, 12)
        counts = zooms.build_band(conn, 11, 12)
        island = zooms.ZoomRules().island_px * zooms.pixel_m(11) ** 2
        rows = conn.execute(
            "SELECT r.min_zoom, s11.geom IS NULL AS missing,"
            " ST_Equals(s11.geom, s12.geom) AS same, ST_Covers(s12.geom, s11.geom) AS within,"
            " (SELECT count(*) FROM ST_Dump(s11.geom) d WHERE ST_Area(d.geom) < %s) AS small,"
            " ST_NumGeometries(s11.geom) AS parts"
            " FROM regions r JOIN region_types t USING (type)"
            " LEFT JOIN region_shapes s11 ON s11.region_id = r.id AND s11.zoom = 11"
            " LEFT JOIN region_shapes s12 ON s12.region_id = r.id AND s12.zoom = 12"
            " WHERE t.max_zoom IS NULL", [island]).fetchall()
        for kind in ("District", "Ward", "Block"):
            found, land = _areas(conn, 11, kind), _areas(conn, 11, "Land")
            assert found is not None and land is not None
            px2 = zooms.pixel_m(11) ** 2
            assert found[0] - found[1] < max(1.0, 1e-9 * found[0]) * px2  # no overlap
            assert abs(land[0] - found[1]) < max(1.0, 1e-9 * land[0]) * px2  # no gap
        # a type capped between the band's zooms (Natural Earth: zoom 6) is built on its own
        capped = zooms.build_band(conn, 6, 7)
        countries = conn.execute(
            "SELECT count(s.region_id) AS shaped, count(*) AS drawn FROM regions r"
            " LEFT JOIN region_shapes s ON s.region_id = r.id AND s.zoom = 6"
            " WHERE r.type = 'Country' AND r.min_zoom <= 6").fetchone()
    assert counts[11] == sum(1 for r in rows if r["min_zoom"] <= 11) > 0
    assert counts[12] == sum(1 for r in rows if r["min_zoom"] <= 12)
    for r in rows:
        if r["min_zoom"] <= 11:
            # the deeper zoom's shape, or that with parts dropped; its islands at zoom 11's
            assert not r["missing"] and r["within"]
            assert r["same"] or r["parts"] >= 1
            assert r["small"] == 0 or r["parts"] == 1
        else:
            assert r["missing"]
    assert countries is not None and countries["shaped"] == countries["drawn"] > 0
    assert capped[6] > capped[7]  # zoom 6 drew the countries, zoom 7 not


def _tile(conn: db.Connection, z: int, x: int, y: int) -> dict[str, object]:
    body = features.tile_json(conn, z, x, y)
    assert body is not None
    return json.loads(body)  # type: ignore[no-any-return]


LAND_8 = (8, *mercantile.tile(-39.75, 38.19, 8)[:2])


# A tile's pieces and feature text as rows (they are stored one row a tile, as arrays).
PIECES = ("(SELECT t.z, t.x, t.y, u.region_id, u.geom, u.geom IS NULL AS covers, u.feature"
          " FROM tile_regions t, unnest(t.region_ids, t.geoms, t.features)"
          " AS u(region_id, geom, feature)) p")


def _render(url: str, lo: int, hi: int) -> RenderSummary:
    """The profile's batch, as `renderer tiles render --wait` runs it."""
    done: RenderSummary = run_until_idle(url, PROFILE, {"min_zoom": lo, "max_zoom": hi},
                                         settings=Settings(database_url=url, poll_seconds=0.1),
                                         processes=None)
    assert done.items_failed == 0 and done.items_done > done.run.enqueued  # blocks too
    return done


def test_render_through_work_items_gives_rfc7946_tiles(db: Database, small_sample: object,
                                                      database_url: str) -> None:
    _render(database_url, 0, 11)
    with connect(db) as conn:
        counts = {r["kind"]: r["n"] for r in conn.execute(
            "SELECT kind, count(*) AS n FROM work_queue WHERE state = 'done' GROUP BY kind")}
        per_zoom = {r["z"]: r["n"] for r in conn.execute(
            "SELECT z, count(*) AS n FROM tiles GROUP BY z")}
        shaped = {r["zoom"] for r in conn.execute("SELECT DISTINCT zoom FROM region_shapes")}
        covers = conn.execute(
            "SELECT count(*) FILTER (WHERE covers) AS covers, count(*) AS n FROM " + PIECES
            + " WHERE z = 11").fetchone()
        # the generated land is at -40..-39.5 lon, 38..38.375 lat
        t = mercantile.tile(-39.75, 38.19, 11)
        tile = _tile(conn, t.z, t.x, t.y)
    assert counts["maptiles-shapes"] == 6  # one per band of two zooms
    assert set(shaped) == set(range(min(shaped), 12))  # every zoom of every band
    assert counts["maptiles-block"] >= len(per_zoom) >= 4  # a block per zoom with regions
    assert per_zoom[11] > per_zoom[10] > per_zoom[9] > 1
    assert covers is not None and 0 < covers["covers"] < covers["n"]
    feats = tile["features"]
    assert tile["type"] == "FeatureCollection" and feats
    for f in feats:
        assert set(f["properties"]) >= {"uid", "type", "name", "parents"}
        assert f["id"] == f"{f['properties']['type']}-{f['properties']['uid']}"
        geom = shape(f["geometry"])
        for poly in getattr(geom, "geoms", [geom]):
            assert poly.exterior.is_ccw  # RFC 7946: right-hand rule
            assert all(not ring.is_ccw for ring in poly.interiors)
    kinds = {f["properties"]["type"] for f in feats}
    assert kinds == {"Land", "Province", "District", "Ward", "Block"}
    grids = tile["utfgrids"]
    assert grids and all(len(g["grid"]) in (1, 64) for g in grids)
    names = {h for g in grids for h in g["hierarchies"]}
    assert "Land > Province > District > Block" in names
    assert "Land > Province > Ward" in names
    keys = {f["id"] for f in feats}
    for g in grids:
        assert set(g["keys"]) - {""} <= keys


def test_deleting_regions_deletes_their_pieces_and_feature_text(
        db: Database, small_sample: object, database_url: str) -> None:
    # no foreign keys on the per-tile tables (their row checks were a block's dearest
    # write): a statement trigger does what ON DELETE CASCADE did
    _render(database_url, 0, 8)
    count = ("SELECT (SELECT count(*) FROM " + PIECES + " JOIN regions r ON r.id = p.region_id"
             "         WHERE r.type = 'Ward') AS wards,"
             " (SELECT count(*) FROM " + PIECES + ") AS pieces,"
             " (SELECT count(*) FROM " + PIECES + " WHERE feature IS NOT NULL) AS features")
    with connect(db) as conn, conn.transaction():
        before = conn.execute(count).fetchone()
        order = conn.execute(
            "SELECT z, x, y, array_agg(r.key ORDER BY u.n) FILTER (WHERE r.type <> 'Ward')"
            " AS keys FROM tile_regions t, unnest(t.region_ids) WITH ORDINALITY u(id, n)"
            " JOIN regions r USING (id) GROUP BY z, x, y ORDER BY z, x, y").fetchall()
        conn.execute("CREATE TEMP TABLE ward_ids AS SELECT id FROM regions WHERE type = 'Ward'")
        conn.execute("DELETE FROM region_types WHERE type = 'Ward'")  # cascades to regions
        left = conn.execute(
            "SELECT count(*) AS n FROM " + PIECES + " WHERE region_id IN (SELECT id FROM ward_ids)"
            ).fetchone()
        after = conn.execute(count).fetchone()
        kept = conn.execute(
            "SELECT z, x, y, array_agg(r.key ORDER BY u.n) AS keys FROM tile_regions t,"
            " unnest(t.region_ids) WITH ORDINALITY u(id, n) JOIN regions r USING (id)"
            " GROUP BY z, x, y ORDER BY z, x, y").fetchall()
        tile = _tile(conn, *LAND_8)
    assert before is not None and after is not None and left is not None
    assert before["wards"] > 0 and left["n"] == 0
    assert after["pieces"] == before["pieces"] - before["wards"]
    assert after["features"] == after["pieces"]
    # the others stay in their order, their text with them
    assert kept == [r for r in order if r["keys"]]
    assert tile["features"] and all(f["properties"]["type"] != "Ward" for f in tile["features"])


def test_statistics_republish_without_rerendering_geometry(
        db: Database, small_sample: object, database_url: str, tmp_path: Path) -> None:
    _render(database_url, 0, 8)
    state = ("SELECT (SELECT sum(xmin::text::bigint) FROM tile_regions)"
             " + (SELECT sum(xmin::text::bigint) FROM tiles) AS v,"
             " (SELECT max(rendered_at) FROM tiles) AS at")
    with connect(db) as conn:
        before = conn.execute(state).fetchone()
        bare = _tile(conn, *LAND_8)
    assert all("population" not in f["properties"] for f in bare["features"])
    csv = tmp_path / "stats.csv"
    csv.write_text("type,uid,population,note\nLand,1,1234,\"big, wet\"\nDistrict,D0000,7,\n"
                   "Nope\n")
    with connect(db) as conn, conn.transaction():
        report = features.import_stats(conn, csv)
    assert report.imported == 2 and report.rejected == [(4, "1 fields, expected 4")]
    with connect(db) as conn:
        after = conn.execute(state).fetchone()
        tile = _tile(conn, *LAND_8)
    assert after == before  # no geometry, feature text or grid written again
    props = {f["id"]: f["properties"] for f in tile["features"]}
    assert props["Land-1"]["population"] == 1234 and props["Land-1"]["note"] == "big, wet"
    assert props["District-D0000"] == {**props["District-D0000"], "population": 7}
    assert "note" not in props["District-D0000"]
    with connect(db) as conn, conn.transaction():
        csv.write_text("type,uid,population\nLand,1,99\n")
        features.import_stats(conn, csv)
    with connect(db) as conn:
        assert {f["id"]: f["properties"] for f in _tile(conn, *LAND_8)["features"]}[
            "Land-1"]["population"] == 99


def test_cli_import_render_stats(renderer_env: dict[str, str], tmp_path: Path) -> None:
    path = _geojson(tmp_path / "z.geojson", [
        _feature(_square(0, 0, 10), id="1", name="West", top="t"),
        _feature(_square(10, 0, 10), id="2", name="East", top="t")])
    top = _geojson(tmp_path / "t.geojson", [_feature(
        {"type": "Polygon", "coordinates": [[[0, 0], [20, 0], [20, 10], [0, 10], [0, 0]]]},
        id="t", name="Top")])
    result = cli("tiles", "import", str(top), "--type", "Top", "--uid-field", "id")
    assert result.returncode == 0, result.stderr
    result = cli("tiles", "import", str(path), "--type", "Half", "--uid-field", "id",
                 "--parent-field", "Top=top")
    assert result.returncode == 0, result.stderr
    assert "2 Half regions imported (0 repaired), 0 rejected" in result.stdout
    bad = cli("tiles", "import", str(path), "--type", "Half", "--parent-field", "Top")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    result = cli("tiles", "render", "--max-zoom", "4", "--wait")
    assert result.returncode == 0, result.stderr
    assert "0 failed" in result.stdout
    status = cli("tiles", "status")
    assert "Half" in status.stdout and status.returncode == 0
    for command in ("import", "render", "stats", "rejects", "status", "sample", "export"):
        help_ = cli("tiles", command, "--help")
        assert "Example:" in help_.stdout, command


def test_blocks_are_those_a_shape_touches_not_all_its_box_spans(
        db: Database, tmp_path: Path) -> None:
    # A triangle over the four blocks of zoom 5 (the tiles of zoom 1) whose box spans all
    # four but which keeps clear of the south-east one: that block has nothing to cut, and
    # is not listed (the boxes of its ST_Subdivide parts listed it).
    triangle = {"type": "Polygon",
                "coordinates": [[[-40, 40], [-40, -30], [30, 40], [-40, 40]]]}
    path = _geojson(tmp_path / "t.geojson", [_feature(triangle, uid="t")])
    with connect(db) as conn, conn.transaction():
        regions.import_file(conn, path, "Zone", uid_field="uid")
        slice.prepare(conn, 0, 5)
        zooms.build_shapes(conn, 5)
        found = slice.blocks(conn, 5)
        tiles = {(b.bx, b.by): slice.render_block(conn, b)
                 for b in (slice.Block(5, bx, by) for bx, by in [(0, 0), (1, 0), (0, 1), (1, 1)])}
    assert found == [(0, 0), (1, 0), (0, 1)]
    assert tiles[(1, 1)] == 0 and all(tiles[b] > 0 for b in found)


def test_a_statistics_row_of_empty_cells_leaves_the_tile_valid_json(
        db: Database, small_sample: object, database_url: str, tmp_path: Path) -> None:
    # Its members are "": the merge appended "," and the closing braces ("...,}}"), so the
    # served tile was not JSON.
    _render(database_url, 0, 8)
    csv = tmp_path / "stats.csv"
    csv.write_text("type,uid,population\nLand,1,\nDistrict,D0000,7\n")
    with connect(db) as conn, conn.transaction():
        assert features.import_stats(conn, csv).imported == 2
    with connect(db) as conn:
        tile = _tile(conn, *LAND_8)
    props = {f["id"]: f["properties"] for f in tile["features"]}
    assert "population" not in props["Land-1"] and props["District-D0000"]["population"] == 7


def test_a_block_retried_after_a_crash_neither_loses_nor_duplicates(
        db: Database, small_sample: object) -> None:
    snapshot = ("SELECT z, x, y, region_ids, geoms::text[] AS g, features FROM tile_regions"
                " ORDER BY z, x, y")
    with connect(db) as conn:
        with conn.transaction():
            slice.prepare(conn, 10, 10)
            zooms.build_shapes(conn, 10)
            block = slice.Block(10, *slice.blocks(conn, 10)[0])
            assert slice.render_block(conn, block) > 1
        first = conn.execute(snapshot).fetchall()
        with pytest.raises(RuntimeError), conn.transaction():  # a crash after the cut
            slice.cut_block(conn, block, slice.RenderOptions())
            raise RuntimeError("worker died")
        assert conn.execute(snapshot).fetchall() == first
        with conn.transaction():  # the retry
            slice.render_block(conn, block)
        again = conn.execute(snapshot).fetchall()
        tiles = conn.execute("SELECT count(*) AS n FROM tiles").fetchone()
    assert again == first and tiles is not None and tiles["n"] == len(first)


# Plans the planner may choose for the same statements: parallel workers (the leader and a
# worker each read part of a table, in an order that depends on timing), none, and serial
# plans with sorts where there were hashes (a DISTINCT's or a join's rows in another order).
PLANS = {
    "parallel": {"parallel_setup_cost": "0", "parallel_tuple_cost": "0",
                 "min_parallel_table_scan_size": "0", "min_parallel_index_scan_size": "0",
                 "max_parallel_workers_per_gather": "2"},
    "serial": {"max_parallel_workers_per_gather": "0"},
    "sorted": {"max_parallel_workers_per_gather": "0", "enable_hashagg": "off",
               "enable_hashjoin": "off"},
}
PRODUCTS = {
    "arcs": "SELECT types, ST_AsEWKB(geom) AS g FROM region_arcs ORDER BY id",  # in order
    "shapes": "SELECT zoom, region_id, ST_AsEWKB(geom) AS g FROM region_shapes"
              " ORDER BY zoom, region_id",
    "tiles": "SELECT t.z, t.x, t.y, t.utfgrids, r.region_ids, r.features,"
             " r.geoms::text[] AS g FROM tiles t LEFT JOIN tile_regions r USING (z, x, y)"
             " ORDER BY t.z, t.x, t.y",
}


def test_shapes_and_tiles_do_not_depend_on_the_query_plan(
        db: Database, world_sample: object) -> None:
    # The unions of the arcs and of the faces took their input in the order the plan gave
    # it, so a rerun with another plan gave shapes with another vertex order: other bytes.
    products: dict[str, dict[str, list[object]]] = {}
    with connect(db) as conn:
        for name, settings in PLANS.items():
            with conn.transaction():
                for key, value in settings.items():
                    conn.execute("SELECT set_config(%s, %s, true)", [key, value])
                slice.prepare(conn, 0, 7)
                for first, top in zooms.zoom_bands(0, 7):
                    zooms.build_band(conn, first, top)
                    for z in range(first, top + 1):
                        for bx, by in slice.blocks(conn, z):
                            slice.render_block(conn, slice.Block(z, bx, by))
                products[name] = {k: [tuple(r.values()) for r in conn.execute(q)]
                                  for k, q in PRODUCTS.items()}
    first_plan = products["parallel"]
    assert first_plan["shapes"] and first_plan["tiles"]
    for name in ("serial", "sorted"):
        for key in PRODUCTS:
            assert products[name][key] == first_plan[key], (name, key)


def test_a_border_not_shared_vertex_for_vertex_is_still_noded(
        db: Database, tmp_path: Path) -> None:
    # West has a vertex half way up the border it shares with East, which East lacks: the
    # segments overlap, so the arcs are noded by the union (merged directly, the border
    # would be two overlapping arcs, West's and East's). Three arcs: the border and each
    # region's outer part, between the two junctions.
    west = {"type": "Polygon",
            "coordinates": [[[0, 0], [1, 0], [1, 0.5], [1, 1], [0, 1], [0, 0]]]}
    east = {"type": "Polygon", "coordinates": [[[1, 0], [2, 0], [2, 1], [1, 1], [1, 0]]]}
    path = _geojson(tmp_path / "z.geojson",
                    [_feature(west, uid="w"), _feature(east, uid="e")])
    with connect(db) as conn, conn.transaction():
        regions.import_file(conn, path, "Zone", uid_field="uid")
        assert slice.prepare(conn, 0, 8) == 3
        zooms.build_shapes(conn, 8)
        row = conn.execute("SELECT sum(ST_Area(geom)) AS total, ST_Area(ST_Union(geom)) AS u,"
                           " count(*) AS n FROM region_shapes WHERE zoom = 8").fetchone()
    assert row is not None and row["n"] == 2
    assert abs(row["total"] - row["u"]) < zooms.pixel_m(8) ** 2  # no overlap


def test_arcs_that_simplification_makes_coincide_are_noded(
        db: Database, tmp_path: Path) -> None:
    # A lens 0.01 degrees wide between West and East: at zoom 3 (half a pixel is about
    # 0.3 degrees) its two sides simplify to the same segment, so the arcs are not simple
    # and the union merges them; West and East still meet without gap or overlap.
    west = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0.995, 0.5], [1, 1],
                                                 [0, 1], [0, 0]]]}
    lens = {"type": "Polygon", "coordinates": [[[1, 0], [1.005, 0.5], [1, 1],
                                                 [0.995, 0.5], [1, 0]]]}
    east = {"type": "Polygon", "coordinates": [[[1, 0], [2, 0], [2, 1], [1, 1],
                                                 [1.005, 0.5], [1, 0]]]}
    path = _geojson(tmp_path / "z.geojson", [_feature(west, uid="w"), _feature(lens, uid="l"),
                                              _feature(east, uid="e")])
    with connect(db) as conn, conn.transaction():
        regions.import_file(conn, path, "Zone", uid_field="uid")
        slice.prepare(conn, 0, 3)
        conn.execute("UPDATE regions SET min_zoom = 0")
        zooms.build_shapes(conn, 3)
        row = conn.execute(
            "SELECT sum(ST_Area(s.geom)) AS total, ST_Area(ST_Union(s.geom)) AS u,"
            " ST_Area(ST_Union(r.merc)) AS land FROM region_shapes s"
            " JOIN regions r ON r.id = s.region_id WHERE zoom = 3").fetchone()
    assert row is not None and row["total"] is not None
    px2 = zooms.pixel_m(3) ** 2
    assert abs(row["total"] - row["u"]) < px2  # no overlap
    assert abs(row["u"] - row["land"]) < 4 * px2  # no gap (to a few pixels)
