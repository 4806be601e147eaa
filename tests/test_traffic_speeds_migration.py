"""Migration 0037 on a database with speed rows: the arrays other than hours, observations
and speeds become the packed records of renderer/traffic/speedtile_pack.py (the bytes the
engines write), and back."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from renderer import db, schema
from renderer.traffic import speedtile
from renderer.traffic.speedtile import SegmentWeek
from renderer.traffic.speedtile_pack import HOUR_COLUMNS, NEXT_COLUMNS, pack_week, unpack_row
from tests.test_schema import empty_database  # noqa: F401  (fixture)
from tests.test_traffic_speedtile import FIRST, _random_week
from tests.test_traffic_speedtile_c import key_order

OLD = ("length", "hours", "observations", "speeds", *HOUR_COLUMNS[:3], *NEXT_COLUMNS)
EDGE = 7 << 25 | 1234  # a segment with every packed field at the edges of its type


def _weeks() -> dict[int, SegmentWeek]:
    rows, lengths = _random_week(random.Random(21))
    weeks = speedtile.speeds_from_histograms(key_order(rows), lengths, FIRST, min_count=2)
    weeks[EDGE] = SegmentWeek(
        length=None, hours=[0, 1, 167], observations=[1, 2**62, 3], speeds=[0, -1, 32767],
        mean_speeds=[-32768, 32767, -1], speed_variances=[-2**31, 2**31 - 1, 0],
        prevalences=[0, 10, -7], next_hours=[1, 1, 167], next_ids=[None, 2**45, -2**63 + 1],
        next_counts=[2**63 - 1, 1, -1], delays=[-5, 2**31 - 1, -2**31],
        delay_variances=[-2**63, 2**40, 0], queue_lengths=[7, -7, 0],
        queue_length_variances=[1, -1, 2**62])
    return weeks


def _fill_at_0035(url: str, weeks: dict[int, SegmentWeek]) -> None:
    with db.connect(url) as conn:
        for segment_id, week in weeks.items():
            conn.execute(
                f"INSERT INTO traffic_speeds (mode, first_hour, segment_id, {', '.join(OLD)})"
                f" VALUES ('AUTO', %s, %s, {', '.join(['%s'] * len(OLD))})",
                [FIRST, segment_id, *(getattr(week, c) for c in OLD)])
        conn.commit()


def test_existing_speed_rows_are_packed_and_back(
        empty_database: Callable[[], str]) -> None:  # noqa: F811
    url = empty_database()
    schema.upgrade(url, "0035")
    weeks = _weeks()
    assert any(None in w.next_ids for w in weeks.values()) and len(weeks) > 20
    _fill_at_0035(url, weeks)
    schema.upgrade(url)
    with db.connect(url) as conn:
        rows = conn.execute("SELECT * FROM traffic_speeds").fetchall()
        assert {r["segment_id"]: SegmentWeek.from_row(r) for r in rows} == weeks
        for r in rows:
            week = dataclasses.asdict(weeks[r["segment_id"]])
            assert (r["hour_values"], r["nexts"]) == pack_week(week)
            assert r["total_observations"] == sum(week["observations"])
            assert unpack_row(r)["next_segments"] == [week["next_hours"].count(h)
                                                      for h in week["hours"]]
        # what SQL reads of the records: each field at its offset, signed
        edge = conn.execute(
            "SELECT array_agg(renderer.traffic_packed_int(hour_values, 10 * k, 2) ORDER BY k)"
            " AS mean, array_agg(renderer.traffic_packed_int(hour_values, 10 * k + 2, 4)"
            " ORDER BY k) AS variance FROM traffic_speeds, generate_series(0, 2) k"
            " WHERE segment_id = %s", [EDGE]).fetchone()
        assert edge == {"mean": weeks[EDGE].mean_speeds, "variance": weeks[EDGE].speed_variances}
    schema.downgrade(url, "0035")
    with db.connect(url) as conn:
        back = conn.execute(f"SELECT segment_id, {', '.join(OLD)} FROM traffic_speeds").fetchall()
    assert {r["segment_id"]: SegmentWeek(**{c: r[c] for c in OLD}) for r in back} == weeks
