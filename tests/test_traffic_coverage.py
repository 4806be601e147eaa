"""The coverage GeoJSON: one valid polygon per tile with reference data, at every level."""

from __future__ import annotations

import json
from pathlib import Path

import geojson
import pytest
from click.testing import CliRunner
from shapely.geometry import shape

from renderer import tiles
from renderer.cli import main
from renderer.db import Database
from renderer.storage import Store, open_store
from renderer.traffic import coverage
from tests.factories import add_speeds
from tests.test_traffic_reftile import WEEK, build
from tests.test_traffic_speedtile import CHILD, FIRST, TILE, seg


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(str(tmp_path / "store"))


def _references(db: Database) -> None:
    with db.connect() as conn:
        add_speeds(conn, FIRST, {seg(1): {0: 30}, seg(2): {1: 40}, seg(7, CHILD): {3: 60}})
        add_speeds(conn, FIRST + WEEK, {seg(1): {0: 35}})
        add_speeds(conn, FIRST + WEEK, {seg(1): {0: 20}}, mode="BUS")
        conn.commit()
    build(db)
    build(db, mode="BUS")


def _document(db: Database) -> dict:
    with db.connect() as conn:
        text, features = coverage.geojson(conn)
    document = json.loads(text)
    assert len(document["features"]) == features
    return document


def test_one_valid_polygon_per_tile_at_every_level(db: Database) -> None:
    _references(db)
    document = _document(db)
    parsed = geojson.loads(json.dumps(document))
    assert parsed.is_valid, parsed.errors()
    assert document["type"] == "FeatureCollection"
    by_tile = {(f["properties"]["level"], f["properties"]["tileid"]): f
               for f in document["features"]}
    assert set(by_tile) == {(0, TILE.index), (1, CHILD.index)}
    for (level, index), feature in by_tile.items():
        polygon = shape(feature["geometry"])
        assert polygon.is_valid and polygon.exterior.is_ccw  # RFC 7946: counter-clockwise
        assert polygon.bounds == tiles.bounds(tiles.Tile(level, index))
    props = by_tile[(0, TILE.index)]["properties"]
    assert props["rangeStart"] == FIRST * 3600 and props["rangeEnd"] == (FIRST + 2 * WEEK) * 3600
    assert props["rangeStartDate"] == "2016-10-31 00:00:00"
    assert props["rangeEndDate"] == "2016-11-14 00:00:00"
    assert props["modes"] == ["AUTO", "BUS"]
    assert props["segments"] == 3  # two AUTO segments and one BUS segment
    assert props["observations"] == 3 * 4
    assert by_tile[(1, CHILD.index)]["properties"]["modes"] == ["AUTO"]


def test_no_reference_data_is_an_empty_collection(db: Database) -> None:
    document = _document(db)
    assert document == {"type": "FeatureCollection", "features": []}
    assert geojson.loads(json.dumps(document)).is_valid


def test_refresh_writes_only_when_the_document_changed(db: Database, store: Store) -> None:
    _references(db)
    with db.connect() as conn:
        first = coverage.refresh(conn, store)
        conn.commit()
    assert first.written and first.features == 2
    assert json.loads(store.get("coverage.geojson"))["features"]
    with db.connect() as conn:
        again = coverage.refresh(conn, store)
        conn.commit()
    assert not again.written and again.etag == first.etag
    with db.connect() as conn:  # a new tile gets reference data
        add_speeds(conn, FIRST, {seg(1, tiles.Tile(0, 2141)): {0: 50}})
        conn.commit()
    build(db, tile=tiles.Tile(0, 2141))
    with db.connect() as conn:
        third = coverage.refresh(conn, store)
        conn.commit()
    assert third.written and third.features == 3
    store.delete("coverage.geojson")  # someone removed it: the next refresh restores it
    with db.connect() as conn:
        assert coverage.refresh(conn, store).written


def test_psql_can_build_it(db: Database) -> None:
    _references(db)
    rows = db.execute("traffic_coverage.geojson", {"levels": None, "opentraffic_style": False})
    assert rows[0]["features"] == 2
    with db.connect() as conn:
        direct = conn.execute("SELECT renderer.traffic_coverage_geojson_v2()::text AS g"
                              ).fetchone()
        opentraffic = conn.execute("SELECT renderer.traffic_coverage_geojson_v2('{1}', true)"
                                   " AS g").fetchone()["g"]
    assert direct["g"] == rows[0]["geojson"]
    assert [f["properties"]["fill"] for f in opentraffic["features"]] == ["#50bf40"]


def test_cli_writes_the_file(renderer_env: dict[str, str], db: Database, tmp_path: Path) -> None:
    _references(db)
    out = tmp_path / "coverage.geojson"
    result = CliRunner().invoke(main, ["traffic", "coverage", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 tiles" in result.output
    assert len(json.loads(out.read_text())["features"]) == 2
    result = CliRunner().invoke(main, ["traffic", "coverage"])
    assert result.exit_code == 0, result.output
    assert "coverage.geojson: 2 tiles, written" in result.output


def test_levels_pick_tiles_of_those_levels_only(db: Database) -> None:
    _references(db)
    with db.connect() as conn:
        for levels, expected in (([1], {(1, CHILD.index)}), ([0], {(0, TILE.index)}),
                                 ([0, 1], {(0, TILE.index), (1, CHILD.index)}), ([2], set())):
            text, features = coverage.geojson(conn, levels)
            found = {(f["properties"]["level"], f["properties"]["tileid"])
                     for f in json.loads(text)["features"]}
            assert found == expected and features == len(expected), levels


def test_opentraffic_style_puts_its_properties_first_on_every_feature(db: Database) -> None:
    _references(db)
    with db.connect() as conn:
        plain = json.loads(coverage.geojson(conn)[0])
        styled = json.loads(coverage.geojson(conn, opentraffic_style=True)[0])
    assert len(styled["features"]) == 2
    for with_style, without in zip(styled["features"], plain["features"], strict=True):
        props = with_style["properties"]
        # names and values of OpenTraffic's make_coverage_map.py, in its order
        assert list(props.items())[:7] == [
            ("fillOpacity", 0.33), ("color", "#50bf40"), ("fill", "#50bf40"),
            ("fillColor", "#50bf40"), ("contour", 15), ("opacity", 0.33),
            ("fill-opacity", 0.33)]
        assert {k: v for k, v in props.items() if k not in coverage.STYLE} == \
            without["properties"]
        assert with_style["geometry"] == without["geometry"]
    assert geojson.loads(json.dumps(styled)).is_valid


def test_the_default_document_is_unchanged(db: Database) -> None:
    """What the store's coverage.geojson and /coverage show: every level, no styling, the
    same bytes as the function of before 0014 (so no refresh rewrites it)."""
    _references(db)
    with db.connect() as conn:
        old = conn.execute("SELECT renderer.traffic_coverage_geojson()::text AS g").fetchone()
        text, _ = coverage.geojson(conn)
        assert text == old["g"] == coverage.geojson(conn, None, False)[0]
    assert "fillOpacity" not in text


def test_cli_levels_and_style(renderer_env: dict[str, str], db: Database,
                              tmp_path: Path) -> None:
    _references(db)
    out = tmp_path / "ot.geojson"
    result = CliRunner().invoke(main, ["traffic", "coverage", "--levels", "1",
                                       "--opentraffic-style", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 tiles" in result.output
    (feature,) = json.loads(out.read_text())["features"]
    assert feature["properties"]["level"] == 1 and feature["properties"]["fill"] == "#50bf40"


@pytest.mark.parametrize("args,message", [
    (["--levels", "3", "--out", "x.geojson"], "'3' is not a tile level"),
    (["--levels", "1,x", "--out", "x.geojson"], "'x' is not a tile level"),
    (["--levels", "1"], "need --out"),
    (["--opentraffic-style"], "need --out"),
])
def test_cli_rejects_bad_levels(renderer_env: dict[str, str], args: list[str],
                                message: str) -> None:
    result = CliRunner().invoke(main, ["traffic", "coverage", *args])
    assert result.exit_code == 2 and message in result.output, result.output
