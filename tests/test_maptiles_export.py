"""Exports: a folder, MBTiles (read with sqlite3) and PMTiles (read with the pmtiles
reader), each tile as GeoJSON and as a Mapbox Vector Tile (decoded here from the protobuf
wire format); a statistics import republished by exporting again."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import TileType

from renderer.cli import main
from renderer.db import Database
from renderer.maptiles import export, features
from renderer.storage import open_store
from tests.maptiles_fixtures import connect, small_sample
from tests.test_maptiles import _render

__all__ = ["small_sample"]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs of a protobuf message: varints and length-delimited."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            n, pos = _varint(data, pos)
            value, pos = data[pos:pos + n], pos + n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((number, value))
    return out


def decode_mvt(data: bytes) -> dict[str, list[dict[str, Any]]]:
    """Layer name -> features' properties (string and integer values)."""
    layers: dict[str, list[dict[str, Any]]] = {}
    for number, layer in _fields(data):
        assert number == 3  # Tile.layers
        parts = _fields(layer)
        name = next(v.decode() for n, v in parts if n == 1)
        keys = [v.decode() for n, v in parts if n == 3]
        values: list[Any] = []
        for n, v in parts:
            if n == 4:
                (vn, vv), = _fields(v)
                values.append(vv.decode() if vn == 1 else vv)
        feats = []
        for n, v in parts:
            if n != 2:
                continue
            feature = dict(_fields(v))
            tags = feature.get(2, b"")
            ints, pos = [], 0
            while pos < len(tags):
                t, pos = _varint(tags, pos)
                ints.append(t)
            assert feature.get(3) == 3 and feature.get(4)  # polygons with geometry
            feats.append({keys[ints[i]]: values[ints[i + 1]] for i in range(0, len(ints), 2)})
        layers[name] = feats
    return layers


@pytest.fixture
def exported(db: Database, small_sample: object, database_url: str, tmp_path: Path) -> Path:
    _render(database_url, 8, 10)
    csv = tmp_path / "s.csv"
    csv.write_text("type,uid,population\nLand,1,5\n")
    with connect(db) as conn, conn.transaction():
        features.import_stats(conn, csv)
    return tmp_path


def test_folder_mbtiles_and_pmtiles(db: Database, exported: Path) -> None:
    with connect(db) as conn:
        tiles = {(r["z"], r["x"], r["y"]) for r in conn.execute("SELECT z, x, y FROM tiles")}
        folder = export.export(conn, exported / "out")
        mb = export.export(conn, exported / "t.mbtiles")
        pm = export.export(conn, exported / "t.pmtiles")
    assert folder.tiles == mb.tiles == pm.tiles == len(tiles) > 4
    z, x, y = max(tiles)

    body = json.loads((exported / "out" / str(z) / str(x) / f"{y}.json").read_text())
    keys = {f["id"] for f in body["features"]}
    layers = decode_mvt((exported / "out" / str(z) / str(x) / f"{y}.mvt").read_bytes())
    assert {f["key"] for f in layers["regions"]} == keys
    land = [f for f in layers["regions"] if f["key"] == "Land-1"]
    assert not land or land[0]["population"] == 5

    with sqlite3.connect(exported / "t.mbtiles") as lite:
        meta = dict(lite.execute("SELECT name, value FROM metadata"))
        assert meta["format"] == "pbf" and "regions" in meta["json"]
        (blob,), = lite.execute("SELECT tile_data FROM tiles WHERE zoom_level = ? AND "
                                "tile_column = ? AND tile_row = ?", (z, x, 2**z - 1 - y))
        (text,), = lite.execute("SELECT tile_data FROM geojson_tiles WHERE zoom_level = ? "
                                "AND tile_column = ? AND tile_row = ?", (z, x, 2**z - 1 - y))
        assert lite.execute("SELECT count(*) FROM tiles").fetchone() == (len(tiles),)
    assert {f["key"] for f in decode_mvt(gzip.decompress(blob))["regions"]} == keys
    assert json.loads(gzip.decompress(text)) == body

    with open(exported / "t.pmtiles", "rb") as f:
        reader = Reader(MmapSource(f))
        assert reader.header()["tile_type"] == TileType.MVT
        assert reader.metadata()["vector_layers"][0]["id"] == "regions"
        got = reader.get(z, x, y)
        assert got is not None
        assert {f["key"] for f in decode_mvt(gzip.decompress(got))["regions"]} == keys
        assert reader.header()["addressed_tiles_count"] == len(tiles)
    with open(export.geojson_archive(exported / "t.pmtiles"), "rb") as f:
        got = Reader(MmapSource(f)).get(z, x, y)
        assert got is not None and json.loads(gzip.decompress(got)) == body


def test_statistics_republished_by_exporting_again(db: Database, exported: Path) -> None:
    with connect(db) as conn:
        export.export(conn, exported / "a.pmtiles")
        (exported / "s2.csv").write_text("type,uid,population\nLand,1,77\n")
        with conn.transaction():
            features.import_stats(conn, exported / "s2.csv")
        rendered = conn.execute("SELECT max(rendered_at) AS at FROM tiles").fetchone()
        export.export(conn, exported / "a.pmtiles")
        assert conn.execute("SELECT max(rendered_at) AS at FROM tiles").fetchone() == rendered
        z, x, y = conn.execute(
            "SELECT z, x, y FROM tile_regions t JOIN regions r ON r.id = ANY(t.region_ids)"
            " WHERE r.key = 'Land-1' ORDER BY z DESC LIMIT 1").fetchone().values()
    with open(export.geojson_archive(exported / "a.pmtiles"), "rb") as f:
        got = Reader(MmapSource(f)).get(z, x, y)
    assert got is not None
    land = next(f for f in json.loads(gzip.decompress(got))["features"] if f["id"] == "Land-1")
    assert land["properties"]["population"] == 77


BUCKET = "renderer-maptiles"


def test_exports_to_s3_equal_the_local_ones(db: Database, exported: Path,
                                            s3_endpoint: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    with connect(db) as conn:
        local = export.export(conn, exported / "out")
        folder = export.export(conn, f"s3://{BUCKET}/tiles")
        pm = export.export(conn, f"s3://{BUCKET}/archives/t.pmtiles")
        mb = export.export(conn, f"s3://{BUCKET}/archives/t.mbtiles")
        export.export(conn, exported / "t.pmtiles")
    assert folder.tiles == local.tiles == pm.tiles == mb.tiles > 4
    assert pm.files == [f"s3://{BUCKET}/archives/t.pmtiles",
                        f"s3://{BUCKET}/archives/t.geojson.pmtiles"]
    store = open_store(f"s3://{BUCKET}/tiles")
    objects = {info.key: info for info in store.list()}
    on_disk = {p.relative_to(exported / "out").as_posix(): p.read_bytes()
               for p in (exported / "out").rglob("*") if p.is_file()}
    assert set(objects) == set(on_disk) and len(objects) == 2 * local.tiles
    assert all(store.get(key) == body for key, body in on_disk.items())
    some = sorted(objects)[0].rsplit(".", 1)[0]
    assert store.head(some + ".json").content_type == "application/json"  # type: ignore[union-attr]
    assert store.head(some + ".mvt").content_type == (  # type: ignore[union-attr]
        "application/vnd.mapbox-vector-tile")
    archives = open_store(f"s3://{BUCKET}/archives")
    z, x, y = (int(v) for v in some.split("/"))
    for name in ("t.pmtiles", "t.geojson.pmtiles"):
        body = archives.get(name)
        got = Reader(lambda offset, length, body=body: body[offset:offset + length]).get(z, x, y)
        with open(exported / name, "rb") as f:
            assert got == Reader(MmapSource(f)).get(z, x, y) and got is not None
    with sqlite3.connect(":memory:") as lite:
        lite.deserialize(archives.get("t.mbtiles"))
        assert lite.execute("SELECT count(*) FROM tiles").fetchone() == (mb.tiles,)


def test_the_cli_exports_to_the_store_by_default(db: Database, exported: Path,
                                                 renderer_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["tiles", "export", "--max-zoom", "9", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    store = open_store(renderer_env["RENDERER_STORAGE"])
    assert report["target"] == store.url + "/maptiles" and report["tiles"] > 0
    keys = [info.key for info in store.list("maptiles/")]
    assert len(keys) == 2 * report["tiles"] and all(k.endswith((".json", ".mvt")) for k in keys)
    assert not [p for p in Path(store.url[len("file://"):]).rglob(".*")]  # no sidecars


def test_exported_geojson_is_the_served_body_byte_for_byte(db: Database,
                                                           exported: Path) -> None:
    # The export merges the statistics itself (from the stored text and members): every
    # tile must be what the database serves, with statistics of every shape (members with
    # quotes and non-ASCII, an empty members text, none) and a deleted region left out.
    with connect(db) as conn, conn.transaction():
        conn.execute("INSERT INTO region_stats (type, uid, members) VALUES"
                     " ('Province', 'P0000', %s), ('District', 'D0000', '')",
                     ['"label":"Île \\"x\\"","n":1'])
        conn.execute("DELETE FROM regions WHERE key = 'Ward-W0000'")
    with connect(db) as conn:
        export.export(conn, exported / "b.pmtiles")
        served = {(r["z"], r["x"], r["y"]): bytes(r["body"]) for r in conn.execute(
            "SELECT t.z, t.x, t.y, convert_to(b.body, 'UTF8') AS body FROM tiles t,"
            " renderer.maptiles_tile_body(t.z, t.x, t.y) b")}
    with open(export.geojson_archive(exported / "b.pmtiles"), "rb") as f:
        archived = {zxy: gzip.decompress(data) for zxy, data in all_tiles(MmapSource(f))}
    assert archived == served
    bodies = [json.loads(body) for body in served.values()]
    props = {f["id"]: f["properties"] for body in bodies for f in body["features"]}
    assert props["Province-P0000"]["label"] == 'Île "x"'
    assert "n" not in props["District-D0000"]
    assert "Ward-W0001" in props and "Ward-W0000" not in props  # (its grids' keys stay)
