"""The whole sensors day, CSV in -> enriched and queryable in PostgreSQL -> Parquet out, ours
against DuckDB's CSV -> enriched -> Parquet (issue 16), phase by phase.

One day file of ``--detectors`` x 1,440 minutes (numpy, seeded; time-ordered as a feed writes
it; quarter-km/h speeds, 5 % without a speed; plain CSV, not timed) is

- ours: ingested by ``renderer.sensors.ingest`` into a fresh database (ledger, rejects,
  validation; the day, fresh, enriched in the same transaction by the default C engine,
  ``renderer.sensors.fused``), the day items' work done (``renderer.sensors.day.enrich_item``
  for each pending day, committed: with the day enriched by ingest, nothing to compute; with
  ``--no-fuse`` the day is enriched here) and exported by
  ``renderer.sensors.export.export_days`` as Parquet;
- DuckDB (2 threads): ``read_csv`` typed, the windows of ``benchmarks/sensors_one.py``, every
  column written by ``COPY ... TO`` Parquet (zstd), sorted as ours;
- DuckDB with PostgreSQL in and out, the same stages as ours (``benchmarks/duckdb_pg.py
  whole``, DuckDB 1.5.5 and its postgres extension, in a venv of its own): the CSV read typed,
  the raw rows written into a table shaped as sensors_raw (key maintained), the enrichment
  computed and written into one shaped as a day of sensors_enriched (key after), in one
  transaction, and the Parquet written from the enriched rows it holds; its CPU and the
  cluster's. Its line ``whole_day_ratio_pg=R`` (its CPU seconds over ours) comes before the
  last.

The outputs are compared row by row (averages within 1e-9). Each phase of ours prints its
wall time, this process's CPU (the client) and the cluster's (the server: every process of
the private cluster, from /proc) apart. The last line is ``whole_day_ratio=R``, DuckDB's
CPU seconds over ours (goal: >= 0.5, within 2x). Run alone or from ``benchmarks/sensors.py``:

    .venv/bin/python benchmarks/sensors_whole.py [--detectors 1000] [--no-fuse]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import duckdb_pg
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
from scratch import cluster_seconds, drop_database, postmaster_of, scratch_database
from sensors_one import JAM, SPEED_DIFF, WINDOWS

from renderer.db import Database, connect
from renderer.localdb import Cluster
from renderer.sensors.day import enrich_item
from renderer.sensors.enrich import pending_days
from renderer.sensors.export import day_key, export_days
from renderer.sensors.ingest import ingest

WHOLE_DB = "renderer_bench_sensors_whole"
DAY = date(2026, 1, 2)

DUCKDB_WHOLE = f"""
COPY (
SELECT uniqueid, to_timestamp(t) AS recordtimestamp, currentspeed, bezettingsgraad,
       previousspeed,
       ({JAM})::TINYINT AS trafficjamindicator,
       trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
       trafficintensityclass4, trafficintensityclass5,
       ({SPEED_DIFF})::TINYINT
           AS speeddiffindicator,
       avgspeed2minutes, avgspeed10minutes
  FROM (SELECT *,
               {WINDOWS}
          FROM read_csv($csv, header = true, columns = {{
              'uniqueid': 'INTEGER', 'recordtimestamp': 'BIGINT', 'currentspeed': 'DOUBLE',
              'bezettingsgraad': 'FLOAT', 'trafficintensityclass1': 'INTEGER',
              'trafficintensityclass2': 'INTEGER', 'trafficintensityclass3': 'INTEGER',
              'trafficintensityclass4': 'INTEGER', 'trafficintensityclass5': 'INTEGER'}})
               AS raw(uniqueid, t, currentspeed, bezettingsgraad, trafficintensityclass1,
                      trafficintensityclass2, trafficintensityclass3,
                      trafficintensityclass4, trafficintensityclass5)) w
 ORDER BY uniqueid, recordtimestamp
) TO '{{out}}' (FORMAT parquet, COMPRESSION zstd)
"""


def write_day_csv(path: Path, detectors: int, seed: int = 16) -> int:
    """One day of minute records, time-ordered, as a feed writes it; the rows written."""
    rng = np.random.default_rng(seed)
    lo = int(datetime.combine(DAY, datetime.min.time(), UTC).timestamp())
    minutes = np.repeat(np.arange(1440), detectors)
    ids = np.tile(np.arange(1000, 1000 + detectors, dtype=np.int32), 1440)
    quarters = rng.integers(8, 520, ids.size)  # 2 .. 130 km/h in quarters
    speed = pa.array(quarters / 4, mask=rng.random(ids.size) < 0.05)
    table = pa.table({
        "uniqueid": ids, "recordtimestamp": lo + 60 * minutes,
        "currentspeed": speed,
        "bezettingsgraad": np.round(rng.random(ids.size) * 60, 1).astype(np.float32),
        **{f"trafficintensityclass{i}": rng.integers(0, 30, ids.size, dtype=np.int32)
           for i in range(1, 6)}})
    pacsv.write_csv(table, path)
    return table.num_rows


class Clock:
    """(wall, client CPU, server CPU) of a phase: this process, and a cluster's processes."""

    def __init__(self, url: str) -> None:
        self.postmaster = postmaster_of(url)

    def server(self) -> float:
        return cluster_seconds(self.postmaster)

    def time(self, step: Callable[[], Any]) -> tuple[float, float, float, Any]:
        s0 = self.settled()
        w0, c0 = time.perf_counter(), time.process_time()
        result = step()
        wall, client = time.perf_counter() - w0, time.process_time() - c0
        return wall, client, self.settled() - s0, result

    def settled(self) -> float:
        """The server's CPU once the step's backends have exited and been reaped (read
        while one is exiting, its seconds are in neither the live nor the reaped sum and
        land in the next phase, or go negative)."""
        last = self.server()
        for _ in range(20):
            time.sleep(0.2)
            now = self.server()
            if now - last < 0.005:
                return now
            last = now
        return last


def ours(url: str, csv: Path, out: Path, clock: Clock,
         fuse: bool = True) -> tuple[float, list[str]]:
    """The whole day through our system; (CPU seconds, lines to print)."""
    with connect(url) as conn:
        conn.execute("CHECKPOINT")
    lines, total = [], 0.0

    def enrich() -> str:
        rows, computed = 0, 0
        with connect(url) as conn:
            for day, _ in pending_days(conn):
                n, done_here = enrich_item(conn, day)
                conn.commit()
                rows, computed = rows + n, computed + done_here
        return f"{rows} rows ({computed} days computed here)"

    def export() -> str:
        with connect(url, autocommit=True) as conn:
            return f"{export_days(conn, [DAY], str(out), 'parquet')[0].rows} rows"

    def ingest_file() -> str:
        report = ingest(Database(url), [str(csv)], enrich=fuse)
        return (f"{report.rows['rows_accepted']} rows"
                f" ({len(report.files[0].enriched)} days enriched in ingest)")

    phases = [("ingest", ingest_file),
              ("enrich", enrich), ("export", export)]
    for name, step in phases:
        wall, client, server, rows = clock.time(step)
        total += client + server
        lines.append(f"  {name}: {rows}, {wall:.2f} s wall, client {client:.2f} CPU s,"
                     f" server {server:.2f} CPU s")
    return total, lines


def run_duckdb(csv: Path, out: Path) -> tuple[float, float]:
    con = duckdb.connect()
    con.execute("SET threads = 2")
    w0, c0 = time.perf_counter(), time.process_time()
    con.execute(DUCKDB_WHOLE.replace("{out}", str(out)), {"csv": str(csv)})
    return time.perf_counter() - w0, time.process_time() - c0


def _frame(path: Path) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    return frame.with_columns(t=pl.col("recordtimestamp").dt.epoch("s"))


def differ(a: pl.DataFrame, b: pl.DataFrame) -> int:
    """Rows of either side without an equal row on the other (averages within 1e-9)."""
    both = a.join(b, on=["uniqueid", "t"], how="full", suffix="_x", coalesce=True)
    bad = pl.lit(False)
    for c in ("currentspeed", "previousspeed", "avgspeed2minutes", "avgspeed10minutes",
              "speeddiffindicator", "trafficjamindicator", "bezettingsgraad",
              *(f"trafficintensityclass{i}" for i in range(1, 6))):
        x, y = pl.col(c).cast(pl.Float64), pl.col(c + "_x").cast(pl.Float64)
        same = ((x - y).abs() <= 1e-9) | (x.is_null() & y.is_null())
        bad = bad | ~same.fill_null(False)
    return both.filter(bad).height


def run_duckdb_pg(url: str, csv: Path, out: Path) -> tuple[dict[str, Any], list[str]]:
    """DuckDB with its postgres extension (benchmarks/duckdb_pg.py, its best settings of the
    day's sweep): the CSV read, raw rows and the enriched day written into PostgreSQL, the
    Parquet written; its report (``total``: its CPU and the cluster's) and lines."""
    r = duckdb_pg.run(duckdb_pg.python(), "whole", url, csv, out, postmaster_of(url),
                      json.dumps(duckdb_pg.DEFAULTS))
    r["total"] = r["cpu"] + r["server"]
    lines = [f"  duckdb_pg: {name}, {wall:.2f} s wall, client {cpu:.2f} CPU s,"
             f" server {server:.2f} CPU s" for name, wall, cpu, server in r["steps"]
             if wall >= 0.01]
    return r, lines


def whole_day(server: str, detectors: int,
              fuse: bool = True) -> tuple[float, float, float, list[str]]:
    """(ours CPU s, DuckDB CPU s, DuckDB-PG CPU s, lines to print); the scratch database is
    dropped."""
    url = scratch_database(server, WHOLE_DB)
    folder = Path(tempfile.mkdtemp(prefix="bench-sensors-whole-"))
    try:
        csv = folder / f"sensors-{DAY}.csv"
        rows = write_day_csv(csv, detectors)
        clock = Clock(url)
        ours_cpu, lines = ours(url, csv, folder / "lake", clock, fuse)
        duck_path = folder / "duck.parquet"
        duck_s, duck_cpu = run_duckdb(csv, duck_path)
        pg_path = folder / "duck_pg.parquet"
        pg, pg_lines = run_duckdb_pg(url, csv, pg_path)
        mine = _frame(folder / "lake" / day_key(DAY, "parquet"))
        bad = differ(mine, _frame(duck_path))
        bad_pg = differ(mine, _frame(pg_path))
        lines = [f"whole day ({rows} rows, CSV {csv.stat().st_size >> 20} MiB):", *lines,
                 *pg_lines,
                 f"  ours: {ours_cpu:.2f} CPU s; duckdb: {duck_s:.2f} s wall,"
                 f" {duck_cpu:.2f} CPU s (2 threads); {bad} rows differ",
                 f"  duckdb_pg (CSV in, raw and enriched rows into PostgreSQL, Parquet out):"
                 f" {pg['wall']:.2f} s wall, {pg['cpu']:.2f} + server {pg['server']:.2f} ="
                 f" {pg['total']:.2f} CPU s; {pg['rows']} rows in PostgreSQL; {bad_pg} rows"
                 " of its Parquet differ"]
        if bad or bad_pg:
            raise SystemExit("\n".join([*lines, "ours and DuckDB disagree: the run is void"]))
        return ours_cpu, duck_cpu, pg["total"], lines
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        drop_database(server, WHOLE_DB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=1000)
    parser.add_argument("--no-fuse", action="store_true",
                        help="leave the day to the day items' work (the route before)")
    args = parser.parse_args()
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="renderer-bench-sensors-whole-")))
    try:
        ours_cpu, duck_cpu, pg_cpu, lines = whole_day(cluster.ensure_started(),
                                                       args.detectors, not args.no_fuse)
        print("\n".join(lines))
        print(f"load average: {os.getloadavg()[0]:.1f}")
        print(f"whole_day_ratio_pg={pg_cpu / ours_cpu:.3f}")
        print(f"whole_day_ratio={duck_cpu / ours_cpu:.3f}")
    finally:
        cluster.stop()
        shutil.rmtree(cluster.home, ignore_errors=True)


if __name__ == "__main__":
    main()
