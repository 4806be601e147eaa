"""The day enrichment (renderer.sensors_enrich_day) against the definitions of issue 7."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer.db import Database
from renderer.sensors.enrich import pending_days
from tests.factories import add_sensor_days, add_sensor_rows
from tests.test_sensors_fixtures import at, enrich, enriched, epoch, reference, sql

DAY = date(2026, 1, 5)
NEXT = DAY + timedelta(days=1)
MIDNIGHT = epoch(at(NEXT))


def put(db: Database, rows: list[tuple[int, float, int | None]]) -> None:
    """Raw rows (detector, epoch seconds, speed) straight into sensors_raw (DAY's partition
    made even without rows)."""
    with db.connect() as conn:
        add_sensor_rows(conn, rows, days=[DAY])
        conn.commit()


def _clear(db: Database) -> None:
    sql(db, "TRUNCATE sensors_raw, sensors_enriched, sensors_days")


# A detector's records around midnight: irregular gaps (seconds), speeds near the thresholds,
# missing speeds, sometimes a record days before (previousspeed reaches back past the context).
_speed = st.one_of(st.none(), st.sampled_from([0, 20, 39, 40, 41, 60, 61, 80, 249, 250, 251]),
                   st.integers(0, 300))
_detector = st.tuples(st.booleans(), st.integers(-3000, 600),
                      st.lists(st.tuples(st.integers(1, 400), _speed), min_size=1, max_size=40))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(detectors=st.lists(_detector, min_size=1, max_size=3))
def test_matches_the_definitions_across_midnight(db: Database, detectors: list) -> None:
    _clear(db)
    rows, expected = [], {}
    for uid, (old, offset, steps) in enumerate(detectors, start=1):
        records: list[tuple[float, int | None]] = [(MIDNIGHT - 2.5 * 86400, 55)] if old else []
        t = MIDNIGHT + offset
        for gap, speed in steps:
            records.append((float(t), speed))
            t += gap
        rows += [(uid, t, s) for t, s in records]
        expected[uid] = dict(zip([t for t, _ in records], reference(records), strict=True))
    put(db, rows)
    enrich(db, *sorted({datetime.fromtimestamp(t, UTC).date() for _, t, _ in rows}))
    got = enriched(db)
    assert len(got) == len(rows)
    for row in got:
        want = expected[row["uniqueid"]][row["t"]]
        assert row["previousspeed"] == want.previousspeed
        assert row["speeddiffindicator"] == want.speeddiffindicator
        assert row["trafficjamindicator"] == want.trafficjamindicator
        assert row["avgspeed2minutes"] == pytest.approx(want.avgspeed2minutes)
        assert row["avgspeed10minutes"] == pytest.approx(want.avgspeed10minutes)


@pytest.mark.parametrize("speeds,jam", [
    ((40, 40), 1), ((38, 42), 1), ((40, 41), 0), ((39, 42), 0), ((41, 41), 0),
    ((250, 250), 0), ((250, 251), -1), ((None, None), -1), ((0, None), 1),
])
def test_jam_indicator_thresholds(db: Database, speeds: tuple, jam: int) -> None:
    t = epoch(at(DAY, 8))
    put(db, [(1, t, speeds[0]), (1, t + 60, speeds[1])])
    enrich(db, DAY)
    assert enriched(db)[-1]["trafficjamindicator"] == jam  # mean of both, 60 s apart


def test_missing_minutes_shorten_windows_instead_of_stretching_them(db: Database) -> None:
    t = epoch(at(DAY, 8))
    put(db, [(1, t, 100), (1, t + 60, 100), (1, t + 300, 10), (1, t + 900, 30)])
    enrich(db, DAY)
    rows = enriched(db)
    assert [r["avgspeed2minutes"] for r in rows] == [100, 100, 10, 30]
    assert [r["avgspeed10minutes"] for r in rows] == [100, 100, 70, 20]  # t+900 sees t+300
    assert [r["previousspeed"] for r in rows] == [None, 100, 100, 10]
    assert [r["speeddiffindicator"] for r in rows] == [0, 0, -1, 1]


def test_a_day_sees_the_last_minutes_before_it_but_writes_only_itself(db: Database) -> None:
    put(db, [(1, MIDNIGHT - 600, 100), (1, MIDNIGHT - 60, 20), (1, MIDNIGHT, 80),
             (1, MIDNIGHT + 60, 80)])
    assert enrich(db, NEXT) == [2]
    first, second = enriched(db)
    assert first["t"] == MIDNIGHT and first["previousspeed"] == 20
    assert first["avgspeed2minutes"] == 50 and first["avgspeed10minutes"] == pytest.approx(200 / 3)
    assert second["avgspeed10minutes"] == 60  # MIDNIGHT - 600 s has left its window


def test_previousspeed_reaches_back_past_the_context(db: Database) -> None:
    put(db, [(1, MIDNIGHT - 3 * 86400, 33), (1, MIDNIGHT + 5, 99)])
    enrich(db, NEXT)
    (row,) = enriched(db)
    assert row["previousspeed"] == 33 and row["speeddiffindicator"] == 1
    assert row["avgspeed10minutes"] == 99


def test_rerunning_a_day_replaces_it(db: Database) -> None:
    t = epoch(at(DAY, 12))
    put(db, [(d, t + 60 * m, 50) for d in (1, 2) for m in range(30)])
    assert enrich(db, DAY) == [60]
    put(db, [(1, t + 60 * m, 10) for m in range(30)])
    assert enrich(db, DAY) == [60]
    rows = enriched(db)
    assert len(rows) == 60 and len({(r["uniqueid"], r["t"]) for r in rows}) == 60
    assert {r["avgspeed2minutes"] for r in rows if r["uniqueid"] == 1} == {10}
    sql(db, "DELETE FROM sensors_raw WHERE uniqueid = 2")
    assert enrich(db, DAY) == [30]


def test_pending_days_follow_ingested_versions(db: Database) -> None:
    with db.connect() as conn:
        add_sensor_days(conn, {DAY: 1, NEXT: 3})
        conn.commit()
    with db.connect() as conn:
        assert pending_days(conn) == [(DAY, 1), (NEXT, 3)]
    enrich(db, DAY)
    with db.connect() as conn:
        assert pending_days(conn) == [(NEXT, 3)]
        assert pending_days(conn, DAY, DAY, every=True) == [(DAY, 1)]
