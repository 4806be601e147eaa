"""`renderer traffic decode`: OpenTraffic tile files as tables, equal to the database rows
they were exported from."""

from __future__ import annotations

import csv
import dataclasses
import errno
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from renderer.cli import main
from renderer.db import Database
from renderer.formats import speedtile_pb2
from renderer.formats.speedtiles import Kind, SubTile, encode_subtile, gzip_compress
from renderer.storage import open_store
from renderer.tiles import Tile, segment_id
from renderer.traffic import export, reftile
from renderer.traffic.decode import decode_file, kind_of_name, sibling_speed_file
from renderer.traffic.reftile import TileRef
from renderer.traffic.speedtile_pack import unpack_row
from renderer.traffic.tables import NEXT_COLUMNS, REFERENCE_COLUMNS, SPEED_COLUMNS, names
from tests.test_traffic_speedtile import CHILD, FIRST, TILE, build, load_random_week

_U32 = (1 << 32) - 1


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


# --- a hand-made subtile, no database -------------------------------------------------------

def _tile_file(tmp_path: Path, name: str, sub: SubTile, gz: bool = True) -> Path:
    body = encode_subtile(sub)
    path = tmp_path / name
    path.write_bytes(gzip_compress(body) if gz else body)
    return path


def _spd_and_nex(tmp_path: Path) -> tuple[Path, Path]:
    """Segments 10_000 and 10_001 of tile 0/2140 (subtile 1): hour 5 of the first with two
    next entries, hour 167 of the second with one."""
    size = 2 * 168
    arrays: dict[str, list[int]] = {n: [0] * size for n in
                                    ("speeds", "speed_variances", "prevalences",
                                     "next_segment_indices", "next_segment_counts")}
    arrays["speeds"][5], arrays["prevalences"][5], arrays["next_segment_counts"][5] = 40, 3, 2
    arrays["speed_variances"][5] = 9
    arrays["speeds"][168 + 167], arrays["prevalences"][168 + 167] = 55, 1
    arrays["next_segment_counts"][168 + 167] = 1
    arrays["next_segment_indices"] = [0] * 6 + [2] * (168 + 167 - 6) + [2]
    head = SubTile(0, 2140, 10_000, 10_002, 2, FIRST * 3600, (FIRST + 168) * 3600)
    spd = _tile_file(tmp_path, "140.spd.1.gz", dataclasses.replace(head, arrays=arrays))
    nex = _tile_file(tmp_path, "140.nex.1.gz", dataclasses.replace(head, arrays={
        "next_segment_ids": [7, export.NO_NEXT_ID, 8], "next_segment_delays": [0, 3, 1],
        "next_segment_delay_variances": [0, 4, 0], "next_segment_queue_lengths": [0, 0, 12],
        "next_segment_queue_length_variances": [0, 0, 2]}))
    return spd, nex


def test_a_speed_file_is_a_row_per_hour_with_data(tmp_path: Path) -> None:
    spd, _ = _spd_and_nex(tmp_path)
    columns, rows = decode_file(spd)
    assert columns == SPEED_COLUMNS
    first, second = segment_id(TILE, 10_000), segment_id(TILE, 10_001)
    assert list(rows) == [(0, 2140, first, 10_000, 5, 40, 9, 3, 0, 2),
                          (0, 2140, second, 10_001, 167, 55, 0, 1, 2, 1)]


def test_a_next_file_takes_segments_and_hours_from_its_speed_file(tmp_path: Path) -> None:
    spd, nex = _spd_and_nex(tmp_path)
    assert sibling_speed_file(nex) == spd
    columns, rows = decode_file(nex)
    assert columns == NEXT_COLUMNS
    first, second = segment_id(TILE, 10_000), segment_id(TILE, 10_001)
    assert list(rows) == [(0, 2140, 0, first, 10_000, 5, 7, 0, 0, 0, 0),
                          (0, 2140, 1, first, 10_000, 5, export.NO_NEXT_ID, 3, 4, 0, 0),
                          (0, 2140, 2, second, 10_001, 167, 8, 1, 0, 12, 2)]
    spd.rename(tmp_path / "elsewhere.spd.1.gz")  # alone: entries without segment and hour
    assert [row[3:6] for row in decode_file(nex)[1]] == [(None, None, None)] * 3
    given = decode_file(nex, tmp_path / "elsewhere.spd.1.gz")[1]
    assert [row[3] for row in given] == [first, first, second]


def test_a_reference_file_repeats_the_percentiles_on_each_hour(tmp_path: Path) -> None:
    speeds = [0] * (3 * 168)
    speeds[2], speeds[168 * 2 + 100] = 30, 50
    ref = _tile_file(tmp_path, "740.ref.gz", SubTile(
        1, 37740, 0, 3, 3, 0, 604_800, {"speeds": speeds,
                                        "reference_speeds_20": [10, 20, 30],
                                        "reference_speeds_40": [11, 21, 31],
                                        "reference_speeds_60": [12, 0, 32],
                                        "reference_speeds_80": [13, 23, 33]}), gz=False)
    columns, rows = decode_file(ref)
    assert columns == REFERENCE_COLUMNS
    t = Tile(1, 37740)
    assert list(rows) == [
        (1, 37740, segment_id(t, 0), 0, 2, 30, 10, 11, 12, 13),
        (1, 37740, segment_id(t, 1), 1, None, 0, 20, 21, 0, 23),  # percentiles, no hour
        (1, 37740, segment_id(t, 2), 2, 100, 50, 30, 31, 32, 33)]


def test_the_kind_comes_from_the_name_else_from_the_arrays(tmp_path: Path) -> None:
    assert kind_of_name("2016/44/0/002/140.spd.0.gz") is Kind.SPEED
    assert kind_of_name("140.nex.12") is Kind.NEXT and kind_of_name("x.gz") is None
    spd, nex = _spd_and_nex(tmp_path)
    assert decode_file(spd.rename(tmp_path / "download.bin"))[0] == SPEED_COLUMNS
    assert decode_file(nex.rename(tmp_path / "download2.bin"))[0] == NEXT_COLUMNS


def test_csv_and_json_on_stdout(tmp_path: Path) -> None:
    spd, _ = _spd_and_nex(tmp_path)
    result = invoke("traffic", "decode", str(spd))
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.output)))
    assert table[0] == names(SPEED_COLUMNS)
    assert table[1] == [str(v) for v in next(decode_file(spd)[1])]
    result = invoke("traffic", "decode", str(spd), "--format", "json")
    assert result.exit_code == 0, result.output
    decoded = json.loads(result.output)
    assert decoded[1]["speeds"] == 55 and decoded[1]["hour_of_week"] == 167
    assert len(decoded) == 2


@pytest.mark.parametrize("body", [b"hello, world\n", b"\x1f\x8b\x08broken", b"",
                                  bytes(range(256)) * 3])
def test_a_file_that_is_not_a_tile_is_a_usage_error(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "x.spd.0.gz"
    path.write_bytes(body)
    result = invoke("traffic", "decode", str(path))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "is not an OpenTraffic speed tile" in result.output


def test_wrong_array_lengths_are_not_a_tile(tmp_path: Path) -> None:
    # a valid protobuf whose speeds do not cover subtile_segments x 168 slots
    message = speedtile_pb2.SpeedTile()
    sub = message.subtiles.add()
    sub.level, sub.index, sub.subtileSegments = 0, 2140, 2
    sub.unitSize, sub.entrySize = 604800, 3600
    sub.speeds.extend([1] * 168)  # our encoder refuses this: written by hand
    path = tmp_path / "x.spd.0.gz"
    path.write_bytes(message.SerializeToString())
    result = invoke("traffic", "decode", str(path))
    assert result.exit_code == 2
    assert "speeds holds 168 values, not 2 segments x 168 hours" in result.output


def test_a_missing_file_is_a_usage_error_and_a_read_failure_a_runtime_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke("traffic", "decode", str(tmp_path / "none.spd.0.gz"))
    assert result.exit_code == 2 and "does not exist" in result.output
    spd, _ = _spd_and_nex(tmp_path)

    def fail(self: Path) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Path, "read_bytes", fail)
    result = invoke("traffic", "decode", str(spd))
    assert result.exit_code == 1
    assert result.output == f"error: cannot read {spd}: Input/output error\n"


# --- our own exports against the database ---------------------------------------------------

@pytest.fixture
def exported(db: Database, tmp_path: Path) -> Path:
    """A random week built and exported (speed and reference tiles) to a folder store."""
    _, _, min_count = load_random_week(db, 7)
    store = open_store(str(tmp_path / "store"))
    result = build(db, min_count=min_count)
    with db.connect() as conn:
        export.export_speed_week(conn, store, result)
        ref = reftile.build(conn, TileRef("AUTO", TILE))
        for tile in ref.tiles:
            export.export_reference_tile(conn, store, "AUTO", tile.tile, tile.summary())
        conn.commit()
    return tmp_path / "store"


def _rows(db: Database, table: str) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY segment_id").fetchall()


def _decoded(store: Path, pattern: str) -> list[tuple[Any, ...]]:
    files = sorted(store.rglob(pattern), key=lambda p: (p.parent, int(p.name.split(".")[2])))
    assert files
    return [row for f in files for row in decode_file(f)[1]]


def _place(segment: int) -> tuple[int, int, int, int]:
    tile_id = segment & 0x1FFFFFF
    return tile_id & 7, tile_id >> 3, segment, segment >> 25


def test_decoded_speed_files_equal_the_database(db: Database, exported: Path) -> None:
    want = []
    for r in map(unpack_row, _rows(db, "traffic_speeds")):
        for k, how in enumerate(r["hours"]):
            if r["prevalences"][k]:  # a published hour
                want.append((*_place(r["segment_id"]), how, r["speeds"][k],
                             r["speed_variances"][k], r["prevalences"][k],
                             r["next_hours"].count(how)))
    got = [row[:8] + row[9:] for row in _decoded(exported, "*.spd.*.gz")]  # no running index
    assert sorted(got) == sorted(want) and len(want) > 100
    assert {row[1] for row in got} == {TILE.index, CHILD.index}


def test_decoded_next_files_equal_the_database(db: Database, exported: Path) -> None:
    want = []
    for r in map(unpack_row, _rows(db, "traffic_speeds")):
        for how, nxt, delay, dvar, queue, qvar in zip(
                r["next_hours"], r["next_ids"], r["delays"], r["delay_variances"],
                r["queue_lengths"], r["queue_length_variances"], strict=True):
            want.append((*_place(r["segment_id"]), how,
                         export.NO_NEXT_ID if nxt is None else nxt, delay, min(dvar, _U32),
                         queue, min(qvar, _U32)))
    got = [row[:2] + row[3:] for row in _decoded(exported, "*.nex.*.gz")]  # without entry
    assert sorted(got) == sorted(want) and len(want) > 100
    # in the file's order: by segment, hour and next id with "no next segment" last
    for tile in (TILE, CHILD):
        ordered = [w for w in want if w[1] == tile.index]
        assert [g for g in got if g[1] == tile.index] == ordered


def test_decoded_reference_files_equal_the_database(db: Database, exported: Path) -> None:
    want = []
    for r in _rows(db, "traffic_reference"):
        refs = (r["ref20"], r["ref40"], r["ref60"], r["ref80"])
        hours = [(h, m) for h, m in zip(r["hours"], r["hourly"], strict=True) if m]
        for how, mean in hours or [(None, 0)]:
            want.append((*_place(r["segment_id"]), how, mean, *refs))
    got = [row for f in sorted(exported.rglob("*.ref.gz")) for row in decode_file(f)[1]]
    assert sorted(got, key=repr) == sorted(want, key=repr) and len(want) > 40
