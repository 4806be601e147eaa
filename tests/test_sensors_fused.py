"""A fresh day enriched by the ingest that brings it (renderer/sensors/fused.py): the same
rows, byte for byte, and the same day records as storing the raw rows and leaving the day to
its day item; a late file takes the day item's route; a crash in the middle loses nothing."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer.db import Database
from renderer.sensors import fused, sample
from renderer.sensors.day import enrich_item
from renderer.sensors.enrich import pending_days
from renderer.sensors.ingest import ingest
from renderer.sensors.rows import raw_columns, sort_by_key
from renderer.sensors.validate import CLASSES
from tests.test_sensors_fixtures import at, minute_rows, sql, write_csv

DAY = date(2026, 1, 5)


@st.composite
def _keys(draw: st.DrawFn) -> list[tuple[int, int, bool]]:
    """(detector, minute, context?) rows: context minutes before the day, day minutes in it."""
    rows = draw(st.sets(st.tuples(st.integers(1, 6), st.integers(-10, 30)), max_size=60))
    return [(u, m, m < 0) for u, m in rows]


def _table(rows: list[tuple[int, int, bool]]) -> pa.Table:
    micros = [(DAY - date(1970, 1, 1)).days * 86_400_000_000 + m * 60_000_000
              for _, m, _ in rows]
    return pa.table({
        "uniqueid": pa.array([u for u, _, _ in rows], pa.int32()),
        "recordtimestamp": pa.array(micros, pa.timestamp("us", tz="UTC")),
        "currentspeed_hundredths": pa.array([None if m % 3 == 0 else 100 * m + u
                                             for u, m, _ in rows], pa.int32()),
        "bezettingsgraad": pa.array([m / 4 for _, m, _ in rows], pa.float32()),
        **{c: pa.array([u * m for u, m, _ in rows], pa.int32())
           for c in CLASSES}})


@settings(max_examples=200, deadline=None)
@given(_keys())
def test_the_merge_is_the_sort_of_both(rows: list[tuple[int, int, bool]]) -> None:
    context = sort_by_key(_table([r for r in rows if r[2]]))
    day = sort_by_key(_table([r for r in rows if not r[2]]))
    merged = fused.merge_columns(raw_columns(context, 0)[:9], raw_columns(day, 0)[:9])
    expected = raw_columns(sort_by_key(_table(rows)), 0)[:9]
    for (values, width, valid), (want, want_width, want_valid) in zip(
            merged, expected, strict=True):
        assert width == want_width
        ok = np.ones(len(want), np.uint8) if want_valid is None else want_valid
        assert (np.ones(len(values), np.uint8) if valid is None else valid).tolist() == \
            ok.tolist()
        assert values.tobytes() == want.tobytes()


def _state(db: Database) -> dict[str, list[Any]]:
    return {
        "enriched": sql(db, "SELECT row(e.*)::text FROM sensors_enriched e"
                            " ORDER BY uniqueid, recordtimestamp"),
        "days": sql(db, "SELECT day, raw_version, enriched_version, enriched_rows,"
                        " ingest_enriched FROM sensors_days ORDER BY day"),
        "raw": sql(db, "SELECT count(*), sum(currentspeed_hundredths) FROM sensors_raw"),
        "files": sql(db, "SELECT key, status, rows_accepted FROM sensors_files ORDER BY key"),
    }


def _day_items(db: Database) -> list[date]:
    """What the day items of an ETL run after an ingest do, each committed; the days they
    computed (the others ingest had enriched)."""
    computed = []
    with db.connect() as conn:
        for day, _ in pending_days(conn):
            if enrich_item(conn, day)[1]:
                computed.append(day)
            conn.commit()
        assert pending_days(conn) == []
    return computed


def _files(tmp_path: Path, seed: int) -> list[list[str]]:
    """Steps of files: fresh days in order (each with the day before as context), a file
    across a midnight (a late day and a fresh one), a late file for an enriched day, and a
    fresh day whose file repeats a row (the upsert route)."""
    stats = sample.generate(tmp_path / "in", detectors=4, days=3, seed=seed, start=DAY)
    end = DAY + timedelta(days=3)
    across = write_csv(tmp_path / "across.csv", [
        *minute_rows(7, at(end) - timedelta(minutes=30), 60),
        *minute_rows(1001, at(end) - timedelta(minutes=5), 20, skip=[3])])
    late = write_csv(tmp_path / "late.csv",
                     minute_rows(8, at(DAY, 23, 55), 3, speed=lambda m: 10 + 30 * m))
    twice = minute_rows(9, at(end + timedelta(days=1)), 30)
    repeated = write_csv(tmp_path / "repeated.csv", [*twice, twice[4]])
    return [*([str(f)] for f in stats.files), [str(across)], [str(late)], [str(repeated)]]


@pytest.mark.parametrize("seed", [1, 16])
def test_fused_days_equal_the_day_items(db: Database, fresh_database_url: str,
                                        tmp_path: Path, seed: int) -> None:
    staged = Database(fresh_database_url)
    fused_days, item_days = [], []
    for step in _files(tmp_path, seed):
        report = ingest(db, step)
        fused_days.append(list(report.files[0].enriched))
        item_days.append(_day_items(db))
        assert not ingest(staged, step, enrich=False).files[0].enriched
        assert _day_items(staged) == sorted(item_days[-1] + fused_days[-1])
        assert _state(db) == _state(staged)
    end = DAY + timedelta(days=3)
    # the sample's days and the new day after midnight fused; the late days by day items
    assert fused_days == [[DAY], [DAY + timedelta(days=1)], [DAY + timedelta(days=2)],
                          [end], [], []]
    assert item_days == [[], [], [], [end - timedelta(days=1)], [DAY], [end + timedelta(1)]]
    assert len(_state(db)["enriched"]) > 3 * 4 * 1400


def test_a_crash_before_the_commit_loses_nothing(db: Database, fresh_database_url: str,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    files = [str(f) for f in sample.generate(tmp_path / "in", detectors=3, days=2,
                                             start=DAY).files]
    real = fused.enrich_day_from

    def crash(*args: Any) -> int:
        real(*args)  # the day computed and swapped in, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(fused, "enrich_day_from", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(db, files[:1])
    assert _state(db)["files"] == [] and _state(db)["enriched"] == []
    assert _state(db)["raw"] == [{"count": 0, "sum": None}]
    monkeypatch.setattr(fused, "enrich_day_from", real)
    assert [f.enriched for f in ingest(db, files).files] == [(DAY,), (DAY + timedelta(1),)]
    staged = Database(fresh_database_url)
    ingest(staged, files, enrich=False)
    assert _day_items(staged) == [DAY, DAY + timedelta(1)]
    assert _day_items(db) == []
    assert _state(db) == _state(staged)
    assert [f.status for f in ingest(db, files).files] == ["skipped", "skipped"]
