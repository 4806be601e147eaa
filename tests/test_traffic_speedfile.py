"""The .spd/.nex writer in C (ext/speedfile.c) against its Python twin: the same bytes."""

from __future__ import annotations

import dataclasses
import gzip
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer import kernels, tiles
from renderer.db import Database, query
from renderer.formats import speedtile_pb2
from renderer.formats.speedtiles import HOURS_PER_WEEK, SubTile, subtile_ranges
from renderer.traffic import export
from renderer.traffic.speedtile_pack import NO_NEXT, pack_week, unpack_row
from tests.test_traffic_speedtile import CHILD, FIRST, TILE, WEEK, build
from tests.test_traffic_speedtile_export import _week_data

WRITERS = kernels.both("_speedfile", "subtile", export.subtile_py)
INT2, INT4, INT8 = (st.integers(-(1 << (b - 1)), (1 << (b - 1)) - 1) for b in (16, 32, 64))


def test_the_c_writer_is_built() -> None:
    assert set(WRITERS) == {"c", "python"}


def _row(draw: st.DrawFn, index: int, last: bool) -> tuple[int, list[int], list[int], bytes,
                                                           bytes]:
    hours = sorted(draw(st.sets(st.integers(0, 167), min_size=1, max_size=8)))
    if last and draw(st.booleans()):
        hours = sorted({*hours, 167})  # the subtile's very last slot
    many = draw(st.booleans())
    nexts = sorted(draw(st.lists(st.sampled_from(hours), max_size=300 if many else 6)))
    week: dict[str, Any] = {
        "hours": hours,
        "mean_speeds": [draw(INT2) for _ in hours],
        "speed_variances": [draw(st.one_of(st.integers(0, 400), INT4)) for _ in hours],
        "prevalences": [draw(st.one_of(st.integers(0, 10), INT2)) for _ in hours],
        "next_hours": nexts,
        "next_ids": [draw(st.one_of(st.none(), st.integers(0, 2**46 - 1), INT8.filter(
            lambda v: v != NO_NEXT))) for _ in nexts],
        "next_counts": [draw(INT8) for _ in nexts],
        "delays": [draw(st.one_of(st.integers(0, 300), INT4)) for _ in nexts],
        "delay_variances": [draw(st.one_of(st.integers(0, 2**40), INT8)) for _ in nexts],
        "queue_lengths": [draw(INT4) for _ in nexts],
        "queue_length_variances": [draw(INT8) for _ in nexts]}
    hour_values, packed = pack_week(week)
    speeds = [draw(st.one_of(st.integers(0, 160), st.integers(-5, 2**33))) for _ in hours]
    return index, hours, speeds, hour_values, packed


@st.composite
def _subtiles(draw: st.DrawFn) -> tuple[bytes, int, int, list[Any]]:
    segments = draw(st.integers(0, 30))
    start = draw(st.sampled_from([0, 10_000, 2**20]))
    indices = sorted(draw(st.sets(st.integers(start, start + segments - 1), max_size=5))
                     ) if segments else []
    rows = [_row(draw, i, i == start + segments - 1) for i in indices]
    head = SubTile(draw(st.integers(0, 2)), draw(st.integers(0, 2**20)), start,
                   start + segments + draw(st.integers(0, 5)), segments,
                   draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                   description=draw(st.text(max_size=30)))
    return export._header(head), start, segments, rows


@settings(max_examples=300, deadline=None)
@given(_subtiles())
def test_c_writes_the_twins_bytes(case: tuple[bytes, int, int, list[Any]]) -> None:
    results = {name: write(*case) for name, write in WRITERS.items()}
    assert results["c"] == results["python"]
    spd, nex = (speedtile_pb2.SpeedTile.FromString(b).subtiles[0] for b in results["c"])
    size = case[2] * HOURS_PER_WEEK
    assert len(spd.speeds) == len(spd.nextSegmentIndices) == size
    assert sum(spd.nextSegmentCounts) == len(nex.nextSegmentIds)
    assert all(v < 2**32 for v in spd.speedVariances)


def test_an_empty_subtile_has_zeros() -> None:
    header = export._header(SubTile(0, 2140, 10_000, 10_002, 2, 0, 604800))
    for write in WRITERS.values():
        spd, nex = (speedtile_pb2.SpeedTile.FromString(b).subtiles[0]
                    for b in write(header, 10_000, 2, []))
        assert list(spd.speeds) == list(spd.nextSegmentIndices) == [0] * 336
        assert not nex.nextSegmentIds and nex.startSegmentIndex == 10_000


@pytest.mark.parametrize("hours", [[5, 3], [167, 168]])
def test_slots_out_of_order_or_range_are_refused(hours: list[int]) -> None:
    week = {"hours": hours, "mean_speeds": [1, 1], "speed_variances": [0, 0],
            "prevalences": [1, 1], **{k: [] for k in ("next_hours", "next_ids", "next_counts",
                                                       "delays", "delay_variances",
                                                       "queue_lengths",
                                                       "queue_length_variances")}}
    row = (0, hours, [20, 30], *pack_week(week))
    header = export._header(SubTile(0, 1, 0, 1, 1, 0, 604800))
    for write in WRITERS.values():
        with pytest.raises(ValueError):
            write(header, 0, 1, [row])


def _before(db: Database, tile: tiles.Tile, total: int) -> list[tuple[bytes, bytes]]:
    """The protobuf bytes as the export wrote them before the C writer: rows unpacked by
    unpack_row, written by the Python writer."""
    with db.connect() as conn:
        rows = [unpack_row(r) for r in conn.execute(
            query("traffic_speedtile.tile_speeds"),
            {"mode": "AUTO", "first_hour": FIRST, "tile_id": tiles.tile_id(tile)})]
    header = SubTile(tile.level, tile.index, 0, total, 0, FIRST * 3600,
                     FIRST * 3600 + HOURS_PER_WEEK * 3600,
                     description=f"AUTO speeds, 168 ordinal hours of ISO week {WEEK}")
    return [export._speed_subtile(
        dataclasses.replace(header, start_segment_index=start, subtile_segments=count),
        [r for r in rows if start <= r["segment_index"] < start + count])
        for start, count in subtile_ranges(total)]


@pytest.mark.parametrize("implementation", sorted(WRITERS))
def test_exported_files_parse_to_the_same_messages_as_before(
        db: Database, implementation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _week_data(db)
    result = build(db)
    monkeypatch.setattr(export, "subtile", WRITERS[implementation])
    totals = {t.tile: t.total_segments for t in result.tiles}
    assert set(totals) == {TILE, CHILD}
    for tile, total in totals.items():
        with db.connect() as conn:
            files = list(export.speed_objects(conn, "AUTO", WEEK, tile, total))
        before = _before(db, tile, total)
        assert [n for n, _, _ in files] == list(range(len(before))) and before
        for (_, spd, nex), old in zip(files, before, strict=True):
            for body, old_bytes in zip((spd, nex), old, strict=True):
                new = speedtile_pb2.SpeedTile.FromString(gzip.decompress(body))
                assert new == speedtile_pb2.SpeedTile.FromString(old_bytes)
                assert new.SerializeToString() == old_bytes == gzip.decompress(body)
