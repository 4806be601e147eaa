"""Sensor exports that analysts' tools type right: Hive partition values DuckDB, pyarrow and
Athena all read as integers, and nothing but data files in the exported folders."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from renderer.db import Database
from renderer.sensors import export
from renderer.sensors.ingest import ingest
from tests.test_sensors_pipeline import DAYS, _etl, _files

TWO_DIGITS = date(2026, 11, 25)


def test_day_keys_have_no_leading_zeros() -> None:
    assert export.day_key(date(2026, 1, 5), "parquet") == (
        "year=2026/month=1/day=5/sensors-2026-01-05.parquet")
    assert export.day_key(TWO_DIGITS, "csv", "/lake/") == (
        "lake/year=2026/month=11/day=25/sensors-2026-11-25.csv")


@pytest.fixture
def lake(db: Database, tmp_path: Path) -> Path:
    ingest(db, _files(tmp_path, detectors=2))
    out = tmp_path / "lake"
    _etl(db, out)
    return out


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_duckdb_reads_the_partitions_as_integers(lake: Path) -> None:
    source = f"read_parquet('{lake}/**/*.parquet', hive_partitioning = true)"
    types = duckdb.sql(f"SELECT DISTINCT typeof(year), typeof(month), typeof(day)"
                       f" FROM {source}").fetchall()
    assert types == [("BIGINT", "BIGINT", "BIGINT")]
    counted = duckdb.sql(f"SELECT day, count(*) FROM {source}"
                         f" WHERE year = 2026 AND month = 1 AND day >= 6"
                         f" GROUP BY day ORDER BY day").fetchall()
    assert counted == [(6, 2 * 1430), (7, 2 * 1430)]
    assert duckdb.sql(f"SELECT count(*) FROM {source} WHERE month = 1").fetchall() == [
        (3 * 2 * 1430,)]


def test_pyarrow_reads_the_partitions_as_integers(lake: Path) -> None:
    dataset = ds.dataset(lake, format="parquet", partitioning="hive")
    for name in ("year", "month", "day"):
        assert pa.types.is_integer(dataset.schema.field(name).type), name
    table = dataset.to_table(filter=(ds.field("month") == 1) & (ds.field("day") == 5))
    assert table.num_rows == 2 * 1430


def test_the_folder_holds_only_the_data_files(db: Database, lake: Path) -> None:
    assert _files_under(lake) == [f"year={d.year}/month={d.month}/day={d.day}/sensors-{d}.parquet"
                                  for d in DAYS]
    # a day exported again replaces its file, still without a sidecar
    with db.connect() as conn:
        export.export_days(conn, DAYS[:1], str(lake), "parquet")
    assert len(_files_under(lake)) == 3


def test_a_day_of_the_zero_padded_layout_is_replaced(db: Database, lake: Path) -> None:
    day = DAYS[0]
    old = lake / "year=2026" / "month=01" / "day=05" / f"sensors-{day}.parquet"
    old.parent.mkdir(parents=True)
    old.write_bytes((lake / export.day_key(day, "parquet")).read_bytes())
    (old.parent / f".{old.name}.meta.json").write_text("{}")  # as the store wrote them
    with db.connect() as conn:
        export.export_days(conn, [day], str(lake), "parquet")
    assert not old.exists() and not (old.parent / f".{old.name}.meta.json").exists()
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/**/*.parquet',"
                      f" hive_partitioning = true) WHERE day = 5").fetchall() == [(2 * 1430,)]


def test_the_binary_route_writes_the_parquet_the_csv_route_writes(db: Database,
                                                                   lake: Path) -> None:
    """Parquet comes from a binary COPY decoded in C now; the CSV route it replaced, kept as
    its twin, gives the same bytes for every day (NULL speeds and first records included)."""
    nulls = 0
    with db.connect() as conn:
        for day in export.exportable_days(conn):
            table = export.day_table(conn, day)
            nulls += sum(column.null_count for column in table.columns)
            binary = export._parquet_bytes(table)
            assert (binary, table.num_rows) == export.parquet_from_csv(export._day_csv(conn, day))
            assert table.num_rows == 2 * 1430
            assert (lake / export.day_key(day, "parquet")).read_bytes() == binary
    assert nulls > 0
