"""Sample regions: Natural Earth's countries (shipped in the pyogrio wheel) and a generated
deeper set, written as GeoJSON/Shapefile for ``tiles import`` as a user would.

Real: the 177 low-resolution countries of ``pyogrio/tests/fixtures/naturalearth_lowres``
(Country, uid = name) under their continents (Continent, dissolved from the countries):
real coasts, islands and the antimeridian.

Generated (in the open Atlantic west of the Azores, where no country is): a jittered
lattice of ``cols x rows`` blocks whose edges wiggle, each edge's points derived from its
ends alone so that the two blocks sharing an edge share its coordinates exactly; blocks
group into districts (4 x 4) and wards (8 x 8), and those into provinces (16 x 16) under one
Land. Two hierarchies: Land > Province > District > Block and Land > Province > Ward. At the
default 64 x 48 that is 3,325 regions.
"""

from __future__ import annotations

import csv
import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyogrio
import shapely
from pyogrio.raw import read
from shapely.geometry import Polygon, mapping

from renderer import db
from renderer.maptiles.regions import ImportReport, import_file

__all__ = ["NATURAL_EARTH", "SampleFile", "import_sample", "write_sample", "write_stats"]

NATURAL_EARTH = (Path(pyogrio.__file__).parent / "tests" / "fixtures" / "naturalearth_lowres"
                 / "naturalearth_lowres.shp")
ORIGIN = (-40.0, 38.0)   # lon, lat of the generated lattice's south-west corner
STEP = 0.03125           # degrees between lattice points
WIGGLE = 6               # intermediate points per edge
NATURAL_EARTH_MAX_ZOOM = 6  # its 1:110m coasts are a blur beyond (and the world is big)


@dataclass(frozen=True)
class SampleFile:
    """One file to import and how (the arguments of ``tiles import``)."""

    path: Path
    type: str
    uid_field: str | None = "uid"
    name_field: str | None = "name"
    parent_fields: dict[str, str] = field(default_factory=dict)
    max_zoom: int | None = None


def _noise(*values: float) -> float:
    """A deterministic number in [-0.5, 0.5) from the values."""
    digest = hashlib.blake2b(struct.pack(f"{len(values)}d", *values), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 - 0.5


def _point(i: int, j: int) -> tuple[float, float]:
    jitter = 0.25 * STEP
    return (ORIGIN[0] + i * STEP + jitter * _noise(i, j, 1.0),
            ORIGIN[1] + j * STEP + jitter * _noise(i, j, 2.0))


def _edge(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[float, float]]:
    """Points from lattice point a to b (b excluded), the same (reversed) from b to a."""
    lo, hi = (a, b) if a <= b else (b, a)
    p, q = _point(*lo), _point(*hi)
    nx, ny = -(q[1] - p[1]), q[0] - p[0]
    pts = [p]
    for k in range(1, WIGGLE + 1):
        t = k / (WIGGLE + 1)
        off = 0.15 * _noise(*lo, *hi, float(k))
        pts.append((p[0] + t * (q[0] - p[0]) + off * nx, p[1] + t * (q[1] - p[1]) + off * ny))
    return pts if a <= b else list(reversed([*pts[1:], q]))


def _cell(i: int, j: int) -> Polygon:
    corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
    ring: list[tuple[float, float]] = []
    for k in range(4):
        ring.extend(_edge(corners[k], corners[(k + 1) % 4]))
    return Polygon(ring)


def _features(rows: Iterator[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": mapping(r.pop("geometry")), "properties": r}
        for r in rows]}


def _write(path: Path, rows: Iterator[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(_features(rows)))
    return path


def write_sample(folder: str | Path, *, cols: int = 64, rows: int = 48,
                 natural_earth: bool = True) -> list[SampleFile]:
    """Write the sample's files into ``folder``; returns them in import order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: list[SampleFile] = []
    if natural_earth:
        meta, _, geometry, values = read(str(NATURAL_EARTH))
        column = dict(zip(meta["fields"], values, strict=True))
        shapes = shapely.from_wkb(geometry)
        continents: dict[str, list[Any]] = {}
        for name, shape in zip(column["continent"], shapes, strict=True):
            continents.setdefault(str(name), []).append(shape)
        files.append(SampleFile(_write(folder / "continents.geojson", (
            {"uid": name, "name": name, "geometry": shapely.union_all(parts)}
            for name, parts in sorted(continents.items()))), "Continent",
            max_zoom=NATURAL_EARTH_MAX_ZOOM))
        files.append(SampleFile(NATURAL_EARTH, "Country", uid_field="name",
                                parent_fields={"Continent": "continent"},
                                max_zoom=NATURAL_EARTH_MAX_ZOOM))
    cells = {(i, j): _cell(i, j) for i in range(cols) for j in range(rows)}

    def groups(size: int) -> dict[tuple[int, int], list[Polygon]]:
        out: dict[tuple[int, int], list[Polygon]] = {}
        for (i, j), cell in cells.items():
            out.setdefault((i // size, j // size), []).append(cell)
        return out

    def uid(prefix: str, key: tuple[int, int]) -> str:
        return f"{prefix}{key[0]:02d}{key[1]:02d}"

    files.append(SampleFile(_write(folder / "land.geojson", iter([
        {"uid": "1", "name": "Sampleland", "geometry": shapely.union_all(list(cells.values()))}
    ])), "Land"))
    files.append(SampleFile(_write(folder / "provinces.geojson", (
        {"uid": uid("P", k), "name": f"Province {uid('P', k)}", "land": "1",
         "geometry": shapely.union_all(v)} for k, v in sorted(groups(16).items()))),
        "Province", parent_fields={"Land": "land"}))
    files.append(SampleFile(_write(folder / "districts.geojson", (
        {"uid": uid("D", k), "name": f"District {uid('D', k)}",
         "province": uid("P", (k[0] // 4, k[1] // 4)), "geometry": shapely.union_all(v)}
        for k, v in sorted(groups(4).items()))), "District",
        parent_fields={"Province": "province"}))
    files.append(SampleFile(_write(folder / "wards.geojson", (
        {"uid": uid("W", k), "name": f"Ward {uid('W', k)}",
         "province": uid("P", (k[0] // 2, k[1] // 2)), "geometry": shapely.union_all(v)}
        for k, v in sorted(groups(8).items()))), "Ward",
        parent_fields={"Province": "province"}))
    files.append(SampleFile(_write(folder / "blocks.geojson", (
        {"uid": uid("B", k), "name": f"Block {uid('B', k)}",
         "district": uid("D", (k[0] // 4, k[1] // 4)), "geometry": cell}
        for k, cell in sorted(cells.items()))), "Block",
        parent_fields={"District": "district"}))
    return files


def write_stats(path: str | Path, conn: db.Connection, *, seed: float = 1.0) -> Path:
    """A statistics CSV (population, density) for every imported region."""
    path = Path(path)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["type", "uid", "population", "density"])
        for r in conn.execute(db.query("maptiles.region_areas")):
            population = int(r["area_m2"] / 1e4 * (1.5 + _noise(r["id"], seed)))
            out.writerow([r["type"], r["uid"], population,
                          round(population / (r["area_m2"] / 1e6), 3)])
    return path


def import_sample(conn: db.Connection, files: list[SampleFile]) -> list[ImportReport]:
    """Import the sample's files in order, in the caller's transaction."""
    return [import_file(conn, f.path, f.type, uid_field=f.uid_field, name_field=f.name_field,
                        parent_fields=f.parent_fields, max_zoom=f.max_zoom) for f in files]
