"""The day ranking of the sensor pages, its figures by their one definition
(``renderer.sensors_day_detectors_fill``, the SQL engine's and the page's): each 10-minute
slot of the sparkline holds the readings of its own 10 minutes, and the day's rows are read
twice, not once per detector (15 s for a 1,000-detector day before; BENCHMARKS.md)."""

from __future__ import annotations

from datetime import date
from typing import Any

from renderer.db import Database, query
from tests.test_sensors_fixtures import at

DAY = date(2026, 1, 5)


def _put(db: Database, rows: list[tuple[int, int, int, float]]) -> None:
    """Enriched rows (detector, hour, minute, speed) of DAY straight into its partition."""
    with db.connect() as conn:
        conn.execute("SELECT renderer.sensors_day_partition(%s)", [DAY])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO sensors_enriched (uniqueid, recordtimestamp, currentspeed,"
                " trafficjamindicator, speeddiffindicator, avgspeed10minutes)"
                " VALUES (%s, %s, %s, %s, 0, %s)",
                [(d, at(DAY, h, m), s, 1 if s <= 40 else 0, s) for d, h, m, s in rows])
        conn.commit()


def _ranking(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    """The day's summary as the page fills it, ranked."""
    with db.connect() as conn:
        conn.execute(query("web_sensors.day_fill"), {"day": DAY})
        conn.commit()
        return list(conn.execute(query("web_sensors.day_ranking"),
                                 {"day": DAY, "limit": limit}).fetchall())


def test_a_slot_holds_its_own_ten_minutes(db: Database) -> None:
    _put(db, [(1, 0, 0, 30.0), (1, 0, 5, 50.0), (1, 0, 9, 70.0), (1, 0, 10, 90.0),
              (1, 23, 55, 20.0), (1, 23, 59, 40.0)])
    [row] = _ranking(db)
    spark = row["mean_by_10_minutes"]
    assert len(spark) == 144
    assert spark[0] == 50.0  # 00:00, 00:05 and 00:09
    assert spark[1] == 90.0  # 00:10
    assert spark[143] == 30.0  # 23:55 and 23:59: the day's last slot, not a 145th
    assert [i for i, v in enumerate(spark) if v is not None] == [0, 1, 143]


def test_the_day_is_read_twice_not_once_a_detector(db: Database) -> None:
    detectors, minutes = 4, 30
    _put(db, [(d, 8, m, 30.0 + d + m) for d in range(1, detectors + 1) for m in range(minutes)])
    with db.connect() as conn:
        conn.execute(query("web_sensors.day_fill"), {"day": DAY})
        # this transaction's reads of the day's partition so far
        [read] = conn.execute(
            "SELECT sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::bigint"
            " FROM pg_stat_xact_user_tables WHERE relname LIKE 'sensors_enriched%%'"
        ).fetchone().values()
        conn.commit()
    # the day once for the detectors' figures, once more for the 10-minute slots
    assert 0 < read <= 2 * detectors * minutes
    assert len(_ranking(db)) == detectors
