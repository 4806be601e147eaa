"""OpenTraffic's arithmetic at its edges: halves rounded away from zero (Python 2's round()),
in the SQL, its Python twin and the exported tiles; the "no next segment" id of the .nex files.

Expected values are computed by hand in the comments (OpenTraffic's make_speeds.py: speed =
length / shortest mean duration * 3.6, delay = mean duration - shortest, queue length = mean
queue code / 255 * length, each int(round(x)) under Python 2).
"""

from __future__ import annotations

import gzip
import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer import binning
from renderer.db import Database
from renderer.formats.speedtiles import HOURS_PER_WEEK, SubTile, decode_speed_tile
from renderer.storage import open_store
from renderer.traffic import export, speedtile
from renderer.traffic.speedtile import SegmentWeek, prevalence, round_half_away
from tests.conftest import truncate_all
from tests.test_traffic_speedtile import FIRST, Row, add_histograms, add_lengths, build, code, seg
from tests.test_traffic_speedtile import speeds as stored_speeds

# --- round_half_away is Python 2's round() ------------------------------------------------

def python2_round(x: float) -> int:
    """Python 2's round(x) to an integer: the float's exact value, halves away from zero
    (decimal's ROUND_HALF_UP rounds magnitudes, so it is away from zero for negatives too)."""
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@given(st.one_of(st.floats(-1e15, 1e15, allow_nan=False),
                 st.integers(-10**6, 10**6).map(lambda k: k + 0.5),  # exact halves
                 st.integers(-10**6, 10**6).map(lambda k: k / 4)))
def test_round_half_away_is_python2_round(x: float) -> None:
    assert round_half_away(x) == python2_round(x)


def test_round_half_away_edges() -> None:
    assert [round_half_away(x) for x in (22.5, 23.5, 0.5, 1.5, 2.5, -2.5, 0.0)] == [
        23, 24, 1, 2, 3, -3, 0]
    # the float just below a half stays down, where floor(x + 0.5) rounds it up
    below = 0.49999999999999994
    assert round_half_away(below) == 0 and int(below + 0.5) == 1
    assert [round(x) for x in (22.5, 2.5)] == [22, 2]  # Python 3: halves to even


def test_postgresql_rounds_float8_halves_to_even_and_numeric_away(db: Database) -> None:
    # Why the SQL spells its rounding out: round(float8) is rint(), halves to even.
    with db.connect() as conn:
        row = conn.execute("SELECT round(22.5::float8) AS f, round(22.5::numeric) AS n,"
                           " floor(0.49999999999999994::float8 + 0.5) AS naive").fetchone()
    assert row is not None
    assert (row["f"], row["n"], row["naive"]) == (22, 23, 1)


def _halves_and_neighbours() -> st.SearchStrategy[float]:
    def around(x: float, steps: int) -> float:
        for _ in range(abs(steps)):
            x = math.nextafter(x, math.inf if steps > 0 else 0.0)
        return x

    halves = st.builds(around,
                       st.integers(0, 2**53).map(lambda k: k + 0.5 if k < 2**52 else float(k)),
                       st.integers(-3, 3))
    return st.one_of(halves, st.floats(0, 2**60, allow_nan=False, allow_infinity=False))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_halves_and_neighbours(), min_size=1, max_size=200))
def test_the_sql_rounding_expression_is_round_half_away(db: Database,
                                                        values: list[float]) -> None:
    # the form sql/traffic_speedtile.sql writes for every rounded value
    with db.connect() as conn:
        rows = conn.execute("SELECT floor(x + 0.49999999999999994::float8)::bigint AS r"
                            " FROM unnest(%s::float8[]) WITH ORDINALITY AS u(x, i) ORDER BY i",
                            [values]).fetchall()
    assert [int(r["r"]) for r in rows] == [round_half_away(x) for x in values]
    assert 0.49999999999999994 == 0.5 - 2**-54  # the double just below 0.5


# --- hand-computed week with exact halves -------------------------------------------------

A, B, C = seg(1), seg(2), seg(3)
X, Z = seg(40), seg(41)
HALVES: list[Row] = [
    # A, 25 m, hour 0: one trip of 4 s that ended on A: 25 / 4 * 3.6 = 22.5 km/h
    (A, None, FIRST, code(4), 0, 1),
    # B, 25 m, hour 1: into X twice in 4 s, queue codes 51 and 0; into Z in 6 s and 7 s
    (B, X, FIRST + 1, code(4), 51, 1),
    (B, X, FIRST + 1, code(4), 0, 1),
    (B, Z, FIRST + 1, code(6), 0, 1),
    (B, Z, FIRST + 1, code(7), 0, 1),
    # C, 880 m, hour 2: durations over 197 s (5 s buckets) and one of 600 s (bucket 592)
    (C, X, FIRST + 2, code(197), 0, 1),
    (C, X, FIRST + 2, code(212), 0, 1),
    (C, Z, FIRST + 2, code(192), 0, 1),
    (C, None, FIRST + 2, code(600), 0, 1),
]
LENGTHS = {A: 25, B: 25, C: 880}


def _speed_variance(length: int, mean_durations: list[Fraction]) -> int:
    """Population variance of the per-next-segment speeds 3.6 * length / mean duration."""
    v = [Fraction(36, 10) * length / d for d in mean_durations]
    mean = sum(v) / len(v)
    return round_half_away(float(sum((x - mean) ** 2 for x in v) / len(v)))


EXPECTED = {
    A: {"hours": [0], "speeds": [23],  # 22.5; half to even wrote 22
        "speed_variances": [0], "next_ids": [None], "delays": [0], "delay_variances": [0],
        "queue_lengths": [0], "queue_length_variances": [0]},
    B: {"hours": [1],
        "speeds": [23],  # min duration 4 s: 22.5
        "mean_speeds": [18],  # (2 * 22.5 + 2 * 25 / 6.5 * 3.6) / 4 = 18.17
        # speeds 22.5 and 13.85 km/h: ((22.5 - 13.85) / 2)^2 = 18.72; OpenTraffic took the
        # variance of the rounded speeds, 23 and 14: 20.25 -> 20 (docs/opentraffic.md)
        "speed_variances": [_speed_variance(25, [Fraction(4), Fraction(13, 2)])],
        "next_ids": [X, Z], "next_counts": [2, 2],
        "delays": [0, 3],  # Z: 6.5 - 4 = 2.5; half to even wrote 2
        "delay_variances": [0, 0],  # Z: 6 and 7 s, 0.25
        "queue_lengths": [3, 0],  # X: mean code 25.5 / 255 * 25 m = 2.5; half to even: 2
        "queue_length_variances": [6, 0]},  # X: codes 51 and 0 -> 0 and 5 m: 6.25
    C: {"hours": [2],
        "speeds": [17],  # 880 / 192 * 3.6 = 16.5; half to even wrote 16
        "speed_variances": [_speed_variance(
            880, [Fraction(409, 2), Fraction(192), Fraction(592)])],
        "next_ids": [X, Z, None], "next_counts": [2, 1, 1],
        "delays": [13, 0, 400],  # X: (197 + 212) / 2 - 192 = 12.5; half to even: 12
        "delay_variances": [56, 0, 0],  # X: 197 and 212 s: 7.5^2 = 56.25
        "queue_lengths": [0, 0, 0], "queue_length_variances": [0, 0, 0]},
}


def _check(week: SegmentWeek, expected: dict[str, list[int | None]]) -> None:
    for name, values in expected.items():
        assert getattr(week, name) == values, name


def test_halves_round_away_from_zero_in_sql_and_twin(db: Database) -> None:
    with db.connect() as conn:
        add_histograms(conn, HALVES)
        add_lengths(conn, LENGTHS)
        conn.commit()
    build(db)
    got = stored_speeds(db)
    twin = speedtile.speeds_from_histograms(HALVES, LENGTHS, FIRST)
    assert EXPECTED[C]["speed_variances"] == [25]  # 15.49, 16.5, 5.35 km/h: 25.35
    assert EXPECTED[B]["speed_variances"] == [19]
    for segment_id, expected in EXPECTED.items():
        _check(got[segment_id], expected)
        _check(twin[segment_id], expected)
    assert got[C].prevalences == [prevalence(4, C, 2, FIRST)]


def test_the_exported_tiles_hold_the_rounded_values(db: Database, tmp_path: Path) -> None:
    with db.connect() as conn:
        add_histograms(conn, HALVES)
        add_lengths(conn, LENGTHS)
        conn.commit()
    result = build(db)
    store = open_store(str(tmp_path))
    with db.connect() as conn:
        export.export_speed_week(conn, store, result)

    def read(key: str) -> SubTile:
        (sub,) = decode_speed_tile(gzip.decompress(store.get(key)))
        return sub

    info = store.head("2016/44/0/002/140.spd.0.gz")
    assert info is not None and info.content_type == export.CONTENT_TYPE == "application/gzip"
    spd = read("2016/44/0/002/140.spd.0.gz").arrays
    nex = read("2016/44/0/002/140.nex.0.gz").arrays
    slot = {s: (s >> 25) * HOURS_PER_WEEK + EXPECTED[s]["hours"][0] for s in EXPECTED}
    assert [spd["speeds"][slot[s]] for s in (A, B, C)] == [23, 23, 17]
    assert [spd["next_segment_counts"][slot[s]] for s in (A, B, C)] == [1, 2, 3]
    assert [spd["next_segment_indices"][slot[s]] for s in (A, B, C)] == [0, 1, 3]
    no_next = 0x3FFFFFFFFFF  # OpenTraffic's INVALID_NEXT_SEGMENT_ID, 2^42 - 1
    assert nex["next_segment_ids"] == [no_next, X, Z, X, Z, no_next]
    assert nex["next_segment_delays"] == [0, 0, 3, 13, 0, 400]
    assert nex["next_segment_delay_variances"] == [0, 0, 0, 56, 0, 0]
    assert nex["next_segment_queue_lengths"] == [0, 3, 0, 0, 0, 0]
    assert nex["next_segment_queue_length_variances"] == [0, 6, 0, 0, 0, 0]


# --- the SQL equals its twin on weeks made of halves ---------------------------------------

# lengths and durations whose speeds, delays and queue lengths land on exact halves often
_LENGTHS = st.sampled_from([5, 15, 25, 35, 45, 125, 720, 880, 1040])
_SECONDS = st.sampled_from([4, 5, 6, 7, 8, 10, 16, 20, 40, 192, 197, 202, 212, 600])


@st.composite
def _half_weeks(draw: st.DrawFn) -> tuple[list[Row], dict[int, int]]:
    segments = [seg(i) for i in range(1, draw(st.integers(1, 4)) + 1)]
    nexts = [None, seg(50), seg(51)]
    bins: dict[tuple[int, int | None, int, int, int], int] = {}
    for _ in range(draw(st.integers(1, 14))):
        key = (draw(st.sampled_from(segments)), draw(st.sampled_from(nexts)),
               FIRST + draw(st.integers(0, 2)), code(draw(_SECONDS)),
               draw(st.sampled_from([0, 0, 51, 102, 255])))
        bins[key] = bins.get(key, 0) + draw(st.integers(1, 3))
    lengths = {s: draw(_LENGTHS) for s in segments}
    return [(*k, c) for k, c in bins.items()], lengths


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(week=_half_weeks())
def test_sql_equals_the_twin_at_halves(db: Database, database_url: str,
                                       week: tuple[list[Row], dict[int, int]]) -> None:
    rows, lengths = week
    truncate_all(database_url)
    with db.connect() as conn:
        add_histograms(conn, rows)
        add_lengths(conn, lengths)
        conn.commit()
    build(db)
    got = stored_speeds(db)
    want = speedtile.speeds_from_histograms(rows, lengths, FIRST)
    assert set(got) == set(want)
    for segment_id, expected in want.items():
        actual = got[segment_id]
        for name in SegmentWeek.__dataclass_fields__:
            a, b = getattr(actual, name), getattr(expected, name)
            if name in ("mean_speeds", "speed_variances"):  # float sums in another order
                assert all(abs(x - y) <= 1 for x, y in zip(a, b, strict=True)), name
            else:
                assert a == b, (segment_id, name)
        # every speed is Python 2's round of OpenTraffic's float, length / duration * 3.6
        for how, speed in zip(expected.hours, expected.speeds, strict=True):
            sums: dict[int | None, list[int]] = {}
            for s, nxt, h, code_, _, count in rows:
                if s == segment_id and h == FIRST + how:
                    total = sums.setdefault(nxt, [0, 0])
                    total[0] += count
                    total[1] += count * binning.duration_seconds(code_)
            shortest = min(d / n for n, d in sums.values())
            opentraffic = python2_round(lengths[segment_id] / shortest * 3.6)
            assert speed == (opentraffic if opentraffic <= speedtile.MAX_SPEED else 0)


@pytest.mark.parametrize(("length", "seconds", "written"),
                         [(25, 4, 23), (880, 192, 17), (1040, 192, 20), (720, 192, 14),
                          (45, 6, 27)])
def test_speed_of_one_trip_is_python2_round(length: int, seconds: int, written: int) -> None:
    rows: list[Row] = [(seg(1), None, FIRST, code(seconds), 0, 1)]
    week = speedtile.speeds_from_histograms(rows, {seg(1): length}, FIRST)[seg(1)]
    assert week.speeds == [written] == [python2_round(length / seconds * 3.6)]
