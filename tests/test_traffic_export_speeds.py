"""`renderer traffic export-speeds`: a week's published hours as Parquet or CSV, equal to the
database, streamed in batches."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from renderer.cli import main
from renderer.db import Database
from renderer.storage import open_store
from renderer.traffic import export, export_speeds, tables
from renderer.traffic.decode import decode_file
from renderer.traffic.speedtile_pack import unpack_row
from renderer.traffic.tables import EXPORT_COLUMNS, names, open_table
from tests.factories import add_speeds
from tests.test_traffic_speedtile import CHILD, FIRST, TILE, WEEK, build, load_random_week, seg


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def _week(db: Database, seed: int = 5) -> None:
    _, _, min_count = load_random_week(db, seed)
    build(db, min_count=min_count)
    with db.connect() as conn:  # and a second mode, a few segments
        add_speeds(conn, FIRST, {seg(9): {3: 30, 4: 0}}, mode="BUS")
        conn.commit()


def expected(db: Database) -> list[tuple[Any, ...]]:
    """The published hours of the week, read from the arrays in Python (not the export's
    SQL), in export order."""
    with db.connect() as conn:
        rows = conn.execute("SELECT * FROM traffic_speeds WHERE first_hour = %s",
                            [FIRST]).fetchall()
    want = []
    for r in map(unpack_row, rows):
        s = r["segment_id"]
        for k, how in enumerate(r["hours"]):
            if r["prevalences"][k]:
                want.append((r["mode"], WEEK, s & 7, (s & 0x1FFFFFF) >> 3, s, s >> 25, how,
                             r["speeds"][k], r["speed_variances"][k], r["prevalences"][k],
                             r["next_hours"].count(how), r["observations"][k],
                             r["mean_speeds"][k], r["length"]))
    return sorted(want, key=lambda w: (w[0], w[2], w[3], w[4], w[6]))


def _parquet(path: Path) -> list[tuple[Any, ...]]:
    table = pq.read_table(path)
    assert table.schema.names == names(EXPORT_COLUMNS)
    return [tuple(r.values()) for r in table.to_pylist()]


def test_parquet_read_back_equals_the_database(db: Database, renderer_env: dict[str, str],
                                               tmp_path: Path) -> None:
    _week(db)
    out = tmp_path / "week.parquet"
    result = invoke("traffic", "export-speeds", "--week", WEEK, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    want = expected(db)
    assert _parquet(out) == want and len(want) > 100
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["rows"] == len(want) and summary["tiles"] == 3  # AUTO: 2 tiles, BUS: 1
    assert {w[0] for w in want} == {"AUTO", "BUS"}
    assert ("BUS", WEEK, 0, TILE.index, seg(9), 9, 3, 30, 0, 5, 0, 3, 30, 100) in want


def test_csv_equals_the_database(db: Database, renderer_env: dict[str, str],
                                 tmp_path: Path) -> None:
    _week(db)
    out = tmp_path / "week.csv"
    result = invoke("traffic", "export-speeds", "--week", WEEK, "--format", "csv",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    with out.open() as f:
        got = list(csv.reader(f))
    assert got[0] == names(EXPORT_COLUMNS)
    assert got[1:] == [["" if v is None else str(v) for v in w] for w in expected(db)]
    stdout = invoke("traffic", "export-speeds", "--week", WEEK, "--format", "csv", "--out", "-")
    assert stdout.exit_code == 0
    assert list(csv.reader(stdout.stdout.splitlines())) == got


def test_tiles_and_modes_filter(db: Database, renderer_env: dict[str, str],
                                tmp_path: Path) -> None:
    _week(db)
    want = expected(db)
    out = tmp_path / "w.parquet"

    def run(*args: str) -> list[tuple[Any, ...]]:
        result = invoke("traffic", "export-speeds", "--week", WEEK, "--out", str(out), *args)
        assert result.exit_code == 0, result.output
        return _parquet(out)

    # a level-0 tile holds its children; a child alone is only its own rows
    assert run("--tile", f"0/{TILE.index}", "--mode", "auto") == [w for w in want
                                                                if w[0] == "AUTO"]
    assert run("--tile", f"1/{CHILD.index}") == [w for w in want if w[3] == CHILD.index]
    assert run("--mode", "BUS") == [w for w in want if w[0] == "BUS"]


def test_rows_are_streamed_in_batches(db: Database, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    _week(db)
    monkeypatch.setattr(export_speeds, "BATCH", 7)
    batches: list[int] = []
    steps: list[int] = []

    class Spy:
        def __init__(self, inner: tables.TableWriter) -> None:
            self.inner = inner

        def write(self, rows: Any) -> None:
            batches.append(len(rows))
            self.inner.write(rows)

    out = tmp_path / "w.parquet"
    with db.connect() as conn, open_table(str(out), EXPORT_COLUMNS, "parquet") as table:
        chosen = export_speeds.week_tiles(conn, WEEK)
        result = export_speeds.export(conn, WEEK, Spy(table), progress=steps.append)
    assert max(batches) == 7 and len(batches) > 10
    assert _parquet(out) == expected(db) and result.rows == sum(batches)
    assert sum(steps) == sum(t.segments for t in chosen)  # the progress bar ends full


def test_the_export_equals_the_decoded_speed_files(db: Database, tmp_path: Path) -> None:
    _, _, min_count = load_random_week(db, 11)
    store = open_store(str(tmp_path / "store"))
    with db.connect() as conn:
        export.export_speed_week(conn, store, build(db, min_count=min_count))
    out = tmp_path / "w.parquet"
    with db.connect() as conn, open_table(str(out), EXPORT_COLUMNS, "parquet") as table:
        export_speeds.export(conn, WEEK, table)
    spd_columns = ["level", "index", "segment_id", "segment_index", "hour_of_week", "speeds",
                   "speedVariances", "prevalences", "nextSegmentCounts"]
    exported = pq.read_table(out).select(spd_columns).to_pylist()
    decoded = [dict(zip(names(columns), row, strict=True))
               for f in (tmp_path / "store").rglob("*.spd.*.gz")
               for columns, rows in [decode_file(f)] for row in rows]
    key = ("level", "index", "segment_id", "hour_of_week")
    assert sorted(exported, key=lambda r: [r[k] for k in key]) == sorted(
        ({k: d[k] for k in spd_columns} for d in decoded), key=lambda r: [r[k] for k in key])


def test_errors_are_one_line(db: Database, renderer_env: dict[str, str], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    _week(db)
    out = tmp_path / "w.parquet"
    result = invoke("traffic", "export-speeds", "--week", "2016-W45", "--out", str(out))
    assert result.exit_code == 2
    assert result.output == (f"error: no speed tiles built for 2016-W45 (weeks with speed "
                             f"tiles: {WEEK})\n")
    result = invoke("traffic", "export-speeds", "--week", "2016-W60", "--out", str(out))
    assert result.exit_code == 2 and result.output.count("\n") == 1
    result = invoke("traffic", "export-speeds", "--week", WEEK, "--tile", "3/1", "--out",
                    str(out))
    assert result.exit_code == 2 and result.output.startswith("error: --tile '3/1'")
    result = invoke("traffic", "export-speeds", "--week", WEEK,
                    "--out", str(tmp_path / "no" / "such" / "w.parquet"))
    assert result.exit_code == 2 and result.output.startswith("error: cannot write")
    assert not out.exists() and list(tmp_path.glob(".*partial")) == []
    monkeypatch.setenv("RENDERER_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    result = invoke("traffic", "export-speeds", "--week", WEEK, "--out", str(out))
    assert result.exit_code == 1 and result.output.startswith("error: cannot connect")
