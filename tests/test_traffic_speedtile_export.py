"""Speed tile exports: OpenTraffic's layout, readable with our reader, byte-identical reruns."""

from __future__ import annotations

import gzip
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer.db import Database
from renderer.formats.speedtiles import (
    HOURS_PER_WEEK,
    SubTile,
    decode_speed_tile,
    encode_subtile,
    gzip_decompress,
)
from renderer.storage import Store, open_store
from renderer.tiles import Tile
from renderer.traffic import export
from tests.factories import add_histograms, add_lengths
from tests.test_traffic_speedtile import (
    CHILD,
    FIRST,
    TILE,
    WEEK,
    build,
    code,
    seg,
    speeds,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(str(tmp_path / "store"))


def export_week(db: Database, store: Store, mode: str = "AUTO", **options: Any) -> export.Exported:
    result = build(db, mode=mode, **options)
    with db.connect() as conn:
        return export.export_speed_week(conn, store, result)


def read(store: Store, key: str) -> SubTile:
    body = store.get(key)
    assert gzip.decompress(body)  # a plain gzip body
    (subtile,) = decode_speed_tile(gzip_decompress(body))
    return subtile


def _week_data(db: Database) -> None:
    s, a = seg(3), seg(4)
    with db.connect() as conn:
        add_histograms(conn, [(s, a, FIRST + 18, code(10), 51, 2),
                              (s, None, FIRST + 18, code(30), 0, 1),
                              (s, a, FIRST + 19, code(12), 0, 1),
                              (seg(12_345), None, FIRST, code(9), 0, 1),
                              (seg(2, CHILD), a, FIRST + 167, code(20), 0, 3)])
        add_lengths(conn, {s: 100, seg(12_345): 90, seg(2, CHILD): 200})
        conn.commit()


def test_files_follow_the_opentraffic_layout(db: Database, store: Store) -> None:
    _week_data(db)
    written = export_week(db, store)
    keys = [info.key for info in store.list()]
    assert keys == ["2016/44/0/002/140.nex.0.gz", "2016/44/0/002/140.nex.1.gz",
                    "2016/44/0/002/140.spd.0.gz", "2016/44/0/002/140.spd.1.gz",
                    f"2016/44/1/{CHILD.index // 1000:03d}/{CHILD.index % 1000:03d}.nex.0.gz",
                    f"2016/44/1/{CHILD.index // 1000:03d}/{CHILD.index % 1000:03d}.spd.0.gz"]
    assert written.files == 6
    first = read(store, "2016/44/0/002/140.spd.0.gz")
    assert (first.level, first.index, first.start_segment_index) == (0, 2140, 0)
    assert (first.total_segments, first.subtile_segments) == (12_346, 10_000)
    assert (first.range_start, first.range_end) == (FIRST * 3600, FIRST * 3600 + 604_800)
    assert (first.unit_size, first.entry_size) == (604_800, 3600)
    second = read(store, "2016/44/0/002/140.spd.1.gz")
    assert (second.start_segment_index, second.subtile_segments) == (10_000, 2_346)


def test_arrays_hold_the_speeds(db: Database, store: Store) -> None:
    _week_data(db)
    export_week(db, store)
    week = speeds(db)[seg(3)]
    spd = read(store, "2016/44/0/002/140.spd.0.gz").arrays
    nex = read(store, "2016/44/0/002/140.nex.0.gz").arrays
    assert len(spd["speeds"]) == 10_000 * HOURS_PER_WEEK
    slot = 3 * HOURS_PER_WEEK + 18
    assert spd["speeds"][slot] == week.speeds[0] == 36
    assert spd["prevalences"][slot] == week.prevalences[0]
    assert spd["speed_variances"][slot] == week.speed_variances[0]
    assert sum(spd["speeds"]) == 36 + week.speeds[1]  # nothing else in subtile 0
    # every slot points at its first entry in the .nex arrays; hour 18 has two entries
    start, count = spd["next_segment_indices"][slot], spd["next_segment_counts"][slot]
    assert (start, count) == (0, 2)
    assert spd["next_segment_indices"][slot + 1] == 2 and spd["next_segment_counts"][slot + 1] == 1
    assert spd["next_segment_indices"][-1] == 3
    assert nex["next_segment_ids"] == [seg(4), export.NO_NEXT_ID, seg(4)]
    assert export.NO_NEXT_ID == 0x3FFFFFFFFFF == 2**42 - 1  # OpenTraffic's INVALID_NEXT_SEGMENT_ID
    assert nex["next_segment_delays"] == [0, 20, 0]
    assert nex["next_segment_queue_lengths"] == [20, 0, 0]


def test_a_rerun_writes_the_same_bytes(db: Database, store: Store,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _week_data(db)
    first = export_week(db, store)
    before = {info.key: store.get(info.key) for info in store.list()}
    clock = time.time
    monkeypatch.setattr(time, "time", lambda: clock() + 3600)  # an hour later: same bytes
    assert export_week(db, store).files == first.files  # written again, not skipped
    assert {info.key: store.get(info.key) for info in store.list()} == before


def test_subtiles_no_longer_produced_are_deleted(db: Database, store: Store) -> None:
    _week_data(db)
    export_week(db, store)
    with db.connect() as conn:
        conn.execute("DELETE FROM traffic_histograms WHERE segment_id = ANY(%s)",
                     [[seg(12_345), seg(2, CHILD)]])
        conn.commit()
    written = export_week(db, store)
    assert written.removed == 4  # subtile 1 of the tile, and the child's two files
    assert [info.key for info in store.list()] == ["2016/44/0/002/140.nex.0.gz",
                                                   "2016/44/0/002/140.spd.0.gz"]


def test_other_modes_go_in_a_folder(db: Database, store: Store) -> None:
    with db.connect() as conn:
        add_histograms(conn, [(seg(1), None, FIRST, code(10), 0, 1)], mode="BUS")
        conn.commit()
    export_week(db, store, mode="BUS")
    assert [i.key for i in store.list()] == ["BUS/2016/44/0/002/140.nex.0.gz",
                                             "BUS/2016/44/0/002/140.spd.0.gz"]


# --- the direct encoder writes what the formats module writes -----------------------------

def _dense(head: SubTile, rows: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    size = head.subtile_segments * HOURS_PER_WEEK
    spd = {name: [0] * size for name in ("speeds", "speed_variances", "prevalences",
                                         "next_segment_counts")}
    nex: dict[str, list[int]] = {name: [] for name in (
        "next_segment_ids", "next_segment_delays", "next_segment_delay_variances",
        "next_segment_queue_lengths", "next_segment_queue_length_variances")}
    for row in rows:
        base = (row["segment_index"] - head.start_segment_index) * HOURS_PER_WEEK
        for how, speed, var, prev in zip(row["hours"], row["speeds"], row["speed_variances"],
                                         row["prevalences"], strict=True):
            spd["speeds"][base + how] = speed
            spd["speed_variances"][base + how] = var
            spd["prevalences"][base + how] = prev
        for how in row["next_hours"]:
            spd["next_segment_counts"][base + how] += 1
        nex["next_segment_ids"] += [export.NO_NEXT_ID if n is None else n for n in row["next_ids"]]
        nex["next_segment_delays"] += row["delays"]
        nex["next_segment_delay_variances"] += row["delay_variances"]
        nex["next_segment_queue_lengths"] += row["queue_lengths"]
        nex["next_segment_queue_length_variances"] += row["queue_length_variances"]
    spd["next_segment_indices"] = list(itertools.accumulate(spd["next_segment_counts"][:-1],
                                                            initial=0)) if size else []
    return (encode_subtile(SubTile(**{**head.__dict__, "arrays": spd}), "spd"),
            encode_subtile(SubTile(**{**head.__dict__, "arrays": nex}), "nex"))


_values = st.integers(0, 2**32 - 1)


@st.composite
def _subtile_rows(draw: st.DrawFn) -> tuple[SubTile, list[dict[str, Any]]]:
    count = draw(st.integers(1, 40))
    start = draw(st.sampled_from([0, 10_000]))
    indices = sorted(draw(st.sets(st.integers(start, start + count - 1), max_size=6)))
    rows = []
    for index in indices:
        hours = sorted(draw(st.sets(st.integers(0, 167), min_size=1, max_size=5)))
        nexts = sorted(draw(st.lists(st.sampled_from(hours), max_size=6)))
        rows.append({
            "segment_index": index, "hours": hours,
            "speeds": [draw(st.integers(0, 160)) for _ in hours],
            "speed_variances": [draw(_values) for _ in hours],
            "prevalences": [draw(st.integers(0, 10)) for _ in hours],
            "next_hours": nexts,
            "next_ids": [draw(st.one_of(st.none(), st.integers(0, 2**46 - 2))) for _ in nexts],
            "delays": [draw(_values) for _ in nexts],
            "delay_variances": [draw(_values) for _ in nexts],
            "queue_lengths": [draw(_values) for _ in nexts],
            "queue_length_variances": [draw(_values) for _ in nexts]})
    head = SubTile(draw(st.integers(0, 1)), draw(st.integers(0, 4049)), start,
                   start + count + draw(st.integers(0, 5)), count, draw(_values), draw(_values),
                   description=draw(st.text(max_size=30)))
    return head, rows


@settings(max_examples=150, deadline=None)
@given(_subtile_rows())
def test_direct_encoder_equals_the_formats_module(
        case: tuple[SubTile, list[dict[str, Any]]]) -> None:
    head, rows = case
    spd, nex = export._speed_subtile(head, rows)
    assert (spd, nex) == _dense(head, rows)


def test_keys() -> None:
    assert export.speed_keys("AUTO", "2015-W53", Tile(1, 37740), 2) == (
        "2015/53/1/037/740.spd.2.gz", "2015/53/1/037/740.nex.2.gz")
    assert export.reference_key("MOTORCYCLE", Tile(0, 5)) == "MOTORCYCLE/0/000/005.ref.gz"
    assert WEEK == "2016-W44" and Tile(0, 2140) == TILE
