"""The day enrichment (renderer.sensors_enrich_day) against the definitions of issue 7."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer.db import Database
from renderer.sensors import query
from renderer.sensors.enrich import pending_days
from tests.factories import add_sensor_days, add_sensor_rows
from tests.test_sensors_fixtures import at, enrich, enriched, epoch, reference, sql

DAY = date(2026, 1, 5)
NEXT = DAY + timedelta(days=1)
MIDNIGHT = epoch(at(NEXT))


def put(db: Database, rows: list[tuple[int, float, Any]]) -> None:
    """Raw rows (detector, epoch seconds, speed) straight into sensors_raw (DAY's partition
    made even without rows)."""
    with db.connect() as conn:
        add_sensor_rows(conn, rows, days=[DAY])
        conn.commit()


def _clear(db: Database) -> None:
    sql(db, "TRUNCATE sensors_raw, sensors_enriched, sensors_days")


# A detector's records around midnight: irregular gaps (seconds), speeds near the thresholds
# (whole and fractional: loop detectors report means over lanes), missing speeds, sometimes a
# record days before (previousspeed reaches back past the context).
_speed = st.one_of(st.none(),
                   st.sampled_from([0, 20, 39, 40, 41, 60, 61, 80, 249, 250, 251]),
                   st.sampled_from(["39.99", "40.01", "40.25", "60.25", "80.25", "75.5",
                                    "71.0", "33.5", "81.25", "249.99", "250.01", "0.01"]),
                   st.integers(0, 300), st.integers(0, 30000).map(lambda h: Decimal(h) / 100))
_detector = st.tuples(st.booleans(), st.integers(-3000, 600),
                      st.lists(st.tuples(st.integers(1, 400), _speed), min_size=1, max_size=40))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(detectors=st.lists(_detector, min_size=1, max_size=3))
def test_matches_the_definitions_across_midnight(db: Database, detectors: list) -> None:
    _clear(db)
    rows, expected = [], {}
    for uid, (old, offset, steps) in enumerate(detectors, start=1):
        records: list[tuple[float, Any]] = [(MIDNIGHT - 2.5 * 86400, 55)] if old else []
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
        # exact: the same doubles, not approximately equal ones
        assert row["previousspeed"] == want.previousspeed
        assert row["speeddiffindicator"] == want.speeddiffindicator
        assert row["trafficjamindicator"] == want.trafficjamindicator
        assert row["avgspeed2minutes"] == want.avgspeed2minutes
        assert row["avgspeed10minutes"] == want.avgspeed10minutes


@pytest.mark.parametrize("speeds,jam", [
    ((40, 40), 1), ((38, 42), 1), ((40, 41), 0), ((39, 42), 0), ((41, 41), 0),
    ((250, 250), 0), ((250, 251), -1), ((None, None), -1), ((0, None), 1),
])
def test_jam_indicator_thresholds(db: Database, speeds: tuple, jam: int) -> None:
    t = epoch(at(DAY, 8))
    put(db, [(1, t, speeds[0]), (1, t + 60, speeds[1])])
    enrich(db, DAY)
    assert enriched(db)[-1]["trafficjamindicator"] == jam  # mean of both, 60 s apart


def test_fractional_speeds_as_the_reference_prints_them(db: Database) -> None:
    """Issue 13's example: the mean of 80.25, 75.5 and 71.0 is 75.58333333333333 (the
    double nearest 226.75 / 3, printed as its shortest repr); speeds stay exact."""
    t = epoch(at(DAY, 8))
    put(db, [(1, t, "80.25"), (1, t + 60, "75.5"), (1, t + 120, "71.0")])
    enrich(db, DAY)
    rows = sql(db, "SELECT currentspeed::text AS s, previousspeed::text AS p,"
                   " avgspeed2minutes::text AS a2, avgspeed10minutes::text AS a10,"
                   " speeddiffindicator AS d, trafficjamindicator AS j"
                   " FROM sensors_enriched ORDER BY recordtimestamp")
    assert [(r["s"], r["p"], r["a2"], r["a10"], r["d"], r["j"]) for r in rows] == [
        ("80.25", None, "80.25", "80.25", 0, 0),
        ("75.5", "80.25", "77.875", "77.875", 0, 0),
        ("71", "75.5", "75.58333333333333", "75.58333333333333", 0, 0)]
    assert enriched(db)[-1]["avgspeed2minutes"] == 75.58333333333333
    with db.connect() as conn:  # `sensors query` prints them so too
        found = query.rows(conn, 1, at(DAY), at(DAY, 23))
    last = query.to_csv(found).splitlines()[-1].split(",")
    assert last[2] == "71.0" and last[4] == "75.5" and last[-2:] == ["75.58333333333333"] * 2


@pytest.mark.parametrize("previous,current,diff", [
    ("60.25", "80.25", 1), ("60.26", "80.25", 0), ("80.25", "60.25", -1),
    ("80.24", "60.25", 0), ("0.01", "20.01", 1), ("20", "0.01", 0),
])
def test_speed_difference_is_compared_exactly_at_20(db: Database, previous: str, current: str,
                                                    diff: int) -> None:
    t = epoch(at(DAY, 8))
    put(db, [(1, t, previous), (1, t + 60, current)])
    enrich(db, DAY)
    last = enriched(db)[-1]
    assert last["speeddiffindicator"] == diff
    assert last["previousspeed"] == float(previous) and last["currentspeed"] == float(current)


@pytest.mark.parametrize("speeds,jam", [
    (("40.01", "39.99"), 1), (("40.01", "40.00"), 0),
    (("249.99", "250.01"), 0), (("250", "250.01"), -1), (("0.01", "0.01"), 1),
])
def test_jam_indicator_compares_fractional_means_exactly(db: Database, speeds: tuple,
                                                         jam: int) -> None:
    t = epoch(at(DAY, 8))
    put(db, [(1, t, speeds[0]), (1, t + 60, speeds[1])])
    enrich(db, DAY)
    assert enriched(db)[-1]["trafficjamindicator"] == jam


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
