"""Benchmark of issue 7: sensor-day enrichment, our bulk SQL on the queue vs pandas.

Generates raw loop-detector rows with ``generate_series`` in SQL (not timed): ``--days`` days
x ``--detectors`` detectors x 1,440 minutes (default 30 x 1,000 = 43.2M rows), about 5 %
without a speed, speeds in quarters of km/h (means over four lanes; since 0014), each day
stored in key order (detector, time) as ``sensors ingest`` stores a day file. Then, in one run
against the same PostgreSQL:

- sql: ``plan_etl`` + a pool of ``--processes`` workers running every ``sensors-day`` item
  until the queue is empty: per day one INSERT ... SELECT with RANGE windows over time,
  replacing the day's partition and completing the item in the same transaction;
- sql_one_day: one day enriched by ``renderer.sensors_enrich_day`` in one process (the
  pandas day: same rows, same process count);
- pandas: the same definitions for that one day with a pandas rolling-window implementation
  (``groupby().rolling('120s'/'600s', closed='both')`` over time, ``shift``), end to end like
  ours: the day and its 600 s of context read from PostgreSQL with COPY into ``read_csv``
  (pyarrow engine), computed, and written back with COPY into a table shaped like a day
  partition (same primary key). Its result is checked against ours, row by row;
- pandas_compute: the pandas computation alone (data already in memory, nothing written);
- DuckDB and Polars on the same rows as Parquet (the bar of issue 16: ``ratio_vs_duckdb``);
- duckdb_pg, like for like: DuckDB 1.5.5 with its postgres extension reading the same raw
  rows from this database and writing the enriched day into a PostgreSQL table shaped as a
  day partition (``benchmarks/duckdb_pg.py``, in a venv of its own), after a small printed
  sweep of its settings (the fastest median wall wins), then alternated with ours' C engine;
  compared row by row; CPU is its process's and the cluster's, as ours. Its line
  ``ratio_vs_duckdb_pg=R cpu_ratio_vs_duckdb_pg=R`` comes before the last (its wall and CPU
  over ours). The Parquet day is also run with DuckDB 1.5.5 and 2.0.1 (the version's effect);
- the whole day (``benchmarks/sensors_whole.py``): a day file of ``--detectors`` detectors
  ingested, enriched and exported as Parquet by ours, against DuckDB's CSV -> enriched ->
  Parquet, in a second scratch database; its line ``whole_day_ratio=R`` comes before the last,
  after ``whole_day_ratio_pg=R`` (DuckDB with PostgreSQL in and out, the same stages as ours).

Rates are rows enriched per second, both per wall-clock second and per CPU second. CPU
seconds are those of the whole job: this process and its worker children, plus every process
of the PostgreSQL cluster (postmaster, its exited and live children), read from /proc, so a
shared, loaded machine skews them far less than wall time (needs the server on this machine,
e.g. the embedded cluster; else only wall rates). The last line is
``sql=<r>/s sql_one_day=<r>/s pandas=<r>/s pandas_compute=<r>/s sql_cpu=<r>/cpu-s
pandas_cpu=<r>/cpu-s per_row_ratio=<sql_cpu/pandas_cpu> one_day_ratio=<the same for the
one-process day> wall_ratio=<sql/pandas>`` (goal: per_row_ratio >= 5). one_day_ratio compares
like with like (one process each); the pool's CPU seconds also carry what two busy processes
cost each other on two vCPUs.

    .venv/bin/python benchmarks/sensors.py [--days 30 --detectors 1000 --processes N]
        [--no-sweep] [--sweep-rounds 2] [--pg-reps 2]

By default it starts a private embedded cluster of its own (the settings of the default one,
in a temporary folder, removed afterwards): the CPU clock counts every process of the cluster,
and on a cluster shared with other work it would count that work too. ``--shared`` uses the
configured server instead (RENDERER_DATABASE_URL, or the embedded cluster under
RENDERER_HOME). Either way the data lives in a scratch database ``renderer_bench_sensors``,
dropped afterwards (``--keep`` keeps it, and the private cluster's folder).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import duckdb_pg
import numpy as np
import pandas as pd
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql
from scratch import drop_database, postmaster_of, scratch_database
from sensors_one import DUCKDB_DAY
from sensors_whole import whole_day

from renderer.db import connect, resolve_url
from renderer.localdb import Cluster
from renderer.pool import run_pool
from renderer.sensors.day import DAY_KIND, plan_etl
from renderer.sensors.enrich import enrich_day

BENCH_DB = "renderer_bench_sensors"
START = date(2026, 1, 1)
OUT_COLUMNS = ["uniqueid", "recordtimestamp", "currentspeed", "bezettingsgraad",
               "previousspeed", "trafficjamindicator", *(f"trafficintensityclass{i}"
                                                         for i in range(1, 6)),
               "speeddiffindicator", "avgspeed2minutes", "avgspeed10minutes"]


def generate(url: str, days: int, detectors: int) -> int:
    """Raw rows for every (day, minute, detector); returns the row count."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT renderer.sensors_raw_partition(%s::date + d)"
                     " FROM generate_series(0, %s - 1) d", [START, days])
        for d in range(days):
            day = START + timedelta(days=d)
            conn.execute("""
                INSERT INTO sensors_raw
                SELECT u, %(day)s::timestamp AT TIME ZONE 'UTC' + m * interval '1 minute',
                       -- hundredths of km/h: means over 4 lanes, so quarters
                       CASE WHEN h %% 20 = 0 THEN NULL  -- no measurement
                            WHEN h %% 97 < 9 THEN (5 + h %% 36) * 100 + h %% 4 * 25  -- congested
                            ELSE (45 + h %% 80) * 100 + h %% 4 * 25 END,
                       (h %% 1000) / 10.0, h %% 30, h %% 7, h %% 3, h %% 2, h %% 2, 0
                FROM generate_series(0, 1439) m, generate_series(1, %(n)s) u,
                     LATERAL (SELECT abs(hashint4(u * 7919 + m + %(seed)s)) AS h) x
                ORDER BY u, m
            """, {"day": day, "n": detectors, "seed": d * 1440})
        conn.execute("INSERT INTO sensors_days (day) SELECT %s::date + d"
                     " FROM generate_series(0, %s - 1) d", [START, days])
        conn.execute("VACUUM ANALYZE sensors_raw")
        conn.execute("CHECKPOINT")  # the generator's writes, before any clock starts
        return int(conn.execute("SELECT count(*) FROM sensors_raw").fetchone()[0])


class CpuClock:
    """CPU seconds of this process, its waited-for children and a PostgreSQL cluster."""

    def __init__(self, url: str) -> None:
        self.tick = os.sysconf("SC_CLK_TCK")
        self.postmaster: int | None = None
        try:
            with psycopg.connect(url) as conn:
                folder = conn.execute("SHOW data_directory").fetchone()[0]
            with open(os.path.join(folder, "postmaster.pid")) as f:
                self.postmaster = int(f.readline())
        except (OSError, psycopg.Error, ValueError):
            self.postmaster = None  # a remote or unreadable server: wall time only

    def _stat(self, pid: int | str) -> list[str] | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None

    def _cluster(self) -> float:
        assert self.postmaster is not None
        ticks = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            fields = self._stat(pid)
            if fields is None:
                continue
            own = int(pid) == self.postmaster
            if own or int(fields[1]) == self.postmaster:  # fields[1]: parent pid
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
                if own:
                    ticks += int(fields[13]) + int(fields[14])  # reaped children
        return ticks / self.tick

    def now(self) -> float | None:
        if self.postmaster is None:
            return None
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system + self._cluster()


def run_sql(url: str, days: int, processes: int) -> tuple[float, int]:
    """Enrich every day through the queue; (seconds, rows)."""
    with connect(url) as conn:
        versions = [(START + timedelta(days=d), 1) for d in range(days)]
        t0 = time.perf_counter()
        plan_etl(conn, versions, export=None)
        conn.commit()
    stats = run_pool(url, processes=processes, kinds=[DAY_KIND], until_empty=True)
    elapsed = time.perf_counter() - t0
    if stats.failed:
        raise SystemExit(f"{stats.failed} day items failed")
    with psycopg.connect(url) as conn:
        rows = int(conn.execute("SELECT count(*) FROM sensors_enriched").fetchone()[0])
    return elapsed, rows


def run_sql_one_day(url: str, day: date, clock: CpuClock,
                    engine: str = "c") -> tuple[float, float | None, int]:
    """One day (a rerun: it replaces the pool's) in one process with one engine (the setting
    sensors_enrich_engine): (seconds, CPU s, rows)."""
    with connect(url) as conn:
        c0, t0 = clock.now(), time.perf_counter()
        rows = enrich_day(conn, day, engine)
        conn.commit()
        elapsed, c1 = time.perf_counter() - t0, clock.now()
        return elapsed, (c1 - c0 if c0 is not None and c1 is not None else None), rows


READ = """
COPY (
    SELECT uniqueid, extract(epoch FROM recordtimestamp)::bigint AS t,
           currentspeed_hundredths::float8 / 100 AS currentspeed,
           bezettingsgraad, trafficintensityclass1, trafficintensityclass2,
           trafficintensityclass3, trafficintensityclass4, trafficintensityclass5
    FROM sensors_raw WHERE recordtimestamp >= %(lo)s - interval '600 seconds'
      AND recordtimestamp < %(lo)s + interval '24 hours'
    UNION ALL  -- previousspeed of a detector's first record, when the context has none
    SELECT p.uniqueid, extract(epoch FROM p.recordtimestamp)::bigint,
           p.currentspeed_hundredths::float8 / 100,
           NULL, NULL, NULL, NULL, NULL, NULL
    FROM (SELECT DISTINCT uniqueid FROM sensors_raw WHERE recordtimestamp >= %(lo)s
            AND recordtimestamp < %(lo)s + interval '24 hours') d
    CROSS JOIN LATERAL (
        SELECT * FROM sensors_raw r WHERE r.uniqueid = d.uniqueid
          AND r.recordtimestamp < %(lo)s - interval '600 seconds'
        ORDER BY r.recordtimestamp DESC LIMIT 1) p
) TO STDOUT (FORMAT csv, HEADER)
"""


def pandas_enrich(frame: pd.DataFrame, lo: int) -> pd.DataFrame:
    """The definitions of issue 7 in pandas: windows over time, not rows."""
    df = frame.sort_values(["uniqueid", "t"], kind="stable").reset_index(drop=True)
    df["ts"] = pd.to_datetime(df["t"], unit="s", utc=True)
    speed = df["currentspeed"].astype("float64")
    df["speed"] = speed
    groups = df.groupby("uniqueid", sort=False)
    df["previousspeed"] = groups["speed"].shift(1)
    roll = groups.rolling
    df["avgspeed2minutes"] = roll("120s", on="ts", closed="both")["speed"].mean().to_numpy()
    df["avgspeed10minutes"] = roll("600s", on="ts", closed="both")["speed"].mean().to_numpy()
    out = df[df["t"] >= lo].copy()
    diff = out["speed"] - out["previousspeed"]
    out["speeddiffindicator"] = np.select([diff >= 20, diff <= -20], [1, -1], 0)
    a2 = out["avgspeed2minutes"]
    out["trafficjamindicator"] = np.select([a2 <= 40, (a2 > 40) & (a2 <= 250)], [1, 0], -1)
    out["recordtimestamp"] = out["ts"]
    return out


def run_pandas(url: str, day: date,
               clock: CpuClock) -> tuple[float, float | None, float, int, int]:
    """(end-to-end seconds, their CPU seconds, compute seconds, rows, mismatches against
    the SQL result)."""
    lo = datetime.combine(day, datetime.min.time(), UTC)
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_pandas_out")
        conn.execute("CREATE TABLE bench_pandas_out (LIKE sensors_enriched INCLUDING ALL)")
        conn.commit()
        c0, t0 = clock.now(), time.perf_counter()
        # like ours: refilled in the transaction that empties it (no WAL at wal_level=minimal)
        conn.execute("TRUNCATE bench_pandas_out")
        buf = io.BytesIO()
        with conn.cursor().copy(READ, {"lo": lo}) as copy:
            for block in copy:
                buf.write(block)
        buf.seek(0)
        frame = pd.read_csv(buf, engine="pyarrow", dtype_backend="numpy_nullable")
        t1 = time.perf_counter()
        out = pandas_enrich(frame, int(lo.timestamp()))
        compute = time.perf_counter() - t1
        table = pa.Table.from_pandas(out[OUT_COLUMNS], preserve_index=False)
        text = io.BytesIO()
        pacsv.write_csv(table, text, write_options=pacsv.WriteOptions(include_header=False))
        with conn.cursor().copy("COPY bench_pandas_out FROM STDIN (FORMAT csv)") as copy:
            copy.write(text.getbuffer())
        conn.commit()
        elapsed, c1 = time.perf_counter() - t0, clock.now()
        cpu = c1 - c0 if c0 is not None and c1 is not None else None
        mismatches = conn.execute("""
            SELECT count(*) FROM bench_pandas_out p
            FULL JOIN sensors_enriched s USING (uniqueid, recordtimestamp)
            WHERE (s.recordtimestamp >= %(lo)s AND s.recordtimestamp < %(lo)s + interval '1 day'
                   OR p.uniqueid IS NOT NULL)
              AND (p.uniqueid IS NULL OR s.uniqueid IS NULL
                   OR p.previousspeed IS DISTINCT FROM s.previousspeed
                   OR p.trafficjamindicator <> s.trafficjamindicator
                   OR p.speeddiffindicator <> s.speeddiffindicator
                   OR abs(p.avgspeed2minutes - s.avgspeed2minutes) > 1e-9
                   OR (p.avgspeed2minutes IS NULL) <> (s.avgspeed2minutes IS NULL)
                   OR abs(p.avgspeed10minutes - s.avgspeed10minutes) > 1e-9
                   OR (p.avgspeed10minutes IS NULL) <> (s.avgspeed10minutes IS NULL))
        """, {"lo": lo}).fetchone()[0]
        conn.execute("DROP TABLE bench_pandas_out")
        conn.commit()
    return elapsed, cpu, compute, len(out), int(mismatches)


# --- DuckDB and Polars: the same day (with its context) as Parquet -------------------------

def write_day_parquet(url: str, day: date, path: str) -> None:
    """The rows READ gives (the day, 600 s before, each detector's previous record)."""
    lo = datetime.combine(day, datetime.min.time(), UTC)
    buf = io.BytesIO()
    with psycopg.connect(url) as conn, conn.cursor().copy(READ, {"lo": lo}) as copy:
        for block in copy:
            buf.write(block)
    buf.seek(0)
    pq.write_table(pacsv.read_csv(buf), path)


def run_duckdb(path: str, lo: int) -> tuple[float, float, pl.DataFrame]:
    """(wall s, CPU s of this process), the enriched day."""
    con = duckdb.connect()
    con.execute("SET threads = 2")
    t0, c0 = time.perf_counter(), time.process_time()
    con.execute(DUCKDB_DAY, {"path": path, "lo": lo})
    took = (time.perf_counter() - t0, time.process_time() - c0)
    frame = pl.from_arrow(con.execute("SELECT * FROM enriched").to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return (*took, frame)


def polars_day(path: str, lo: int) -> pl.LazyFrame:
    """The same in Polars' lazy API: sorted once, rolling means by time over detectors."""
    speed = pl.col("currentspeed").cast(pl.Float64)
    ts = pl.from_epoch(pl.col("t"), time_unit="s").alias("ts")
    a2 = pl.col("avgspeed2minutes")
    diff = pl.col("currentspeed") - pl.col("previousspeed")
    return (pl.scan_parquet(path)
            .sort("uniqueid", "t")
            .with_columns(ts)
            .with_columns(
                previousspeed=pl.col("currentspeed").shift(1).over("uniqueid"),
                avgspeed2minutes=speed.rolling_mean_by("ts", "120s", closed="both")
                .over("uniqueid"),
                avgspeed10minutes=speed.rolling_mean_by("ts", "600s", closed="both")
                .over("uniqueid"))
            .filter(pl.col("t") >= lo)
            .with_columns(
                speeddiffindicator=pl.when(diff >= 20).then(1).when(diff <= -20).then(-1)
                .otherwise(0),
                trafficjamindicator=pl.when(a2 <= 40).then(1).when(a2 <= 250).then(0)
                .otherwise(-1))
            .select("uniqueid", "t", "currentspeed", "previousspeed", "avgspeed2minutes",
                    "avgspeed10minutes", "speeddiffindicator", "trafficjamindicator"))


def run_polars(path: str, lo: int) -> tuple[float, float, pl.DataFrame]:
    t0, c0 = time.perf_counter(), time.process_time()
    frame = polars_day(path, lo).collect()
    return time.perf_counter() - t0, time.process_time() - c0, frame


def ours_day(url: str, day: date, table: str = "sensors_enriched") -> pl.DataFrame:
    """The day's enriched rows in ``table`` (ours by default)."""
    lo = datetime.combine(day, datetime.min.time(), UTC)
    buf = io.BytesIO()
    with psycopg.connect(url) as conn, conn.cursor().copy(sql.SQL(
            "COPY (SELECT uniqueid, extract(epoch FROM recordtimestamp)::bigint AS t,"
            " previousspeed, avgspeed2minutes, avgspeed10minutes, speeddiffindicator,"
            " trafficjamindicator FROM {} WHERE recordtimestamp >= %(lo)s"
            " AND recordtimestamp < %(lo)s + interval '1 day') TO STDOUT (FORMAT csv, HEADER)"
            ).format(sql.Identifier(table)), {"lo": lo}) as copy:
        for block in copy:
            buf.write(block)
    buf.seek(0)
    return pl.read_csv(buf)


def differ(ours: pl.DataFrame, theirs: pl.DataFrame) -> int:
    """Rows of either side without an equal row on the other (averages within 1e-9)."""
    both = ours.join(theirs, on=["uniqueid", "t"], how="full", suffix="_x", coalesce=True)

    def unequal(c: str, tolerance: float | None = None) -> pl.Expr:
        a, b = pl.col(c).cast(pl.Float64), pl.col(c + "_x").cast(pl.Float64)
        close = (a - b).abs() <= tolerance if tolerance else a == b
        return (a.is_null() != b.is_null()) | (a.is_not_null() & b.is_not_null() & ~close)

    bad = both.filter(
        pl.col("speeddiffindicator").is_null()  # a row on one side only (never NULL else)
        | pl.col("speeddiffindicator_x").is_null()
        | unequal("previousspeed") | unequal("speeddiffindicator")
        | unequal("trafficjamindicator") | unequal("avgspeed2minutes", 1e-9)
        | unequal("avgspeed10minutes", 1e-9))
    return bad.height


# --- DuckDB with its postgres extension: PostgreSQL in and out (benchmarks/duckdb_pg.py) ----

# The sweep: each a change from duckdb_pg.DEFAULTS (the best found, BENCHMARKS.md).
SWEEP: list[dict[str, Any]] = [
    {}, {"threads": 2}, {"write": "insert"}, {"key_workers": None},
    {"write": "insert", "key_workers": None}, {"read": "query"}, {"connections": 1},
    {"write": "insert", "key": "before"}, {"binary": False}]


def run_duckdb_pg(exe: Path, url: str, lo: int, postmaster: int,
                  settings: dict[str, Any]) -> dict[str, Any]:
    """One run of the day (its own process); its report, with ``total`` CPU (its process and
    the cluster's over its timed part, as ours is counted)."""
    report = duckdb_pg.run(exe, "day", url, lo, postmaster, json.dumps(settings))
    report["total"] = report["cpu"] + report["server"]
    return report


def version_effect(exe: Path, path: str, lo: int, reps: int = 2) -> str:
    """DUCKDB_DAY on the Parquet day with DuckDB 2.0.1 (the project's) and 1.5.5 (the
    contender's), each in a process of its own, alternated; medians."""
    runs: dict[str, list[tuple[float, float]]] = {}
    for _ in range(reps):
        for python in (sys.executable, exe):
            r = duckdb_pg.run(python, "parquet", path, lo)
            runs.setdefault(r["version"], []).append((r["wall"], r["cpu"]))
    parts = [f"{v} {statistics.median(w for w, _ in x):.2f} s wall,"
             f" {statistics.median(c for _, c in x):.2f} CPU s" for v, x in runs.items()]
    return f"duckdb version, Parquet day (medians of {reps}): {'; '.join(parts)}"


def duckdb_pg_day(url: str, day: date, clock: CpuClock, sweep: bool, rounds: int,
                  reps: int) -> tuple[list[str], float, float, float, float]:
    """The sweep (``rounds`` times, in turn; the fastest median wall wins), then the best
    settings and ours (the C engine) alternated ``reps`` times; (lines, ours' median wall and
    CPU s, the contender's median wall and CPU s)."""
    exe = duckdb_pg.python()
    lo = int(datetime.combine(day, datetime.min.time(), UTC).timestamp())
    postmaster = postmaster_of(url)
    ours = ours_day(url, day)
    lines: list[str] = []
    walls: dict[str, list[float]] = {}
    changes = SWEEP if sweep else [{}]
    for _ in range(rounds if sweep else 0):  # rounds of the whole sweep, in turn
        for change in changes:
            settings = {**duckdb_pg.DEFAULTS, **change}
            r = run_duckdb_pg(exe, url, lo, postmaster, settings)
            bad = differ(ours, ours_day(url, day, duckdb_pg.OUT))
            steps = "; ".join(f"{n} {w:.2f}/{c:.2f}/{sv:.2f}" for n, w, c, sv in r["steps"]
                              if w >= 0.05)
            lines.append(f"  duckdb_pg [{duckdb_pg.describe(settings)}]: {r['rows']} rows in"
                         f" {r['wall']:.2f} s, {r['cpu']:.2f} + server {r['server']:.2f} ="
                         f" {r['total']:.2f} CPU s; {bad} rows differ from ours"
                         f" (steps wall/client/server: {steps})")
            if bad:
                raise SystemExit("\n".join([*lines, "duckdb_pg and ours disagree: void"]))
            walls.setdefault(json.dumps(change), []).append(r["wall"])
    best = dict(duckdb_pg.DEFAULTS)
    if walls:
        fastest = min(walls, key=lambda k: statistics.median(walls[k]))
        best.update(json.loads(fastest))
        lines.append("  sweep medians: " + "; ".join(
            f"[{duckdb_pg.describe({**duckdb_pg.DEFAULTS, **json.loads(k)})}]"
            f" {statistics.median(v):.2f} s" for k, v in walls.items()))
    lines.append(f"  best: [{duckdb_pg.describe(best)}]; then alternated with ours:")
    ours_runs, theirs = [], []
    for _ in range(reps):
        r = run_duckdb_pg(exe, url, lo, postmaster, best)
        theirs.append((r["wall"], r["total"]))
        s, cpu, _ = run_sql_one_day(url, day, clock, "c")
        ours_runs.append((s, cpu or 0.0))
        lines.append(f"  duckdb_pg {r['wall']:.2f} s, {r['total']:.2f} CPU s"
                     f" ({r['cpu']:.2f} + server {r['server']:.2f}); ours (c engine)"
                     f" {s:.2f} s, {cpu or 0:.2f} CPU s")
    bad = differ(ours_day(url, day), ours_day(url, day, duckdb_pg.OUT))
    lines.append(f"  after the pairs: {bad} rows differ")
    if bad:
        raise SystemExit("\n".join([*lines, "duckdb_pg and ours disagree: void"]))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(duckdb_pg.OUT)))
    med = statistics.median
    return (lines, med(w for w, _ in ours_runs), med(c for _, c in ours_runs),
            med(w for w, _ in theirs), med(c for _, c in theirs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--detectors", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--shared", action="store_true",
                        help="use the configured server, not a private cluster")
    parser.add_argument("--no-sweep", action="store_true",
                        help="DuckDB with PostgreSQL in and out: its best settings only")
    parser.add_argument("--sweep-rounds", type=int, default=2,
                        help="rounds of the DuckDB-PG sweep (default 2)")
    parser.add_argument("--pg-reps", type=int, default=2,
                        help="pairs of ours and DuckDB-PG alternated (default 2)")
    args = parser.parse_args()
    cluster = None
    if args.shared:
        server = resolve_url()
    else:
        cluster = Cluster(Path(tempfile.mkdtemp(prefix="renderer-bench-sensors-")))
        server = cluster.ensure_started()
    url = scratch_database(server, BENCH_DB)
    try:
        t0 = time.perf_counter()
        raw = generate(url, args.days, args.detectors)
        print(f"generated {raw} raw rows in {time.perf_counter() - t0:.0f} s", flush=True)
        clock = CpuClock(url)
        c0 = clock.now()
        sql_s, sql_rows = run_sql(url, args.days, args.processes)
        c1 = clock.now()
        sql_cpu = c1 - c0 if c0 is not None and c1 is not None else None
        print(f"sql: {sql_rows} rows, {args.days} days, {args.processes} processes, "
              f"{sql_s:.1f} s, {sql_cpu or 0:.1f} CPU s", flush=True)
        day = START + timedelta(days=min(1, args.days - 1))  # a day with a day before it
        sqlday_s, sqlday_cpu, _ = run_sql_one_day(url, day, clock, "sql")
        print(f"one day, sql engine: {sqlday_s:.2f} s ({sqlday_cpu or 0:.2f} CPU s,"
              f" 1 process)", flush=True)
        one_s, one_cpu, one_rows = run_sql_one_day(url, day, clock, "c")
        print(f"one day, c engine: {one_rows} rows in {one_s:.2f} s ({one_cpu or 0:.2f} CPU s,"
              f" 1 process); c vs sql {sqlday_s / one_s:.2f}x wall,"
              f" {(sqlday_cpu or 0) / (one_cpu or 1):.2f}x CPU", flush=True)
        pd_s, pd_cpu, pd_compute, pd_rows, bad = run_pandas(url, day, clock)
        print(f"pandas: {pd_rows} rows in {pd_s:.1f} s end to end ({pd_cpu or 0:.1f} CPU s),"
              f" {pd_compute:.1f} s compute; {bad} rows differ from ours", flush=True)
        if bad:
            raise SystemExit("pandas and SQL disagree: the comparison is void")
        with tempfile.TemporaryDirectory(prefix="bench-sensors-") as folder:
            path = os.path.join(folder, "day.parquet")
            if args.keep:  # kept for whole-process timings (benchmarks/sensors_one.py)
                path = os.path.join(tempfile.gettempdir(), f"{BENCH_DB}-{day}.parquet")
                print(f"kept: {url} and {path}", flush=True)
            write_day_parquet(url, day, path)
            lo = int(datetime.combine(day, datetime.min.time(), UTC).timestamp())
            ours = ours_day(url, day)
            duck_s, duck_cpu, duck = run_duckdb(path, lo)
            print(f"duckdb: {duck.height} rows in {duck_s:.2f} s ({duck_cpu:.2f} CPU s, "
                  f"2 threads), Parquet in, table out; {differ(ours, duck)} rows differ "
                  "from ours", flush=True)
            pl_s, pl_cpu, polars_out = run_polars(path, lo)
            print(f"polars: {polars_out.height} rows in {pl_s:.2f} s ({pl_cpu:.2f} CPU s), "
                  f"Parquet in, DataFrame out; {differ(ours, polars_out)} rows differ "
                  "from ours", flush=True)
            print(version_effect(duckdb_pg.python(), path, lo), flush=True)
        print("duckdb_pg: DuckDB 1.5.5 + postgres extension, PostgreSQL in and out"
              " (benchmarks/duckdb_pg.py); sweep:", flush=True)
        pg_lines, pg_ours_s, pg_ours_cpu, pg_s, pg_cpu = duckdb_pg_day(
            url, day, clock, not args.no_sweep, args.sweep_rounds, args.pg_reps)
        print("\n".join(pg_lines), flush=True)
        sql_rate, one_rate = sql_rows / sql_s, one_rows / one_s
        pd_rate, pd_compute_rate = pd_rows / pd_s, pd_rows / pd_compute
        if sql_cpu and pd_cpu and one_cpu:
            cpu = (f"sql_cpu={sql_rows / sql_cpu:.0f}/cpu-s pandas_cpu={pd_rows / pd_cpu:.0f}/cpu-s"
                   f" per_row_ratio={(sql_rows / sql_cpu) / (pd_rows / pd_cpu):.2f}"
                   f" one_day_ratio={(one_rows / one_cpu) / (pd_rows / pd_cpu):.2f}")
        else:
            cpu = "sql_cpu=? pandas_cpu=? per_row_ratio=? one_day_ratio=?"
        print(f"sql={sql_rate:.0f}/s sql_one_day={one_rate:.0f}/s pandas={pd_rate:.0f}/s "
              f"pandas_compute={pd_compute_rate:.0f}/s {cpu} wall_ratio={sql_rate / pd_rate:.2f}")
        ours_whole, duck_whole, pg_whole, lines = whole_day(server, args.detectors)
        print("\n".join(lines))
        print(f"whole_day_ratio_pg={pg_whole / ours_whole:.3f} (DuckDB-PG's CPU s / ours)")
        print(f"whole_day_ratio={duck_whole / ours_whole:.3f} (DuckDB's CPU s / ours; goal >= 0.5)")
        print(f"load average: {os.getloadavg()[0]:.1f}; one day: ours {one_s:.2f} s, "
              f"duckdb {duck_s:.2f} s, polars {pl_s:.2f} s; ratio_vs_polars={pl_s / one_s:.2f}")
        print(f"ratio_vs_duckdb_pg={pg_s / pg_ours_s:.2f} cpu_ratio_vs_duckdb_pg="
              f"{pg_cpu / pg_ours_cpu:.2f} (medians of {args.pg_reps} pairs: ours"
              f" {pg_ours_s:.2f} s, {pg_ours_cpu:.2f} CPU s; duckdb_pg {pg_s:.2f} s,"
              f" {pg_cpu:.2f} CPU s)")
        print(f"ratio_vs_duckdb={duck_s / one_s:.2f}")
    finally:
        if not args.keep:
            drop_database(server, BENCH_DB)
        if cluster is not None and not args.keep:
            cluster.stop()
            shutil.rmtree(cluster.home, ignore_errors=True)


if __name__ == "__main__":
    main()
