"""Reference tiles: percentiles and hourly means over the window of weekly speeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from renderer import tiles
from renderer.db import Database
from renderer.formats.speedtiles import (
    SubTile,
    decode_speed_tile,
    encode_subtile,
    gzip_decompress,
)
from renderer.storage import Store, open_store
from renderer.tiles import Tile
from renderer.traffic import export, reftile
from renderer.traffic.reftile import TileRef
from tests.factories import add_speeds
from tests.test_traffic_speedtile import CHILD, FIRST, TILE, seg

WEEK = 168


def build(db: Database, tile: Tile = TILE, mode: str = "AUTO", **options: Any) -> reftile.RefBuild:
    with db.connect() as conn:
        result = reftile.build(conn, TileRef(mode, tile), **options)
        conn.commit()
    return result


def reference(db: Database, segment_id: int, mode: str = "AUTO") -> dict[str, Any] | None:
    with db.connect() as conn:
        return conn.execute("SELECT * FROM traffic_reference WHERE mode = %s AND segment_id = %s",
                            [mode, segment_id]).fetchone()


def test_percentiles_are_lower_nearest_rank_over_nonzero_hourly_speeds(db: Database) -> None:
    s = seg(1)
    with db.connect() as conn:
        add_speeds(conn, FIRST, {s: {0: 10, 1: 20, 2: 0}})
        add_speeds(conn, FIRST + WEEK, {s: {0: 30, 1: 40, 5: 50}})
        conn.commit()
    result = build(db)
    row = reference(db, s)
    assert row is not None
    # sorted non-zero speeds 10 20 30 40 50: element floor(5 * p), as OpenTraffic
    assert (row["ref20"], row["ref40"], row["ref60"], row["ref80"]) == (20, 30, 40, 50)
    assert row["hours"] == [0, 1, 5] and row["hourly"] == [20, 30, 50]
    assert (row["samples"], row["weeks"], row["observations"]) == (5, 2, 18)
    (tile,) = result.tiles
    assert tile.tile == TILE and tile.present
    assert (tile.range_start, tile.range_end) == (FIRST * 3600, (FIRST + 2 * WEEK) * 3600)
    assert tile.weeks == 2 and tile.segments == 1 and result.end_hour == FIRST + WEEK


def test_the_window_is_the_last_weeks_of_the_tile(db: Database) -> None:
    s = seg(1)
    with db.connect() as conn:
        for k in range(4):
            add_speeds(conn, FIRST + k * WEEK, {s: {0: 10 * (k + 1)}})
        conn.commit()
    build(db, weeks=2)
    row = reference(db, s)
    assert row is not None and row["hourly"] == [35] and row["weeks"] == 2  # weeks 3 and 4
    build(db)  # 52 weeks: all four
    row = reference(db, s)
    assert row is not None and row["weeks"] == 4 and row["ref20"] == 10


def test_children_and_modes_are_separate(db: Database) -> None:
    with db.connect() as conn:
        add_speeds(conn, FIRST, {seg(1): {0: 30}, seg(7, CHILD): {3: 60}})
        add_speeds(conn, FIRST, {seg(1): {0: 20}}, mode="BUS")
        conn.commit()
    result = build(db)
    assert {t.tile for t in result.tiles} == {TILE, CHILD}
    assert reference(db, seg(7, CHILD))["ref80"] == 60  # type: ignore[index]
    assert reference(db, seg(1), "BUS") is None
    build(db, mode="BUS")
    assert reference(db, seg(1), "BUS")["ref20"] == 20  # type: ignore[index]


def test_a_tile_without_speeds_loses_its_reference(db: Database, tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    with db.connect() as conn:
        add_speeds(conn, FIRST, {seg(1): {0: 30}, seg(7, CHILD): {3: 60}})
        conn.commit()
    _export(db, store, build(db))
    assert store.exists(export.reference_key("AUTO", CHILD))
    with db.connect() as conn:
        conn.execute("DELETE FROM traffic_speeds WHERE segment_id = %s", [seg(7, CHILD)])
        conn.execute("DELETE FROM traffic_speed_tiles WHERE level = 1")
        conn.commit()
    result = build(db)
    gone = [t for t in result.tiles if not t.present]
    assert [t.tile for t in gone] == [CHILD]
    _export(db, store, result)
    assert not store.exists(export.reference_key("AUTO", CHILD))
    assert store.exists(export.reference_key("AUTO", TILE))


def _export(db: Database, store: Store, result: reftile.RefBuild) -> None:
    with db.connect() as conn:
        for ref in result.tiles:
            export.export_reference_tile(conn, store, result.spec.mode, ref.tile, ref.summary())


def test_ref_file_has_the_range_as_metadata(db: Database, tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    with db.connect() as conn:
        add_speeds(conn, FIRST, {seg(3): {0: 30, 1: 40}, seg(10_004): {2: 70}})
        conn.commit()
    _export(db, store, build(db))
    key = "0/002/140.ref.gz"
    info = store.head(key)
    assert info is not None
    assert info.metadata == {"rangestart": str(FIRST * 3600),
                             "rangeend": str((FIRST + WEEK) * 3600)}
    # OpenTraffic's createRefSpeedTile: ONE subtile with every segment of the tile
    (ref,) = decode_speed_tile(gzip_decompress(store.get(key)))
    assert (ref.level, ref.index) == (0, 2140)
    assert (ref.start_segment_index, ref.subtile_segments, ref.total_segments) == (
        0, 10_005, 10_005)
    assert (ref.range_start, ref.range_end) == (FIRST * 3600, (FIRST + WEEK) * 3600)
    assert (ref.unit_size, ref.entry_size) == (604_800, 3600)
    assert len(ref.arrays["reference_speeds_20"]) == 10_005
    assert ref.arrays["reference_speeds_20"][3] == 30
    assert ref.arrays["reference_speeds_80"][3] == 40
    assert ref.arrays["reference_speeds_60"][10_000:] == [0, 0, 0, 0, 70]
    # speeds (field 12): the 168 hourly means of each segment, 0 for no data
    speeds = ref.arrays["speeds"]
    assert len(speeds) == 10_005 * 168
    assert speeds[3 * 168:3 * 168 + 3] == [30, 40, 0]
    assert speeds[10_004 * 168 + 2] == 70
    assert sum(speeds) == 30 + 40 + 70
    before = store.get(key)
    _export(db, store, build(db))
    assert store.get(key) == before  # byte-identical rerun


def test_hourly_means_round_halves_away_from_zero(db: Database, tmp_path: Path) -> None:
    # OpenTraffic wrote int(round(total / count)) under Python 2: 22.5 -> 23, 24.5 -> 25
    # (round half to even would write 22 and 24)
    s = seg(1)
    with db.connect() as conn:
        add_speeds(conn, FIRST, {s: {0: 22, 1: 24, 2: 10, 3: 20}})
        add_speeds(conn, FIRST + WEEK, {s: {0: 23, 1: 25, 2: 11, 3: 21}})
        add_speeds(conn, FIRST + 2 * WEEK, {s: {3: 21}})
        conn.commit()
    result = build(db)
    row = reference(db, s)
    assert row is not None
    assert row["hours"] == [0, 1, 2, 3] and row["hourly"] == [23, 25, 11, 21]
    store = open_store(str(tmp_path))
    _export(db, store, result)
    (ref,) = decode_speed_tile(gzip_decompress(store.get("0/002/140.ref.gz")))
    assert ref.arrays["speeds"][168:172] == [23, 25, 11, 21]


def test_reference_encoder_equals_the_formats_module() -> None:
    head = SubTile(1, 37740, 0, 4, 4, 1_000, 2_000, description="d")
    rows = [{"segment_index": 1, "ref20": 10, "ref40": 20, "ref60": 30, "ref80": 40,
             "hours": [0, 5, 167], "hourly": [11, 12, 13]},
            {"segment_index": 3, "ref20": 1, "ref40": 2, "ref60": 3, "ref80": 4,
             "hours": [7], "hourly": [9]}]
    speeds = [0] * 4 * 168
    for row in rows:
        for how, mean in zip(row["hours"], row["hourly"], strict=True):
            speeds[row["segment_index"] * 168 + how] = mean
    arrays = {"speeds": speeds, **{f"reference_speeds_{p}": [0, 10 * p // 20, 0, p // 20]
                                   for p in (20, 40, 60, 80)}}
    expected = encode_subtile(SubTile(**{**head.__dict__, "arrays": arrays}), "ref")
    assert export._reference_subtile(head, rows) == expected


def test_keys_and_errors() -> None:
    from renderer.errors import InputError

    spec = TileRef("AUTO", Tile(1, 37740))
    assert TileRef.parse(spec.key) == spec
    for bad in ("AUTO", "AUTO/7/1", "/0/1"):
        with pytest.raises(InputError):
            TileRef.parse(bad)
    assert tiles.tile_id(TILE) == TILE.index << 3
