"""``tiles export``: the rendered tiles, statistics merged now, to a folder, MBTiles or
PMTiles, each tile both as GeoJSON (with its UTFGrids) and as a Mapbox Vector Tile
(encoded from the tile's pieces by :mod:`.mvt`, as ``ST_AsMVT`` made it before) that
MapLibre and QGIS read.

- a folder: ``{z}/{x}/{y}.json`` and ``{z}/{x}/{y}.mvt`` (uncompressed);
- ``.mbtiles``: one SQLite file; ``tiles`` holds the gzipped MVT (format ``pbf``, as MapLibre
  and QGIS expect) and ``geojson_tiles`` (same columns, TMS rows) the gzipped GeoJSON;
- ``.pmtiles``: PMTiles v3 holds one tile type per archive, so two archives side by side:
  ``NAME.pmtiles`` (MVT) and ``NAME.geojson.pmtiles`` (GeoJSON, tile type unknown).

Every target is written through the object store (:mod:`renderer.storage`): a plain path or
``file:///...`` is a local folder, ``s3://bucket/prefix`` an S3 prefix; a target whose name
ends in ``.mbtiles``/``.pmtiles`` is an archive object in the folder or prefix above it
(built in a temporary file, then put whole: S3's single-part limit of 5 GB applies). Tiles
in a local folder are plain files (no metadata sidecars: a tile server serves the folder);
on S3 they carry their content types. Each object appears whole or not at all.

Nothing is rendered: exporting again after ``tiles stats`` republishes the tiles with the
new statistics (the feature text and geometry are read as stored).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isal import igzip
from pmtiles.tile import Compression, TileType

from renderer import db
from renderer.errors import InputError
from renderer.maptiles import archive, mvt
from renderer.storage import FileStore, Store, open_store

__all__ = ["BATCH", "ExportReport", "export", "geojson_archive", "gzipped"]

log = logging.getLogger(__name__)

BATCH = 256
GZIP_LEVEL = 1
"""ISA-L's level 1 (``isal.igzip``, Intel's DEFLATE encoder): the same gzip member (RFC
1952, DEFLATE, mtime 0) that zlib writes, which every reader (MapLibre, QGIS, the pmtiles
readers, ``gzip -d``) inflates the same way; only the encoder's search differs. zlib at
level 1 cost 0.12 ms a tile (two bodies, 2.73 kB) on the benchmark's sample, against 0.24 at
level 6 (zlib's default) and 0.47 at 9 (gzip's); ISA-L's level 1 takes about half of zlib's
level 1 for smaller output (see BENCHMARKS.md, "Map tiles", fifth pass)."""
CONTENT_TYPES = {"json": "application/json", "mvt": "application/vnd.mapbox-vector-tile",
                 "mbtiles": "application/vnd.sqlite3", "pmtiles": "application/vnd.pmtiles"}


@dataclass(frozen=True)
class ExportReport:
    """What one export wrote."""

    target: str
    format: str
    tiles: int
    files: list[str]


def geojson_archive(path: Path) -> Path:
    """The GeoJSON companion of a PMTiles archive: ``x.pmtiles`` -> ``x.geojson.pmtiles``."""
    return path.with_name(path.name[: -len(".pmtiles")] + ".geojson.pmtiles")


def gzipped(data: bytes) -> bytes:
    """``data`` as one gzip member (mtime 0: the same bytes every export)."""
    return igzip.compress(data, GZIP_LEVEL, mtime=0)


def _tiles(conn: db.Connection, min_zoom: int, max_zoom: int, margin_px: float,
           order_by_tileid: bool) -> Iterator[dict[str, Any]]:
    """The tiles' rows (``z``, ``x``, ``y``, ``body``, ``mvt``, and ``tileid`` when ordered
    by it: PMTiles' Hilbert id, computed once a tile). The MVT is encoded here from the
    tile's pieces (:mod:`renderer.maptiles.mvt`)."""
    with conn.cursor(row_factory=db.tuple_row) as cur:
        keys = cur.execute(db.query("maptiles.tile_list"),
                           {"min_zoom": min_zoom, "max_zoom": max_zoom}).fetchall()
    ids = archive.tileids([k[0] for k in keys], [k[1] for k in keys],
                          [k[2] for k in keys]).tolist() if order_by_tileid else [0] * len(keys)
    pairs = list(zip(ids, keys, strict=True))
    if order_by_tileid:
        pairs.sort()
    regions = mvt.Regions(conn)
    for i in range(0, len(pairs), BATCH):
        chunk = pairs[i:i + BATCH]
        params = mvt.key_arrays([k for _, k in chunk])
        with conn.cursor(row_factory=db.tuple_row) as cur:
            rows = cur.execute(db.query("maptiles.export_batch"), params, binary=True).fetchall()
        regions.load(rid for row in rows for rid in row[1] or ())
        encoded = mvt.tiles(conn, [k for _, k in chunk], regions, margin_px=margin_px)
        for (tileid, (z, x, y)), (_, region_ids, texts, grids), data in zip(
                chunk, rows, encoded, strict=True):
            yield {"z": z, "x": x, "y": y, "tileid": tileid, "mvt": data,
                   "body": body(region_ids or [], texts or [], grids, regions.members)}


def body(region_ids: Sequence[int], texts: Sequence[str], utfgrids: str,
         members: Mapping[int, str | None]) -> bytes:
    """A tile's GeoJSON with the statistics merged, as UTF-8: what
    ``renderer.maptiles_tile_body`` makes in the database, byte for byte (each feature's
    text, ``,`` and the region's statistics members when it has some, ``}}``;
    the features of regions no longer in ``members``' keys, deleted, left out), merged here
    from the stored text: the same in the database cost 0.05 ms of server CPU a tile, most
    of the export's."""
    merged = ",".join(
        f"{text},{members[rid]}}}}}" if members[rid] else f"{text}}}}}"
        for rid, text in zip(region_ids, texts, strict=True) if rid in members)
    return f'{{"type":"FeatureCollection","features":[{merged}],"utfgrids":{utfgrids}}}'.encode()


def export(conn: db.Connection, target: str | Path, *, min_zoom: int = 0, max_zoom: int = 24,
           margin_px: float = 4.0) -> ExportReport:
    """Write the tiles of zooms min..max to ``target``: a folder or store URL, or an archive
    path or URL ending in ``.mbtiles``/``.pmtiles`` (see the module docstring)."""
    text = str(target)
    name = text.rstrip("/").rsplit("/", 1)[-1]
    if name.endswith((".mbtiles", ".pmtiles")):
        if "://" not in text:
            return _archive(conn, Path(text), min_zoom, max_zoom, margin_px)
        parent = text.rstrip("/")[: -len(name)]
        store = open_store(parent)
        with tempfile.TemporaryDirectory(prefix="renderer-tiles-") as tmp:
            report = _archive(conn, Path(tmp) / name, min_zoom, max_zoom, margin_px)
            files = []
            for made in map(Path, report.files):
                store.put(made.name, made.read_bytes(), content_type=CONTENT_TYPES[report.format])
                files.append(store.url.rstrip("/") + "/" + made.name)
        return dataclasses.replace(report, target=text, files=files)
    if "://" not in text and Path(text).exists() and not Path(text).is_dir():
        raise InputError(f"{text} is a file", "give a folder, an .mbtiles or a .pmtiles path")
    store = open_store(text)
    return ExportReport(store.url, "folder", _folder(conn, store, min_zoom, max_zoom, margin_px),
                        [store.url])


def _archive(conn: db.Connection, path: Path, min_zoom: int, max_zoom: int,
             margin_px: float) -> ExportReport:
    if path.suffix == ".mbtiles":
        return _mbtiles(conn, path, min_zoom, max_zoom, margin_px)
    return _pmtiles(conn, path, min_zoom, max_zoom, margin_px)


def _folder(conn: db.Connection, store: Store, min_zoom: int, max_zoom: int,
            margin_px: float) -> int:
    """``{z}/{x}/{y}.json`` and ``.mvt`` objects; plain files in a local folder."""
    n = 0
    for t in _tiles(conn, min_zoom, max_zoom, margin_px, False):
        base = f"{t['z']}/{t['x']}/{t['y']}"
        for key, data, kind in ((f"{base}.json", bytes(t["body"]), "json"),
                                (f"{base}.mvt", bytes(t["mvt"]), "mvt")):
            if isinstance(store, FileStore):
                store.put_plain(key, data)
            else:
                store.put(key, data, content_type=CONTENT_TYPES[kind])
        n += 1
    return n


def _metadata(conn: db.Connection, fmt: str) -> dict[str, Any]:
    b = db.one(conn, "maptiles.export_bounds")
    return {"name": "regions", "format": fmt, "bounds": [b["west"], b["south"], b["east"],
                                                          b["north"]],
            "description": "renderer map tiles: regions with statistics merged",
            "vector_layers": [{"id": "regions", "fields": {
                "key": "String", "uid": "String", "type": "String", "name": "String",
                "parents": "String"}}]}


def _mbtiles(conn: db.Connection, path: Path, min_zoom: int, max_zoom: int,
             margin_px: float) -> ExportReport:
    tmp = path.with_name(path.name + ".part")
    tmp.unlink(missing_ok=True)
    out = sqlite3.connect(tmp)
    try:
        out.executescript("""
            CREATE TABLE metadata (name text, value text);
            CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer,
                                tile_data blob);
            CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
            CREATE TABLE geojson_tiles (zoom_level integer, tile_column integer,
                                        tile_row integer, tile_data blob);
            CREATE UNIQUE INDEX geojson_index
                ON geojson_tiles (zoom_level, tile_column, tile_row);
        """)
        meta = _metadata(conn, "pbf")
        zooms = []
        n = 0
        for t in _tiles(conn, min_zoom, max_zoom, margin_px, False):
            row = (t["z"], t["x"], 2 ** t["z"] - 1 - t["y"])
            out.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                        (*row, gzipped(bytes(t["mvt"]))))
            out.execute("INSERT INTO geojson_tiles VALUES (?, ?, ?, ?)",
                        (*row, gzipped(bytes(t["body"]))))
            zooms.append(t["z"])
            n += 1
        entries = {"name": meta["name"], "format": "pbf", "type": "overlay", "version": "1",
                   "description": meta["description"],
                   "bounds": ",".join(str(v) for v in meta["bounds"]),
                   "minzoom": str(min(zooms, default=min_zoom)),
                   "maxzoom": str(max(zooms, default=max_zoom)),
                   "json": json.dumps({"vector_layers": meta["vector_layers"]})}
        out.executemany("INSERT INTO metadata VALUES (?, ?)", entries.items())
        out.commit()
    finally:
        out.close()
    tmp.replace(path)
    return ExportReport(str(path), "mbtiles", n, [str(path)])


def _pmtiles(conn: db.Connection, path: Path, min_zoom: int, max_zoom: int,
             margin_px: float) -> ExportReport:
    meta = _metadata(conn, "pbf")
    west, south, east, north = meta["bounds"] if meta["bounds"][0] is not None \
        else (-180, -85, 180, 85)
    companion = geojson_archive(path)
    parts = {p: p.with_name(p.name + ".part") for p in (path, companion)}
    n = 0
    with parts[path].open("wb") as f_mvt, parts[companion].open("wb") as f_json:
        mvt, geojson = archive.Writer(f_mvt), archive.Writer(f_json)
        zooms = []
        for t in _tiles(conn, min_zoom, max_zoom, margin_px, True):
            tileid = t["tileid"]
            mvt.write_tile(tileid, gzipped(bytes(t["mvt"])))
            geojson.write_tile(tileid, gzipped(bytes(t["body"])))
            zooms.append(t["z"])
            n += 1
        if n == 0:
            raise InputError("no rendered tile in those zooms", "run `renderer tiles render`")
        for writer, kind, fmt in ((mvt, TileType.MVT, "pbf"), (geojson, TileType.UNKNOWN,
                                                                 "json")):
            writer.finalize({
                "tile_type": kind, "tile_compression": Compression.GZIP,
                "min_lon_e7": int(west * 1e7), "min_lat_e7": int(south * 1e7),
                "max_lon_e7": int(east * 1e7), "max_lat_e7": int(north * 1e7),
                "center_zoom": min(zooms)}, {**meta, "format": fmt})
    for final, part in parts.items():
        part.replace(final)
    return ExportReport(str(path), "pmtiles", n, [str(path), str(companion)])
