"""The static geohash index of a day, the original design's S3 layout, as an export.

For a UTC day, every report is copied into one object per (geohash cell, time block,
sample period), for geohash lengths 0-10 (length 0 is the whole world, written ``ALL``),
blocks of 1s 30s 1m 5m 15m 30m 1h 2h 4h 8h 12h 1d and samples no larger than the block::

    <geohash>/block-<block>/sample-<sample>/<block start, ISO 8601>

where a sample keeps each vessel's first report in each sample period (the query's rule),
plus one copy per identifier of the vessel, unsampled::

    <key><value>/<geohash>/<block>/<block start>

Objects hold BinaryFixes records (35 bytes, with the mmsi) in time order. Geohashes come
from PostGIS (``ST_GeoHash``), checked in the tests against an independent implementation.

The work is cut into items per (geohash prefix, day): a prefix is one geohash character
(the cells of lengths 1-10 below it) or ``ALL`` (length 0), so the 33 items of a day run on
any number of workers and each reads only its own reports (:func:`export_item`).

Example
-------
>>> object_key("r3gx", "1h", "5m", 1796083200)
'r3gx/block-1h/sample-5m/2026-12-01T00:00:00Z'
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from renderer import db
from renderer.storage import Store
from renderer.tracks.formats import FIXES

__all__ = ["ALL", "BLOCKS", "LENGTHS", "ItemResult", "export_item", "item_key", "object_key",
           "parse_item_key", "prefixes"]

log = logging.getLogger(__name__)

ALL = "ALL"
BLOCKS = {"1s": 1, "30s": 30, "1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
          "2h": 7200, "4h": 14400, "8h": 28800, "12h": 43200, "1d": 86400}
LENGTHS = range(11)


@dataclass(frozen=True)
class ItemResult:
    prefix: str
    day: date
    reports: int
    objects: int
    bytes: int


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_key(cell: str, block: str, sample: str, start: int) -> str:
    """The key of a sampled object (``cell`` is a geohash or ``ALL``)."""
    return f"{cell or ALL}/block-{block}/sample-{sample}/{_iso(start)}"


def identifier_key(key: str, value: str, cell: str, block: str, start: int) -> str:
    """The key of a per-identifier object."""
    return f"{key}{value}/{cell or ALL}/{block}/{_iso(start)}"


def item_key(prefix: str, day: date) -> str:
    """The queue key of the item of a prefix and day: ``r/2026-12-01``, ``ALL/2026-12-01``."""
    return f"{prefix}/{day.isoformat()}"


def parse_item_key(key: str) -> tuple[str, date]:
    prefix, _, day = key.partition("/")
    return prefix, date.fromisoformat(day)


def prefixes(conn: db.Connection, day: date) -> list[str]:
    """The items of a day: ``ALL`` and the first geohash characters that have reports."""
    rows = conn.execute(db.query("tracks.index_prefixes"), {"day": day}).fetchall()
    return [ALL, *(r["prefix"] for r in rows)] if rows else []


def _record(r: dict[str, Any]) -> bytes:
    mmsi = int(r["mmsi"]) if r["mmsi"] and r["mmsi"].isdigit() else 0
    return FIXES.pack(
        mmsi, r["lat"], r["lon"], r["t_ms"], -1 if r["latency"] is None else r["latency"],
        r["source"] or 0, 127 if r["nav_status"] is None else r["nav_status"],
        -128 if r["rot"] is None else r["rot"], 1023 if r["sog"] is None else r["sog"],
        3600 if r["cog"] is None else r["cog"], 3600 if r["heading"] is None else r["heading"],
        1 if r["ais_class"] == "B" else 0)


class _Writer:
    """Puts objects from a few threads (each put is a round trip to S3, or an fsync on a
    local folder: one at a time, a day's small objects would wait on them in turn)."""

    def __init__(self, store: Store, threads: int = 8, batch: int = 2000) -> None:
        self.store, self.batch = store, batch
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="tracks-index")
        self.pending: list[tuple[str, bytes]] = []
        self.objects = self.bytes = 0

    def put(self, key: str, data: bytes) -> None:
        self.pending.append((key, data))
        self.objects += 1
        self.bytes += len(data)
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for _ in self.pool.map(lambda kv: self.store.put(
                kv[0], kv[1], content_type="application/octet-stream"), pending):
            pass

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.pool.shutdown()


def _put_groups(writer: _Writer, groups: dict[tuple[str, int], list[int]], block: str,
                seconds: int, rows: list[tuple[int, int, bytes]]) -> None:
    """Write the sampled objects of one geohash length and block."""
    samples = [(name, s) for name, s in BLOCKS.items() if s <= seconds]
    for (cell, start), members in groups.items():
        for name, s in samples:
            seen: set[tuple[int, int]] = set()
            chosen = []
            for i in members:  # members are in time order: the first of each period wins
                t_s, vessel, record = rows[i]
                mark = (vessel, t_s // s)
                if mark not in seen:
                    seen.add(mark)
                    chosen.append(record)
            writer.put(object_key(cell, block, name, start), b"".join(chosen))


def export_item(conn: db.Connection, store: Store, prefix: str, day: date) -> ItemResult:
    """Write every object of one item: the cells under ``prefix`` (lengths 1-10), or the
    world (length 0) for ``ALL``, and the per-identifier copies of the same cells."""
    found = conn.execute(db.query("tracks.index_reports"), {
        "day": day, "prefix": None if prefix == ALL else prefix}).fetchall()
    rows = [(r["t_ms"] // 1000, r["vessel_id"], _record(r)) for r in found]
    hashes = [r["geohash"] for r in found]
    idents: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for r in conn.execute(db.query("tracks.identifiers_of"), {
            "vessels": sorted({r["vessel_id"] for r in found})}).fetchall():
        idents[r["vessel_id"]].append((r["key"], r["value"]))
    lengths = [0] if prefix == ALL else list(LENGTHS)[1:]
    writer = _Writer(store)
    try:
        _write(writer, rows, hashes, idents, lengths)
    finally:
        writer.close()
    log.info("index %s/%s: %d reports -> %d objects, %d bytes", prefix, day, len(rows),
             writer.objects, writer.bytes)
    return ItemResult(prefix, day, len(rows), writer.objects, writer.bytes)


def _write(writer: _Writer, rows: list[tuple[int, int, bytes]], hashes: list[str],
           idents: dict[int, list[tuple[str, str]]], lengths: list[int]) -> None:
    for length in lengths:
        for block, seconds in BLOCKS.items():
            groups: dict[tuple[str, int], list[int]] = defaultdict(list)
            by_vessel: dict[tuple[int, str, int], list[int]] = defaultdict(list)
            for i, (t_s, vessel, _) in enumerate(rows):
                cell, start = hashes[i][:length], t_s // seconds * seconds
                groups[(cell, start)].append(i)
                by_vessel[(vessel, cell, start)].append(i)
            _put_groups(writer, groups, block, seconds, rows)
            for (vessel, cell, start), members in by_vessel.items():
                data = b"".join(rows[i][2] for i in members)
                for key, value in idents[vessel]:
                    writer.put(identifier_key(key, value, cell, block, start), data)


def export_day(conn: db.Connection, store: Store, day: date,
               only: Iterable[str] | None = None) -> list[ItemResult]:
    """Every item of a day in this process (what the queue items do one by one)."""
    return [export_item(conn, store, p, day) for p in (only or prefixes(conn, day))]
