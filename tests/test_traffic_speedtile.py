"""Speed tiles: the bulk SQL against OpenTraffic's rules and against its Python twin.

Histogram rows come from the factories (the histogram stage is tested elsewhere); the
constants and helpers here are reused by the other traffic product tests.
"""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer import binning, tiles
from renderer.db import Database
from renderer.tiles import Tile
from renderer.traffic import speedtile
from renderer.traffic.speedtile import SegmentWeek, TileWeek, jitter, prevalence
from renderer.traffic.speedtile_pack import unpack_row
from tests.factories import add_histograms, add_lengths

WEEK = "2016-W44"
FIRST = 410520  # 2016-10-31 00:00 UTC, Monday
TILE = Tile(0, 2140)
CHILD = tiles.children(TILE)[5]
GRANDCHILD = tiles.children(CHILD)[3]

Row = tuple[int, int | None, int, int, int, int]  # segment, next, hour, duration code, queue, count


def seg(index: int, tile: Tile = TILE) -> int:
    return tiles.segment_id(tile, index)


def code(seconds: int) -> int:
    return binning.duration_code(seconds)


def build(db: Database, tile: Tile = TILE, week: str = WEEK, mode: str = "AUTO",
          **options: Any) -> speedtile.WeekBuild:
    with db.connect() as conn:
        result = speedtile.build(conn, TileWeek(mode, tile, week), **options)
        conn.commit()
    return result


def speeds(db: Database, mode: str = "AUTO", first_hour: int = FIRST) -> dict[int, SegmentWeek]:
    with db.connect() as conn:
        rows = conn.execute("SELECT * FROM traffic_speeds WHERE mode = %s AND first_hour = %s",
                            [mode, first_hour]).fetchall()
    found = {}
    for r in rows:
        week = found[r["segment_id"]] = SegmentWeek.from_row(r)
        # what the packed columns derive (either engine): the hour's next count, the total
        assert unpack_row(r)["next_segments"] == [week.next_hours.count(h) for h in week.hours]
        assert r["total_observations"] == sum(week.observations)
    return found


# --- OpenTraffic's rules on hand-made examples --------------------------------------------

def test_speeds_follow_the_opentraffic_rules(db: Database) -> None:
    s, a, b = seg(7), seg(8), seg(9)
    hour = FIRST + 18  # Monday 18:00
    with db.connect() as conn:
        add_histograms(conn, [
            (s, a, hour, code(10), 51, 2),   # two traversals of 10 s into a, queue 51/255
            (s, b, hour, code(20), 0, 1),    # one of 20 s into b
            (s, None, hour, code(30), 0, 1),  # a trip that ended on s
        ])
        add_lengths(conn, {s: 100})
        conn.commit()
    result = build(db)
    assert result.segments == 1 and result.observations == 4
    week = speeds(db)[s]
    assert week.length == 100
    assert week.hours == [18] and week.observations == [4]
    assert week.speeds == [36]  # 3.6 * 100 m / 10 s, the shortest mean duration
    assert week.mean_speeds == [26]  # (2 * 36 + 18 + 12) / 4 = 25.5, halves away from zero
    assert week.speed_variances == [104]  # of 36, 18 and 12 km/h
    assert week.prevalences == [prevalence(4, s, 18, FIRST)]
    assert week.prevalences[0] in (1, 2, 3)  # bin 2 (<= 6), moved by at most one
    assert week.next_ids == [a, b, None]  # by id, "no next segment" last
    assert week.next_hours == [18, 18, 18]
    assert week.next_counts == [2, 1, 1]
    assert week.delays == [0, 10, 20]
    assert week.queue_lengths == [20, 0, 0]  # 51 / 255 * 100 m
    assert week.delay_variances == [0, 0, 0]


def test_within_next_variances(db: Database) -> None:
    s, a = seg(1), seg(2)
    with db.connect() as conn:
        add_histograms(conn, [(s, a, FIRST, code(10), 0, 1), (s, a, FIRST, code(20), 255, 1)])
        add_lengths(conn, {s: 255})
        conn.commit()
    build(db)
    week = speeds(db)[s]
    assert week.delays == [0]
    assert week.delay_variances == [25]  # durations 10 and 20 s
    assert week.queue_lengths == [128]  # mean code 127.5 -> 127.5 m, halves away from zero
    assert week.queue_length_variances == [16256]  # 0 and 255 m: 127.5^2 = 16256.25


def test_too_fast_is_no_data_and_few_observations_are_hidden(db: Database) -> None:
    fast, rare = seg(1), seg(2)
    with db.connect() as conn:
        add_histograms(conn, [
            (fast, None, FIRST + 1, code(10), 0, 5),   # 1000 m in 10 s: 360 km/h
            (rare, seg(3), FIRST + 2, code(30), 0, 2),  # only 2 observations
            (rare, seg(3), FIRST + 3, code(30), 0, 3),
        ])
        add_lengths(conn, {fast: 1000, rare: 300})
        conn.commit()
    build(db, min_count=3)
    got = speeds(db)
    assert got[fast].speeds == [0] and got[fast].speed_variances == [0]
    assert got[fast].prevalences[0] > 0  # observed, just not plausibly
    assert got[rare].hours == [2, 3] and got[rare].observations == [2, 3]
    assert got[rare].speeds == [0, 36] and got[rare].prevalences[0] == 0
    assert got[rare].next_hours == [3]  # the hidden hour publishes no next segments


def test_length_is_the_segments_table_else_the_most_common_report(db: Database) -> None:
    reported, loaded, unknown = seg(1), seg(2), seg(3)
    with db.connect() as conn:
        add_histograms(conn, [(s, None, FIRST, code(10), 0, 1)
                              for s in (reported, loaded, unknown)])
        conn.execute("INSERT INTO traffic_segment_lengths VALUES (%s, 100, 5), (%s, 120, 9),"
                     " (%s, 130, 9), (%s, 50, 99)", [reported, reported, reported, loaded])
        conn.execute("INSERT INTO traffic_segments VALUES (%s, 200)", [loaded])
        conn.commit()
    build(db)
    got = speeds(db)
    assert got[reported].length == 120  # most observations; ties go to the shorter
    assert got[reported].speeds == [43]
    assert got[loaded].length == 200 and got[loaded].speeds == [72]
    assert got[unknown].length is None and got[unknown].speeds == [0]
    assert got[unknown].prevalences[0] > 0


def test_a_tile_week_covers_its_descendants_one_mode_and_one_week(db: Database) -> None:
    other_tile = Tile(0, 2141)
    rows = [(seg(1), None, FIRST, code(10), 0, 1), (seg(1, CHILD), None, FIRST, code(10), 0, 1),
            (seg(1, GRANDCHILD), None, FIRST, code(10), 0, 1),
            (seg(1, other_tile), None, FIRST, code(10), 0, 1),
            (seg(2), None, FIRST - 1, code(10), 0, 1),  # the week before
            (seg(3), None, FIRST + 168, code(10), 0, 1)]  # the week after
    with db.connect() as conn:
        add_histograms(conn, rows)
        add_histograms(conn, [(seg(4), None, FIRST, code(10), 0, 1)], mode="BUS")
        conn.commit()
    result = build(db)
    assert {t.tile for t in result.tiles} == {TILE, CHILD}
    assert set(speeds(db)) == {seg(1), seg(1, CHILD)}
    result = build(db, max_level=2)
    assert {t.tile for t in result.tiles} == {TILE, CHILD, GRANDCHILD}
    assert set(speeds(db, "BUS")) == set()
    assert set(speeds(db, "AUTO", FIRST + 168)) == set()
    assert {t.tile for t in build(db, tile=CHILD).tiles} == {CHILD}


def test_a_rebuild_replaces_the_week(db: Database) -> None:
    with db.connect() as conn:
        add_histograms(conn, [(seg(1), None, FIRST, code(10), 0, 1),
                              (seg(15_001, CHILD), None, FIRST, code(10), 0, 1)])
        conn.commit()
    first = {t.tile: t for t in build(db).tiles}
    assert first[CHILD].total_segments == 15_002
    with db.connect() as conn:  # late data for the tile, and the child's data withdrawn
        add_histograms(conn, [(seg(1), None, FIRST, code(10), 0, 4)])
        conn.execute("DELETE FROM traffic_histograms WHERE segment_id = %s", [seg(15_001, CHILD)])
        conn.commit()
    second = {t.tile: t for t in build(db).tiles}
    assert second[TILE].observations == 5
    assert second[CHILD].segments == 0 and second[CHILD].old_total_segments == 15_002
    assert set(speeds(db)) == {seg(1)}
    with db.connect() as conn:
        left = conn.execute("SELECT level, tile_index FROM traffic_speed_tiles").fetchall()
    assert left == [{"level": 0, "tile_index": TILE.index}]


def test_min_count_must_be_positive(db: Database) -> None:
    from renderer.errors import InputError

    with pytest.raises(InputError):
        build(db, min_count=0)


# --- the SQL and its Python twin ------------------------------------------------------------

def _random_week(rng: random.Random) -> tuple[list[Row], dict[int, int]]:
    segments = [seg(i) for i in rng.sample(range(30_000), 25)]
    segments += [seg(i, CHILD) for i in rng.sample(range(30_000), 15)]
    bins: dict[tuple[int, int | None, int, int, int], int] = {}
    for _ in range(1500):
        s = rng.choice(segments)
        nxt = rng.choice([None, *segments[:6]])
        key = (s, nxt, FIRST + rng.choice([0, 7, 8, 17, 18, 100, 167]),
               rng.choice([0, 1, 5, 40, 63, 64, 100, 191, 200, 255]),
               rng.choice([0, 0, 0, 17, 255]))
        bins[key] = bins.get(key, 0) + rng.choice([1, 1, 2, 7])
    lengths = {s: rng.randint(5, 3000) for s in segments if rng.random() < 0.9}
    return [(*k, c) for k, c in bins.items()], lengths


def load_random_week(db: Database, seed: int) -> tuple[list[Row], dict[int, int], int]:
    """A random week (:func:`_random_week`) stored, and a random min count to build it with."""
    rng = random.Random(seed)
    rows, lengths = _random_week(rng)
    min_count = rng.choice([1, 2, 4])
    with db.connect() as conn:
        add_histograms(conn, rows)
        add_lengths(conn, lengths)
        conn.commit()
    return rows, lengths, min_count


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_equals_the_python_twin(db: Database, seed: int) -> None:
    rows, lengths, min_count = load_random_week(db, seed)
    build(db, min_count=min_count)
    got = speeds(db)
    want = speedtile.speeds_from_histograms(rows, lengths, FIRST, min_count=min_count)
    assert set(got) == set(want)
    for segment_id, expected in want.items():
        actual = got[segment_id]
        for name in SegmentWeek.__dataclass_fields__:
            a, b = getattr(actual, name), getattr(expected, name)
            if name in ("mean_speeds", "speed_variances"):  # float sums in another order
                assert len(a) == len(b) and all(abs(x - y) <= 1 for x, y in zip(a, b, strict=True))
            else:
                assert a == b, (segment_id, name)


# --- pure functions -----------------------------------------------------------------------

@given(total=st.integers(1, 90), segment_id=st.integers(0, 2**46 - 1),
       hour=st.integers(0, 167), first_hour=st.integers(0, 2**31 - 1))
def test_prevalence_is_its_bin_moved_by_at_most_one(total: int, segment_id: int, hour: int,
                                                    first_hour: int) -> None:
    bounds = [2, 6, 12, 20, 30, 42, 56, 72, 90]
    base = next(i + 1 for i, b in enumerate(bounds) if total <= b)
    got = prevalence(total, segment_id, hour, first_hour)
    assert got == max(1, base + jitter(segment_id, hour, first_hour))
    assert abs(got - base) <= 1 and got >= 1


def test_prevalence_ends_are_not_moved() -> None:
    assert prevalence(0, 5, 5, 5) == 0
    assert all(prevalence(91 + k, k, k % 168, FIRST) == 10 for k in range(200))


def test_jitter_is_15_70_15_and_deterministic() -> None:
    draws = [jitter(seg(i), h, FIRST + 168 * w) for i in range(200) for h in range(0, 168, 7)
             for w in range(5)]
    share = {d: draws.count(d) / len(draws) for d in (-1, 0, 1)}
    assert abs(share[-1] - 0.15) < 0.02 and abs(share[1] - 0.15) < 0.02
    assert abs(share[0] - 0.70) < 0.03
    assert draws == [jitter(seg(i), h, FIRST + 168 * w) for i in range(200)
                     for h in range(0, 168, 7) for w in range(5)]


def test_family() -> None:
    assert speedtile.family(TILE, 0) == [TILE]
    assert speedtile.family(TILE, 1) == [TILE, *tiles.children(TILE)]
    assert len(speedtile.family(CHILD, 2)) == 17 and speedtile.family(CHILD, 0) == [CHILD]


def test_keys_round_trip() -> None:
    spec = TileWeek("AUTO", CHILD, WEEK)
    assert TileWeek.parse(spec.key) == spec
    assert spec.group == f"AUTO/1/{CHILD.index}"
    from renderer.errors import InputError

    for bad in ("AUTO/0/2140", "AUTO/9/1/2016-W44", "AUTO/0/2140/2016-W60", "/0/1/2016-W44"):
        with pytest.raises(InputError):
            TileWeek.parse(bad)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.tuples(st.integers(0, 2**46 - 1), st.integers(0, 167),
                               st.integers(0, 2**31 - 1), st.integers(0, 200)), min_size=1,
                     max_size=50),
       tile_list=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1_036_799)), min_size=1,
                          max_size=20))
def test_sql_functions_equal_their_python_twins(database_url: str,
                                                keys: list[tuple[int, int, int, int]],
                                                tile_list: list[tuple[int, int]]) -> None:
    tile_objs = [Tile(level, index % tiles.tile_count(level)) for level, index in tile_list]
    with psycopg.connect(database_url) as conn:
        got = conn.execute(
            "SELECT renderer.traffic_prevalence(t, s, h, f) FROM unnest(%s::bigint[],"
            " %s::integer[], %s::integer[], %s::bigint[]) AS u(s, h, f, t)",
            [list(k) for k in zip(*keys, strict=True)]).fetchall()
        assert [r[0] for r in got] == [prevalence(t, s, h, f) for s, h, f, t in keys]
        level0 = conn.execute("SELECT renderer.traffic_level0_index(t)"
                              " FROM unnest(%s::integer[]) AS t",
                              [[tiles.tile_id(t) for t in tile_objs]]).fetchall()
        expected = []
        for t in tile_objs:
            while t.level:
                t = tiles.parent(t)
            expected.append(t.index)
        assert [r[0] for r in level0] == expected
        durations = conn.execute("SELECT renderer.traffic_duration_seconds(c)"
                                 " FROM generate_series(0, 255) c").fetchall()
        assert [r[0] for r in durations] == [binning.duration_seconds(c) for c in range(256)]
