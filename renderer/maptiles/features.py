"""Feature tiles: statistics kept apart from geometry and merged at the last instant.

A tile's GeoJSON is assembled in SQL by string concatenation: each feature's text (written
once when its block is rendered, see ``cut_block``) ends open after its ``parents``;
``renderer.maptiles_tile(z, x, y)`` appends each region's statistics members and the closing
braces, joins the features and adds the tile's ``utfgrids``. Importing statistics
(``tiles stats``) rewrites only ``region_stats``: the next tile served or exported carries
them, and no geometry is rendered again.

Example
-------
>>> with db.transaction(url) as conn:
...     import_stats(conn, "census.csv")           # type,uid,population,...
...     tile_json(conn, 5, 17, 11)                 # '{"type":"FeatureCollection",...}'
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from renderer import db
from renderer.errors import InputError

__all__ = ["RESERVED", "StatsReport", "import_stats", "members", "tile_bytes", "tile_json"]

RESERVED = {"uid", "type", "name", "parents"}


@dataclass
class StatsReport:
    """What one statistics import did; ``rejected`` is (line, reason)."""

    file: str
    indicators: list[str]
    imported: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def _value(text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def members(names: list[str], values: list[str]) -> str:
    """The JSON members (``"pop":12,"rate":0.5``) of one row; empty cells are left out."""
    parts = []
    for name, text in zip(names, values, strict=True):
        value = _value(text)
        if value is not None:
            parts.append(json.dumps(name) + ":" + json.dumps(value, ensure_ascii=False))
    return ",".join(parts)


def import_stats(conn: db.Connection, path: str | Path) -> StatsReport:
    """Load a CSV of ``type,uid,<indicator>...`` into ``region_stats``."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["type", "uid"] \
                or len(header) < 3:
            raise InputError(f"{path}: the header must be type,uid,<indicator>...",
                             "e.g. type,uid,population,median_income")
        names = [h.strip() for h in header[2:]]
        clash = sorted(RESERVED.intersection(names))
        if clash or len(set(names)) != len(names) or not all(names):
            raise InputError(f"{path}: indicator names must be distinct, non-empty and not "
                             f"uid/type/name/parents (found {', '.join(clash) or names})",
                             "rename those columns")
        report = StatsReport(str(path), names)
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                report.rejected.append((line, f"{len(row)} fields, expected {len(header)}"))
                continue
            kind, uid = row[0].strip(), row[1].strip()
            if not kind or not uid:
                report.rejected.append((line, "no type or no uid"))
                continue
            rows.append({"type": kind, "uid": uid, "members": members(names, row[2:])})
    with conn.cursor() as cur:
        cur.executemany(db.query("maptiles.upsert_stats"), rows)
    report.imported = len(rows)
    return report


def tile_json(conn: db.Connection, z: int, x: int, y: int) -> str | None:
    """The tile's GeoJSON text with statistics merged; None for a tile without regions."""
    row = conn.execute(db.query("maptiles.tile"), {"z": z, "x": x, "y": y}).fetchone()
    return None if row is None else row["body"]


def tile_bytes(conn: db.Connection, z: int, x: int, y: int) -> bytes | None:
    """:func:`tile_json` as UTF-8 bytes, fetched in binary (no text decoded and encoded
    again: what a server sends on)."""
    row = conn.execute(db.query("maptiles.tile_bytes"), {"z": z, "x": x, "y": y},
                       binary=True).fetchone()
    return None if row is None else bytes(row["body"])
