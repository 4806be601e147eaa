"""``tiles import``: regions from GeoJSON, GeoPackage or Shapefile into ``regions``.

A file holds the regions of one type (``Province``); each feature gives a uid, a name and,
per ``--parent-field TYPE=FIELD``, the uid of its parent of that type. Region types form a
DAG through those parent fields (``Country > Province > Division``, ``Province >
ElectoralDistrict``): an import that would make a type its own ancestor is refused.

The file is read with pyogrio (GDAL's reader, no GDAL tools needed), streamed into a
temporary table, and checked there by one statement: a feature without a uid, with a uid
seen earlier in the file, without geometry or not polygonal is rejected with its reason
(``region_rejects``); an invalid polygon is repaired with ``ST_MakeValid`` (and rejected only
if no area is left). Importing a type again replaces the regions with the same uids.

Example
-------
>>> with db.transaction(url) as conn:
...     report = import_file(conn, "provinces.gpkg", "Province", uid_field="PRUID",
...                          name_field="PRENAME", parent_fields={"Country": "CTRY"})
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyogrio
import pyogrio.errors
from pyogrio.raw import read

from renderer import db
from renderer.errors import InputError
from renderer.maptiles.types import check_dag, check_type_name, type_graph

__all__ = ["ImportReport", "check_dag", "check_type_name", "import_file", "read_features",
           "rejects", "type_graph"]  # the type helpers re-exported from .types

log = logging.getLogger(__name__)

_EPSG = re.compile(r"^EPSG:(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ImportReport:
    """What one ``tiles import`` did."""

    file: str
    type: str
    read: int
    imported: int
    repaired: int
    rejected: int


@dataclass(frozen=True)
class Feature:
    """One feature as read: position in the file, uid, name, parent keys, WKB."""

    feature: int
    uid: str | None
    name: str | None
    parents: list[str]
    wkb: bytes | None


def _text(value: Any) -> str | None:
    """A field value as text: None for missing, integers without a trailing ``.0``."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    if hasattr(value, "item"):  # a numpy scalar
        return _text(value.item())
    text = str(value)
    return text if text.strip() else None


def read_features(path: str | Path, *, uid_field: str | None = None,
                  name_field: str | None = None,
                  parent_fields: Mapping[str, str] | None = None) -> tuple[int, list[Feature]]:
    """The SRID and the features of a file; ``uid_field`` None takes the feature id."""
    parent_fields = dict(parent_fields or {})
    try:
        meta, fids, geometry, values = read(str(path), return_fids=True)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}",
                         "give a GeoJSON, GeoPackage or Shapefile") from exc
    fields = [str(f) for f in meta["fields"]]
    wanted = {"--uid-field": uid_field, "--name-field": name_field,
              **{f"--parent-field {t}=": f for t, f in parent_fields.items()}}
    for flag, field in wanted.items():
        if field is not None and field not in fields:
            raise InputError(f"{path} has no field {field!r} ({flag})",
                             f"its fields: {', '.join(fields) or 'none'}")
    if name_field is None and "name" in fields:
        name_field = "name"
    srid = _srid(path, meta.get("crs"))
    column = {name: values[i] for i, name in enumerate(fields)}
    features = []
    for i in range(len(geometry)):
        uid = _text(column[uid_field][i]) if uid_field else _text(fids[i])
        name = _text(column[name_field][i]) if name_field else None
        parents = [f"{t}-{v}" for t, f in parent_fields.items()
                   if (v := _text(column[f][i])) is not None]
        wkb = geometry[i]
        features.append(Feature(i, uid, name, parents, bytes(wkb) if wkb is not None else None))
    return srid, features


def _srid(path: str | Path, crs: str | None) -> int:
    if crs is None:
        return 4326  # GeoJSON's, and what a file without a CRS most likely means
    match = _EPSG.match(crs)
    if match is None:
        raise InputError(f"{path}: its CRS has no EPSG code ({crs[:60]})",
                         "reproject it to EPSG:4326, e.g. ogr2ogr -t_srs EPSG:4326")
    return int(match.group(1))


def import_file(conn: db.Connection, path: str | Path, region_type: str, *,
                uid_field: str | None = None, name_field: str | None = None,
                parent_fields: Mapping[str, str] | None = None,
                max_zoom: int | None = None) -> ImportReport:
    """Import the regions of one file as ``region_type``, in the caller's transaction;
    ``max_zoom`` caps the zooms the type is drawn at (coarse data)."""
    check_type_name(region_type)
    parent_fields = dict(parent_fields or {})
    for parent in parent_fields:
        check_type_name(parent)
    graph = type_graph(conn)
    graph[region_type] = list(parent_fields)
    check_dag(graph)
    srid, features = read_features(path, uid_field=uid_field, name_field=name_field,
                                   parent_fields=parent_fields)
    conn.execute(db.query("maptiles.upsert_type"),
                 {"type": region_type, "parent_types": list(parent_fields),
                  "max_zoom": max_zoom})
    conn.execute(db.query("maptiles.create_staging"))
    with conn.cursor() as cur, cur.copy(db.query("maptiles.copy_staging")) as copy:
        for f in features:
            copy.write_row((f.feature, f.uid, f.name, f.parents, f.wkb))
    conn.execute(db.query("maptiles.check_staged"), {"srid": srid})
    conn.execute(db.query("maptiles.keep_rejects"), {"file": str(path), "type": region_type})
    conn.execute(db.query("maptiles.upsert_regions"), {"type": region_type})
    counts = db.one(conn, "maptiles.import_counts")
    conn.execute("DROP TABLE maptiles_staging, maptiles_checked")
    report = ImportReport(str(path), region_type, len(features), counts["imported"],
                          counts["repaired"], counts["rejected"])
    log.info("imported %s: %d %s regions (%d repaired, %d rejected)", path, report.imported,
             region_type, report.repaired, report.rejected)
    return report


def rejects(conn: db.Connection) -> list[dict[str, Any]]:
    """Every rejected feature with file, position and reason."""
    return list(conn.execute(db.query("maptiles.rejects")))
