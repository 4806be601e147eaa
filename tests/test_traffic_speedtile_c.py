"""The speed-tile build's C engine (ext/speedtile.c over binary COPY) against its Python
twin (exact: same float operations in the same order) and against the SQL engine."""

from __future__ import annotations

import itertools
import random
import struct
import time
from array import array
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer import _speedtile  # type: ignore[attr-defined]
from renderer.db import Database, connect
from renderer.errors import ConfigError
from renderer.traffic import speedtile, speedtile_c
from renderer.traffic.speedtile import SegmentWeek, TileWeek
from renderer.traffic.speedtile_pack import pack_week, unpack_row
from tests.factories import add_histograms, add_lengths
from tests.test_traffic_speedtile import (
    FIRST,
    TILE,
    WEEK,
    Row,
    _random_week,
    build,
    load_random_week,
    speeds,
)

HEADER = b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0)
COLUMNS = ("length", "hours", "observations", "speeds", "hour_values", "nexts",
           "total_observations")


def key_order(rows: list[Row]) -> list[Row]:
    """The COPY's ORDER BY segment_id, hour, next_segment_id (NULLS LAST)."""
    return sorted(rows, key=lambda r: (r[0], r[2], r[1] is None, r[1] or 0))


def encode(rows: list[Row]) -> bytes:
    out = [HEADER]
    for segment, nxt, hour, code, queue, count in rows:
        out.append(struct.pack("!hiq", 6, 8, segment))
        out.append(struct.pack("!i", -1) if nxt is None else struct.pack("!iq", 8, nxt))
        out.append(struct.pack("!iiihihiq", 4, hour, 2, code, 2, queue, 8, count))
    out.append(struct.pack("!h", -1))
    return b"".join(out)


def _array(data: bytes, at: int) -> tuple[list[int | None], int]:
    ndim, _, oid = struct.unpack_from("!iii", data, at)
    at += 12
    if ndim == 0:
        return [], at
    (size, _lb) = struct.unpack_from("!ii", data, at)
    at += 8
    fmt = {21: "!h", 23: "!i", 20: "!q"}[oid]
    values: list[int | None] = []
    for _ in range(size):
        (n,) = struct.unpack_from("!i", data, at)
        at += 4
        if n == -1:
            values.append(None)
        else:
            values.append(struct.unpack_from(fmt, data, at)[0])
            at += n
    return values, at


def decode(data: bytes) -> dict[int, SegmentWeek]:
    """traffic_speeds rows from the C engine's binary COPY."""
    assert data.startswith(HEADER)
    at, found = len(HEADER), {}
    while True:
        (fields,) = struct.unpack_from("!h", data, at)
        at += 2
        if fields == -1:
            assert at == len(data)
            return found
        assert fields == 10
        values: list[Any] = []
        for _ in range(fields):
            (n,) = struct.unpack_from("!i", data, at)
            at += 4
            if n == -1:
                values.append(None)
            elif len(values) == 0:
                values.append(data[at:at + n].decode())
                at += n
            elif len(values) < 4 or len(values) == 9:
                values.append(struct.unpack_from({4: "!i", 8: "!q"}[n], data, at)[0])
                at += n
            elif len(values) < 7:
                end = at + n
                array, at = _array(data, at)
                assert at == end
                values.append(array)
            else:  # the packed columns
                values.append(data[at:at + n])
                at += n
        row = dict(zip(COLUMNS, values[3:], strict=True))
        unpacked = unpack_row(row)
        week = SegmentWeek.from_row(row)
        # what the packed columns derive: the hour's next count, the week's total
        assert unpacked["next_segments"] == [week.next_hours.count(h) for h in week.hours]
        assert row["total_observations"] == sum(week.observations)
        assert pack_week(unpacked) == (row["hour_values"], row["nexts"])
        found[values[2]] = week


def run_c(rows: list[Row], lengths: dict[int, int], first_hour: int, min_count: int = 1,
          cuts: list[int] | None = None, max_speed: int = speedtile.MAX_SPEED,
          unsorted: bool = False) -> bytes:
    """The C engine's output; ``unsorted``: the rows as given, sorted by the Builder."""
    ids = sorted(lengths)
    builder = _speedtile.Builder("AUTO", first_hour, min_count, max_speed,
                                 struct.pack(f"={len(ids)}q", *ids),
                                 struct.pack(f"={len(ids)}q", *(lengths[i] for i in ids)),
                                 unsorted=unsorted)
    data = encode(rows if unsorted else key_order(rows))
    out = []
    at = 0
    for cut in sorted(cuts or []):  # chunks that end anywhere, even inside a row
        cut = min(cut, len(data))
        builder.feed(data[at:cut])
        out.append(builder.take())
        at = max(at, cut)
    builder.feed(data[at:])
    out.append(builder.finish())
    return b"".join(out)


segment_ids = st.sampled_from([(i << 25) | (2140 << 3) for i in (1, 2, 3, 77, 4000)])
rows_strategy = st.dictionaries(
    st.tuples(segment_ids, st.one_of(st.none(), segment_ids),
              st.integers(FIRST, FIRST + 167), st.integers(0, 255),
              st.sampled_from([0, 0, 1, 17, 128, 255])),
    st.integers(1, 50), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(bins=rows_strategy,
       lengths=st.dictionaries(segment_ids, st.integers(1, 5000)),
       min_count=st.integers(1, 6), max_speed=st.sampled_from([160, 40]),
       cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_c_equals_the_python_twin_exactly(bins: dict[tuple[int, int | None, int, int, int],
                                                     int],
                                          lengths: dict[int, int], min_count: int,
                                          max_speed: int, cuts: list[int]) -> None:
    rows = key_order([(*k, c) for k, c in bins.items()])
    want = speedtile.speeds_from_histograms(rows, lengths, FIRST, min_count=min_count,
                                            max_speed=max_speed)
    got = decode(run_c(rows, lengths, FIRST, min_count, cuts, max_speed))
    assert got == want


@settings(max_examples=300, deadline=None)
@given(bins=rows_strategy, lengths=st.dictionaries(segment_ids, st.integers(1, 5000)),
       order=st.randoms(use_true_random=False), cuts=st.lists(st.integers(0, 3000), max_size=6),
       split=st.booleans())
def test_rows_in_any_order_sorted_in_c_give_the_same_bytes(
        bins: dict[tuple[int, int | None, int, int, int], int], lengths: dict[int, int],
        order: Any, cuts: list[int], split: bool) -> None:
    rows = [(*k, c) for k, c in bins.items()]
    if split:  # a bin in two rows (late data appends rows beside the earlier ones)
        rows += [(*r[:5], 7) for r in rows[::3]]
    shuffled = list(rows)
    order.shuffle(shuffled)
    want = run_c(rows, lengths, FIRST, 2, cuts)
    assert run_c(shuffled, lengths, FIRST, 2, cuts, unsorted=True) == want
    twin = speedtile.speeds_from_histograms(key_order(rows), lengths, FIRST, min_count=2)
    assert decode(want) == twin


family_ids = st.builds(lambda index, tile: index << 25 | tile, st.integers(0, (1 << 21) - 1),
                      st.sampled_from([0, 2140 << 3, 24840, 393121 | 1]))


@settings(max_examples=300, deadline=None)
@given(bins=st.dictionaries(
           st.tuples(family_ids, st.one_of(st.none(), family_ids),
                     st.integers(FIRST, FIRST + 167), st.integers(0, 255), st.just(0)),
           st.integers(1, 50), max_size=60),
       min_count=st.integers(1, 6), unsorted=st.booleans())
def test_the_builders_sums_per_tile_are_the_twins(
        bins: dict[tuple[int, int | None, int, int, int], int], min_count: int,
        unsorted: bool) -> None:
    """What summarize_tiles is given instead of reading the rows back: per tile, segments,
    observations (unpublished hours too) and the largest segment index."""
    rows = key_order([(*k, c) for k, c in bins.items()])
    builder = _speedtile.Builder("AUTO", FIRST, min_count, 160, b"", b"", unsorted=unsorted)
    builder.feed(encode(rows[::-1] if unsorted else rows))
    builder.finish()
    weeks = speedtile.speeds_from_histograms(rows, {}, FIRST, min_count=min_count)
    assert builder.tiles == speedtile.tile_sums(weeks)
    assert sum(t[1] for t in builder.tiles) == builder.segments == len(weeks)


def test_rows_out_of_key_order_are_refused() -> None:
    rows: list[Row] = [(8 << 25, None, FIRST + 1, 10, 0, 1), (8 << 25, None, FIRST, 10, 0, 1)]
    builder = _speedtile.Builder("AUTO", FIRST, 1, 160, b"", b"")
    with pytest.raises(ValueError, match="order"):
        builder.feed(encode(rows))


def test_a_truncated_stream_is_refused() -> None:
    builder = _speedtile.Builder("AUTO", FIRST, 1, 160, b"", b"")
    builder.feed(encode([(8 << 25, None, FIRST, 10, 0, 1)])[:-5])
    with pytest.raises(ValueError, match="ended inside a row"):
        builder.finish()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_c_engine_equals_the_sql_engine(db: Database, seed: int) -> None:
    rows, lengths, min_count = load_random_week(db, seed)
    sql_build = build(db, min_count=min_count, engine="sql")
    by_sql = speeds(db)
    # one part, and the read split across two and three backends
    c_build = build(db, min_count=min_count, engine="c", parts=seed)
    by_c = speeds(db)
    assert ([(t.tile, t.total_segments, t.segments, t.observations) for t in c_build.tiles]
            == [(t.tile, t.total_segments, t.segments, t.observations) for t in sql_build.tiles])
    assert by_c == speedtile.speeds_from_histograms(key_order(rows), lengths, FIRST,
                                                    min_count=min_count)
    assert set(by_c) == set(by_sql)
    for segment_id, expected in by_sql.items():
        for name in SegmentWeek.__dataclass_fields__:
            a, b = getattr(by_c[segment_id], name), getattr(expected, name)
            if name in ("mean_speeds", "speed_variances"):  # the SQL sums in its own order
                assert len(a) == len(b) and all(abs(x - y) <= 1 for x, y in zip(a, b, strict=True))
            else:
                assert a == b, (segment_id, name)


def _store_random_week(db: Database, seed: int) -> None:
    """A random week of histograms and lengths (seeded), stored and committed."""
    rows, lengths = _random_week(random.Random(seed))
    with db.connect() as conn:
        add_histograms(conn, rows)
        add_lengths(conn, lengths)
        conn.commit()


def test_c_reruns_are_byte_identical(db: Database) -> None:
    _store_random_week(db, 7)
    dumps = []
    for _ in range(2):
        build(db)
        with db.connect() as conn:
            dumps.append(conn.execute(
                "SELECT segment_id, (t.*)::text FROM traffic_speeds t ORDER BY 1").fetchall())
    assert dumps[0] == dumps[1] and dumps[0]


def _fresh_build(db: Database, **options: Any) -> None:
    """A build into an emptied table, so that the physical order is the order written
    (a rebuild's rows reuse the space its deletes freed, in an order of their sizes)."""
    with db.connect() as conn:
        conn.execute("TRUNCATE traffic_speeds")
        conn.commit()
    build(db, **options)


def _dump(db: Database) -> list[tuple[int, str]]:
    """The speed rows in the order they were written (physical order)."""
    with db.connect() as conn:
        rows = conn.execute("SELECT segment_id, (t.*)::text AS row FROM traffic_speeds t"
                            " ORDER BY ctid").fetchall()
    return [(r["segment_id"], r["row"]) for r in rows]


@pytest.mark.parametrize("seed", [4, 5])
def test_a_build_split_across_backends_writes_the_same_rows_in_the_same_order(
        db: Database, seed: int) -> None:
    _store_random_week(db, seed)
    _fresh_build(db)
    one = _dump(db)
    for parts in (2, 3, 7):
        _fresh_build(db, parts=parts, work_mem="8MB")
        assert _dump(db) == one
    assert one


def test_parts_sorted_in_c_give_the_same_rows_in_the_same_order(db: Database) -> None:
    _store_random_week(db, 9)
    _fresh_build(db)
    want = _dump(db)
    for parts in (1, 2, 3):
        _fresh_build(db, parts=parts, sort="c")
        assert _dump(db) == want
    assert want


def test_a_transaction_that_wrote_histograms_builds_them_in_one_part(db: Database) -> None:
    """The parts read at the caller's exported snapshot, which hides its own writes: a
    transaction that wrote already builds in one part and sees its own histograms."""
    rows, lengths = _random_week(random.Random(10))
    with db.connect() as conn:
        add_histograms(conn, rows)
        add_lengths(conn, lengths)
        built = speedtile.build(conn, TileWeek("AUTO", TILE, WEEK), parts=3)
        conn.commit()
    assert built.segments == len({r[0] for r in rows}) > 0


def test_a_split_build_deletes_the_last_build_while_it_reads_and_writes_after(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The delete of the last build's rows runs on the build's connection while the parts
    read; the write waits for it however slow it is: every segment once, as one part writes
    it."""
    _store_random_week(db, 13)
    _fresh_build(db)
    want = _dump(db)
    real = speedtile_c.build_speeds_c
    order: list[str] = []

    def slow(conn: Any, params: dict[str, Any], **options: Any) -> int:
        delete = options["before_write"]

        def later() -> None:
            order.append("delete starts")
            time.sleep(0.5)  # slower than the parts' reads
            delete()
            order.append("delete done")

        real_drain = speedtile_c._drain

        def drain(*args: Any) -> bytes:
            order.append("part reads")
            return real_drain(*args)

        monkeypatch.setattr(speedtile_c, "_drain", drain)
        return real(conn, params, **{**options, "before_write": later})

    monkeypatch.setattr(speedtile_c, "build_speeds_c", slow)
    for _ in range(2):  # a rebuild over the rows of the last
        build(db, parts=2, sort="c")
        assert sorted(_dump(db)) == sorted(want)
    assert order[:2] == ["delete starts", "part reads"] and order[-1] == "delete done"


def test_a_split_build_that_fails_leaves_the_last_build(db: Database) -> None:
    """A part that fails fails the build: its delete rolls back with it (exactly once)."""
    _store_random_week(db, 14)
    build(db)
    want = sorted(_dump(db))

    def broken() -> Any:
        raise OSError("no second connection")

    with pytest.raises(OSError, match="no second connection"), db.connect() as conn:
        speedtile_c.build_speeds_c(
            conn, {**_params(), "tile_ids": [speedtile.tiles.tile_id(TILE)]}, parts=2,
            connect_part=broken,
            before_write=lambda: conn.execute("DELETE FROM traffic_speeds"))
    assert sorted(_dump(db)) == want


def _params() -> dict[str, Any]:
    return {"mode": "AUTO", "first_hour": FIRST, "min_count": 1,
            "max_speed": speedtile.MAX_SPEED}


def test_a_part_connects_as_the_build_did_its_password_kept_out_of_the_conninfo(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed connection's message quotes the conninfo: the password goes apart."""
    parts = urlsplit(db.url)
    url = urlunsplit(parts._replace(netloc=f"{parts.username or 'renderer'}:s3cr'et@"
                                           f"{parts.hostname or ''}"
                                           f"{f':{parts.port}' if parts.port else ''}"))
    seen: list[tuple[str, dict[str, Any]]] = []
    real = speedtile_c.connect

    def spy(info: str, **options: Any) -> Any:
        seen.append((info, options))
        return real(info, **options)

    monkeypatch.setattr(speedtile_c, "connect", spy)
    with db.connect() as conn, speedtile_c.sibling(conn)() as part:
        assert part.execute("SELECT current_database() AS d").fetchone() == \
            conn.execute("SELECT current_database() AS d").fetchone()
    with connect(url) as conn, speedtile_c.sibling(conn)() as part:
        assert part.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    info, options = seen[-1]
    assert "s3cr" not in info and options["password"] == "s3cr'et"


def test_part_ranges_cover_every_segment_once_in_order() -> None:
    ids = array("q", sorted(random.Random(3).sample(range(-10**12, 10**12), 1000)))
    for parts in (1, 2, 3, 999, 1000, 5000):
        ranges = speedtile_c.part_ranges(ids, parts)
        assert ranges[0][0] == -(1 << 63) and ranges[-1][1] == (1 << 63) - 1
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
        assert len(ranges) == min(parts, len(ids))
        counts = [sum(lo <= i <= hi for i in ids) for lo, hi in ranges]
        assert max(counts) - min(counts) <= 1
    assert speedtile_c.part_ranges(array("q"), 4) == [(-(1 << 63), (1 << 63) - 1)]


def test_staggered_part_ranges_grow_in_segment_order() -> None:
    ids = array("q", range(0, 10_000, 7))
    for parts in (2, 3, 4):
        ranges = speedtile_c.part_ranges(ids, parts, 0.4)
        assert ranges[0][0] == -(1 << 63) and ranges[-1][1] == (1 << 63) - 1
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
        counts = [sum(lo <= i <= hi for i in ids) for lo, hi in ranges]
        assert counts == sorted(counts) and counts[0] < counts[-1]
    two = [sum(lo <= i <= hi for i in ids) for lo, hi in speedtile_c.part_ranges(ids, 2, 0.4)]
    assert abs(two[0] / len(ids) - 1 / 2.4) < 0.01


def test_without_a_loaded_libpq_the_rows_come_through_the_driver(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    _store_random_week(db, 8)
    build(db)
    direct = speeds(db)
    monkeypatch.setattr(speedtile_c._speedtile, "has_libpq", lambda: False)
    build(db)
    assert speeds(db) == direct


def test_an_unknown_engine_is_a_config_error(db: Database) -> None:
    with pytest.raises(ConfigError):
        build(db, engine="gpu")
    with pytest.raises(ConfigError):
        build(db, sort="gpu")


def test_a_build_inside_a_savepoint_splits_across_backends_all_the_same(db: Database) -> None:
    """A subtransaction cannot export its snapshot (the split read failed there): in read
    committed the parts share a snapshot of their own, what one statement would see."""
    _store_random_week(db, 11)
    _fresh_build(db)
    want = _dump(db)
    with db.connect() as conn:
        conn.execute("TRUNCATE traffic_speeds")
        conn.commit()
        conn.execute("SELECT 1")  # the transaction is open: the next block is a savepoint
        with conn.transaction():
            built = speedtile.build(conn, TileWeek("AUTO", TILE, WEEK), parts=2)
        conn.commit()
    assert built.segments > 0
    assert _dump(db) == want


def test_a_repeatable_read_build_splits_at_its_own_snapshot(db: Database) -> None:
    """Parts of a repeatable-read build read at the snapshot it exported: histograms
    committed after its first statement stay out, as they would of one part."""
    _store_random_week(db, 12)
    build(db)
    want = sorted(_dump(db))  # the old snapshot keeps dead rows: another physical order
    with db.connect() as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT 1")  # the snapshot
        with db.connect() as other:  # committed after it: not seen
            add_histograms(other, [(max(r[0] for r in _random_week(random.Random(12))[0]),
                                    None, FIRST, 10, 0, 5)])
            other.commit()
        speedtile.build(conn, TileWeek("AUTO", TILE, WEEK), parts=2)
        conn.commit()
    assert sorted(_dump(db)) == want
