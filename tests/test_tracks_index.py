"""The static geohash index export: PostGIS geohashes against an independent implementation,
the object layout, sampling inside objects, the per-identifier copies, and the work items."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer import db as connector
from renderer.db import Database
from renderer.storage import open_store
from renderer.tracks import bounded_index
from renderer.tracks import geohash_index as gi
from renderer.tracks.formats import Report, decode_fixes
from renderer.tracks.ingest import ingest
from renderer.tracks.profile import INDEX_KIND, plan_index
from renderer.tracks.sample import write_csv
from renderer.worker import run_worker

BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"


def reference_geohash(lat: float, lon: float, length: int) -> str:
    """Geohash by the textbook bisection (interleaved bits, longitude first)."""
    lo_lat, hi_lat, lo_lon, hi_lon = -90.0, 90.0, -180.0, 180.0
    bits, out, even = [], [], True
    while len(out) < length:
        if even:
            mid = (lo_lon + hi_lon) / 2
            bits.append(lon >= mid)
            lo_lon, hi_lon = (mid, hi_lon) if lon >= mid else (lo_lon, mid)
        else:
            mid = (lo_lat + hi_lat) / 2
            bits.append(lat >= mid)
            lo_lat, hi_lat = (mid, hi_lat) if lat >= mid else (lo_lat, mid)
        even = not even
        if len(bits) == 5:
            out.append(BASE32[sum(b << (4 - i) for i, b in enumerate(bits))])
            bits = []
    return "".join(out)


def test_reference_geohash_known_values() -> None:
    assert reference_geohash(57.64911, 10.40744, 11) == "u4pruydqqvj"  # Wikipedia's example
    assert reference_geohash(-33.8568, 151.2153, 6) == "r3gx2u"


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lat=st.floats(-89.999, 89.999), lon=st.floats(-179.999, 179.999),
       length=st.integers(1, 10))
def test_postgis_geohash_equals_the_reference(database_url: str, lat: float, lon: float,
                                              length: int) -> None:
    # away from cell edges, where float rounding in either implementation may differ
    step_lat, step_lon = 180 / 2 ** ((5 * length) // 2), 360 / 2 ** ((5 * length + 1) // 2)
    for value, lo, step in ((lat, -90, step_lat), (lon, -180, step_lon)):
        frac = ((value - lo) / step) % 1
        if min(frac, 1 - frac) < 1e-6:
            return
    with connector.connect(database_url) as conn:
        ours = connector.scalar(conn, "tracks.geohash", {"lat": lat, "lon": lon,
                                                         "length": length})
    assert ours == reference_geohash(lat, lon, length)


DAY = date(2026, 12, 1)
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _r(mmsi: str, seconds: int, lat: float, lon: float, imo: str | None = None) -> Report:
    ids = (("mmsi", mmsi),) if imo is None else (("imo", imo), ("mmsi", mmsi))
    return Report(ids=ids, time_ms=int((T0 + timedelta(seconds=seconds)).timestamp()) * 1000,
                  lat=lat, lon=lon, sog=12.5, ais_class="A")


@pytest.fixture
def small_day(db: Database, tmp_path: Path) -> list[Report]:
    reports = [
        _r("503000001", 10, -33.85, 151.25, imo="9300001"),  # Sydney
        _r("503000001", 40, -33.851, 151.251),
        _r("503000001", 3700, -33.9, 151.3),
        _r("503000002", 20, 1.26, 103.84),                   # Singapore
        _r("503000002", 25, 1.261, 103.841),
        _r("503000002", 86000, 1.3, 103.9),
        _r("503000003", 5, -33.852, 151.252),                # Sydney again, another vessel
    ]
    write_csv(reports, tmp_path / "day.csv")
    write_csv([_r("503000009", 86400 + 5, 0, 0)], tmp_path / "next-day.csv")  # not this day
    ingest(db, [str(tmp_path)])
    return reports


def _fixes(store_root: Path, key: str) -> list[Report]:
    data = (store_root / key).read_bytes()
    return [item for _, item in decode_fixes(data)]  # type: ignore[misc]


def test_the_layout_of_a_day(db: Database, tmp_path: Path, small_day: list[Report]) -> None:
    root = tmp_path / "index"
    store = open_store(root.as_uri())
    with db.connect() as conn:
        assert gi.prefixes(conn, DAY) == ["ALL", "r", "w"]
        results = gi.export_day(conn, store, DAY)
    assert sum(r.reports for r in results if r.prefix != "ALL") == 7
    assert next(r for r in results if r.prefix == "ALL").reports == 7
    # the whole day, every report, time order
    whole = _fixes(root, "ALL/block-1d/sample-1s/2026-12-01T00:00:00Z")
    assert [r.time_ms for r in whole] == sorted(r.time_ms for r in small_day)
    # sampled hourly: each vessel's first report in each hour
    hourly = _fixes(root, "ALL/block-1d/sample-1h/2026-12-01T00:00:00Z")
    assert [(dict(r.ids)["mmsi"], r.time_ms // 1000 % 86400) for r in hourly] == [
        ("503000003", 5), ("503000001", 10), ("503000002", 20), ("503000001", 3700),
        ("503000002", 86000)]
    # a geohash cell: Sydney's first characters, in the block of the first minute
    sydney = reference_geohash(-33.85, 151.25, 3)
    minute = _fixes(root, f"{sydney}/block-1m/sample-1s/2026-12-01T00:00:00Z")
    assert {dict(r.ids)["mmsi"] for r in minute} == {"503000001", "503000003"}
    # samples never larger than the block
    assert not (root / f"{sydney}/block-1m/sample-1h").exists()
    assert (root / f"{sydney}/block-1h/sample-1h").is_dir()
    # full-length cells exist (length 10)
    ten = reference_geohash(-33.85, 151.25, 10)
    assert (root / ten / "block-1s" / "sample-1s" / "2026-12-01T00:00:10Z").is_file()
    # copies per identifier, both of a vessel's identifiers, unsampled
    for ident in ("mmsi503000001", "imo9300001"):
        copy = _fixes(root, f"{ident}/ALL/1d/2026-12-01T00:00:00Z")
        assert [r.time_ms // 1000 % 86400 for r in copy] == [10, 40, 3700]
    assert (root / f"mmsi503000002/{reference_geohash(1.26, 103.84, 2)}/1h/"
                   "2026-12-01T00:00:00Z").is_file()
    assert not list(root.glob("mmsi503000009*"))  # the next day's vessel is not in this one


def test_the_items_run_on_the_queue(db: Database, tmp_path: Path,
                                    small_day: list[Report]) -> None:
    root = tmp_path / "index"
    with db.connect() as conn:
        run = plan_index(conn, DAY, root.as_uri())
        conn.commit()
    assert run.items == 3
    stats = run_worker(db.url, kinds=[INDEX_KIND], until_empty=True)
    assert (stats.done, stats.failed) == (3, 0)
    assert (root / "ALL/block-1d/sample-1d/2026-12-01T00:00:00Z").is_file()
    with db.connect() as conn:
        assert plan_index(conn, date(2027, 1, 1), root.as_uri()).items == 0


def test_pack_bounds_objects_and_fills_the_fewest() -> None:
    hashes = ["r3gx1", "r3gx2", "r3gy1", "r3gz1", "r3gz2", "w21z1", "w21z2", "w21z3"]
    objects = bounded_index.pack(list(range(len(hashes))), hashes, 3)
    assert all(len(held) <= 3 for _, held in objects)
    assert sorted(i for _, held in objects for i in held) == list(range(len(hashes)))
    # ALL (8) splits into r (5) and w (3): w is one object; r splits into r3g (5) -> its
    # children x (2), y (1), z (2) packed into two objects (the fewest of at most 3)
    assert sorted(sorted(cells) for cells, _ in objects) == [
        ["r3gx", "r3gy"], ["r3gz"], ["w"]] or len(objects) == 3
    assert bounded_index.pack([0, 1], hashes, 3) == [(["ALL"], [0, 1])]
    same = ["s000000000"] * 5
    assert [len(h) for _, h in bounded_index.pack(list(range(5)), same, 2)] == [2, 2, 1]


def test_bounded_index_covers_every_report(db: Database, tmp_path: Path,
                                           small_day: list[Report]) -> None:
    root = tmp_path / "bounded"
    store = open_store(root.as_uri())
    with db.connect() as conn:
        result = bounded_index.export_bounded(conn, store, DAY, 2)
    assert result.reports == 7 and result.objects > 0
    for manifest_path in (p for p in root.rglob("*.json") if not p.name.startswith(".")):
        manifest = json.loads(manifest_path.read_text())
        for key, n in manifest["objects"].items():
            assert 0 < n <= 2 and len(_fixes(root, key)) == n
    # every report of the day is found through the 1 s / 1 s manifest of its second, by the
    # longest prefix of its geohash, in an object that holds it
    for r in small_day:
        start = gi._iso(r.time_ms // 1000)
        manifest = json.loads((root / f"bounded-2/sample-1s/block-1s/{start}.json").read_text())
        gh = reference_geohash(r.lat, r.lon, 10)
        cell = next(gh[:n] or "ALL" for n in range(10, -1, -1)
                    if (gh[:n] or "ALL") in manifest["cells"])
        held = [x for key in manifest["cells"][cell] for x in _fixes(root, key)]
        assert any(x.time_ms == r.time_ms and abs(x.lat - r.lat) < 1e-4 for x in held)
    # a small block inside a larger block's whole object points to it, writing nothing
    hour = json.loads((root / "bounded-2/sample-1s/block-1h/2026-12-01T01:00:00Z.json")
                      .read_text())
    assert hour["objects"] == {}
