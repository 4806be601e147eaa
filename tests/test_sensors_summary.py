"""The day page's summary per detector (``sensors_day_detectors``): written by every
enrichment path (the C kernel's pass on a day item and on ingest's fresh day, the SQL
aggregate after the SQL engine), equal to what the one definition of the figures
(``renderer.sensors_day_detectors_fill``) gives for every detector of the day, replaced with
the day, and absent (the page filling it on its first view) when a previous release enriched
the day."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from renderer.db import Database, query
from renderer.sensors import sample
from renderer.sensors.day import enrich_item
from renderer.sensors.ingest import ingest
from renderer.web.sensor_pages import day_data
from tests.factories import add_sensor_days, add_sensor_rows
from tests.test_sensors_fixtures import enrich, sql

DAY = date(2026, 1, 5)
COLUMNS = ("uniqueid", "jam_minutes", "readings", "mean_speed", "lowest_mean10", "first_jam",
           "last_jam", "mean_by_10_minutes")


def _aggregated(db: Database, day: date) -> list[tuple[Any, ...]]:
    """Every detector of the day by the SQL aggregate (the SQL engine's and the page's), in
    a transaction rolled back."""
    with db.connect() as conn:
        conn.execute("DELETE FROM sensors_day_detectors WHERE day = %(day)s", {"day": day})
        conn.execute(query("web_sensors.day_fill"), {"day": day})
        rows = conn.execute(query("web_sensors.day_ranking"),
                            {"day": day, "limit": 1_000_000}).fetchall()
        conn.rollback()
    return [tuple(r[c] for c in COLUMNS) for r in rows]


def _summary(db: Database, day: date) -> list[tuple[Any, ...]]:
    rows = sql(db, "SELECT * FROM sensors_day_detectors WHERE day = %(day)s"
                   " ORDER BY jam_minutes DESC, uniqueid", {"day": day})
    return [tuple(r[c] for c in COLUMNS) for r in rows]


def _epoch(day: date, second: float) -> float:
    return datetime.combine(day, datetime.min.time(), UTC).timestamp() + second


def _hostile_day(seed: int) -> list[tuple[int, float, Any]]:
    """Raw rows of DAY and the evening before: gaps, NULL speeds, several readings in a
    minute, speeds with two decimals, jams from the first instant of the day (the context's
    slow minutes) to its last second, a detector without any speed, one with a single row."""
    rng = random.Random(seed)
    rows: list[tuple[int, float, Any]] = []
    for second in range(-900, 0, 60):  # the context: slow
        rows.append((1, _epoch(DAY, second), 12))
    for second in range(0, 86_400, 60):
        if rng.random() < 0.1:
            continue  # a gap
        jam = second < 300 or second >= 86_100 or 36_000 <= second < 37_800
        speed = rng.choice([None, 15.25, 30, 38.5]) if jam else rng.choice(
            [None, 45, 81.25, 99.99, 120, 33.5, 62.75])
        rows.append((1, _epoch(DAY, second), speed))
        rows.append((2, _epoch(DAY, second + 7), None))  # no speed all day
    for second in range(0, 86_400, 20):  # three readings a minute
        if rng.random() < 0.05:
            continue
        rows.append((3, _epoch(DAY, second), rng.choice([None, 10, 35.75, 60, 90.5])))
    rows.append((3, _epoch(DAY, 86_399), 5))  # the day's last second, jammed
    rows.append((4, _epoch(DAY, 43_210), 77.77))
    for detector in range(5, 12):
        for second in range(rng.randrange(0, 3600), 86_400, rng.choice([60, 120, 600])):
            rows.append((detector, _epoch(DAY, second),
                         None if rng.random() < 0.03 else rng.randrange(500, 13_000) / 100))
    return rows


def _store(db: Database, seed: int) -> None:
    """The hostile day's raw rows stored, the day waiting to be enriched."""
    with db.connect() as conn:
        add_sensor_rows(conn, _hostile_day(seed))
        add_sensor_days(conn, {DAY: 1})
        conn.commit()


@pytest.mark.parametrize("engine", ["c", "sql"])
def test_the_summary_equals_the_aggregate_on_a_hostile_day(db: Database, engine: str) -> None:
    _store(db, 3)
    with db.connect() as conn:
        enrich_item(conn, DAY, engine)
        conn.commit()
    expected = _aggregated(db, DAY)
    assert len(expected) == 11
    by_id = {r[0]: r for r in expected}
    assert by_id[2][1:5] == (0, sum(1 for r in _hostile_day(3) if r[0] == 2), None, None)
    assert by_id[1][5] == datetime.combine(DAY, datetime.min.time(), UTC)  # jam at 00:00
    assert by_id[3][6] == datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(
        seconds=86_399)
    assert by_id[3][7][143] is not None and by_id[4][7].count(None) == 143
    assert _summary(db, DAY) == expected


def test_the_summary_of_the_sample_by_ingest_and_by_day_items(db: Database,
                                                              tmp_path: Path) -> None:
    made = sample.generate(tmp_path / "in", detectors=5, days=2, seed=7, start=DAY)
    report = ingest(db, [str(f) for f in made.files])
    assert [f.enriched for f in report.files] == [(DAY,), (DAY + timedelta(1),)]  # fused
    days = [DAY, DAY + timedelta(1)]
    fused = {d: _summary(db, d) for d in days}
    for day in days:
        assert len(fused[day]) == 5 and fused[day] == _aggregated(db, day)
    sql(db, "UPDATE sensors_days SET ingest_enriched = NULL")
    enrich(db, *days)  # again, by the day item's C engine: replaced, not added to
    for day in days:
        assert _summary(db, day) == fused[day]


def test_a_day_enriched_by_the_previous_release_is_filled_by_the_page(
        db: Database) -> None:
    _store(db, 5)
    with db.connect() as conn:
        enrich_item(conn, DAY)
        conn.commit()
        assert day_data(conn, DAY)["from_summary"]
        shown = day_data(conn, DAY, limit=4)
    # the previous release's enrichment (its SQL engine, or its C engine's halves) writes no
    # summary: its update of sensors_days clears the day's, which would be stale
    sql(db, "SELECT renderer.sensors_enrich_day(%(day)s)", {"day": DAY})
    assert _summary(db, DAY) == []
    with db.connect() as conn:
        fallback = day_data(conn, DAY, limit=4)
        conn.commit()
    assert not fallback["from_summary"]
    assert fallback["detectors"] == shown["detectors"] and fallback["detectors_total"] == 11
    assert fallback["shown"] == 4
    assert len(_summary(db, DAY)) == 11  # kept: the next view reads it
    with db.connect() as conn:
        assert day_data(conn, DAY, limit=4)["from_summary"]


def test_a_day_enriched_before_the_summary_is_filled_once_by_two_first_views(
        db: Database) -> None:
    """Migration 0038 leaves the days enriched before it without rows; two views at once of
    such a day fill it once (the second waits on the first's lock, then reads its rows)."""
    _store(db, 9)
    enrich(db, DAY)
    written = _summary(db, DAY)
    sql(db, "DELETE FROM sensors_day_detectors")
    with db.connect() as first, db.connect() as second:
        shown = day_data(first, DAY)  # filled, the day's row still locked
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(day_data, second, DAY)
            time.sleep(0.3)
            assert not waiting.done()  # behind the first view's lock, not filling beside it
            first.commit()
            again = waiting.result(timeout=30)
        second.commit()
    assert not shown["from_summary"] and again["detectors"] == shown["detectors"]
    assert _summary(db, DAY) == written == _aggregated(db, DAY)


def test_a_day_made_again_finds_no_rows_in_the_way(db: Database) -> None:
    _store(db, 11)
    enrich(db, DAY)
    sql(db, "DELETE FROM sensors_days")  # the day's record gone, its summary rows left
    enrich(db, DAY)  # its row made again by the enrichment: the old rows cleared first
    assert _summary(db, DAY) == _aggregated(db, DAY)
