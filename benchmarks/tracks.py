"""Benchmark of issue 15: vessel tracks, ours (PostgreSQL) vs DuckDB over Parquet, one run.

Generates ``--reports`` position reports over ``--days`` days (``renderer.tracks.sample``:
great-circle legs, port stays, AIS gaps, satellite latency), writes them as CSV files and:

- ingest: ``renderer tracks ingest`` of the files (parse, stage, identities, insert with the
  key, GiST and BRIN maintained) in reports/s, against a plain ``COPY ... (FORMAT csv)`` of
  the same files into an unindexed, unpartitioned table;
- storage: bytes per report of the partitions (heap + indexes, and heap alone), against
  BinaryFixes' 35 bytes;
- the issue's four query shapes, ``--runs`` times each with random parameters, through
  ``renderer.tracks.query.run`` (server-side cursor, rows built as the CLI and HTTP get them)
  and through DuckDB over the same reports as one Parquet file sorted by time (what an
  analyst would reach for; ``--duckdb-threads``, default 2 = this machine's cores):

  1. id_bbox_month_hourly: an mmsi + a 30-degree box around its track + the month, hourly;
  2. bbox_day: a 10-degree box around a port + one day, every report;
  3. id_year_daily: an mmsi + the whole year, daily;
  4. bbox_month_hourly_streamed: a 10-degree box + the month, hourly, streamed: time to the
     first row and rows/s.

  p50/p95 latency (all rows read), and the time to the first row. DuckDB's first row comes
  after its whole ORDER BY (it materialises), ours after the first day.

The last line: ``p95_id_ms=<ours, worst id-led p95> first_byte_area_ms=<ours, p95 first row
of the area shapes> ratio_vs_duckdb=<geometric mean over the four shapes of duckdb p50 /
ours p50, > 1 = ours faster> bytes_per_report=<..> ingest_rps=<..> copy_rps=<..>``.

    .venv/bin/python benchmarks/tracks.py --reports 3000000 [--days 30 --runs 20 --keep]

The data goes to a scratch database ``renderer_bench_tracks`` on the configured server
(RENDERER_DATABASE_URL, or the embedded cluster under RENDERER_HOME), dropped afterwards
unless ``--keep`` (then EXPLAIN ANALYZE by hand: see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from scratch import cluster_seconds, drop_database, postmaster_of, scratch_database

from renderer.db import Database, connect, resolve_url
from renderer.tracks import sample
from renderer.tracks.formats import Report
from renderer.tracks.ingest import ingest
from renderer.tracks.query import Query, run

BENCH_DB = "renderer_bench_tracks"
START = datetime(2026, 12, 1, tzinfo=UTC)
PER_VESSEL_DAY = 481  # reports a vessel-day at interval 15 s (measured on the generator)


def generate(n: int, days: int, seed: int) -> list[Report]:
    vessels = max(10, round(n / (days * PER_VESSEL_DAY)))
    return sample.generate(vessels=vessels, days=days, start=START, interval=15, seed=seed)


def to_parquet(reports: list[Report], path: Path) -> None:
    """The reports as one Parquet file sorted by time (mmsi and imo as columns)."""
    ordered = sorted(reports, key=lambda r: r.time_ms)
    ids = [dict(r.ids) for r in ordered]
    table = pa.table({
        "t": pa.array([r.time_ms for r in ordered], pa.timestamp("ms", tz="UTC")),
        "mmsi": pa.array([i.get("mmsi") for i in ids], pa.string()),
        "imo": pa.array([i.get("imo") for i in ids], pa.string()),
        "lat": pa.array([r.lat for r in ordered], pa.float64()),
        "lon": pa.array([r.lon for r in ordered], pa.float64()),
        "sog": pa.array([r.sog for r in ordered], pa.float32()),
        "cog": pa.array([r.cog for r in ordered], pa.float32()),
        "heading": pa.array([r.heading for r in ordered], pa.float32()),
        "nav_status": pa.array([r.nav_status for r in ordered], pa.int8()),
        "latency": pa.array([r.latency for r in ordered], pa.int32()),
    })
    pq.write_table(table, path, row_group_size=122_880, compression="zstd")


def plain_copy(url: str, paths: list[Path]) -> float:
    """Seconds to COPY the CSV files into an unindexed, unpartitioned table."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_plain")
        conn.execute("CREATE TABLE bench_plain (time timestamptz, mmsi text, imo text,"
                     " callsign text, lat float8, lon float8, sog real, cog real,"
                     " heading real, nav_status smallint, rot smallint, latency integer,"
                     " source smallint, ais_class text)")
        started = time.perf_counter()
        for path in paths:
            with conn.cursor().copy("COPY bench_plain FROM STDIN (FORMAT csv, HEADER)") as copy, \
                    open(path, "rb") as f:
                while block := f.read(1 << 20):
                    copy.write(block)
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_plain")
    return elapsed


def storage(url: str) -> dict[str, float]:
    """Bytes per report: the reports' partitions with their indexes and the hourly summary's
    (total), the reports' heap alone (heap), the summary with its indexes (summary)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("""
            SELECT sum(pg_total_relation_size(c.oid)) AS total,
                   sum(pg_relation_size(c.oid))
                       FILTER (WHERE i.inhparent = 'tracks_reports'::regclass) AS heap,
                   coalesce(sum(pg_total_relation_size(c.oid))
                       FILTER (WHERE i.inhparent = 'tracks_summary'::regclass), 0) AS summary,
                   (SELECT count(*) FROM tracks_reports) AS n
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent IN ('tracks_reports'::regclass, 'tracks_summary'::regclass)
              AND c.relkind = 'r'""").fetchone()
    assert row is not None
    total, heap, summary, n = (float(v) for v in row)
    return {"total": total / n, "heap": heap / n, "summary": summary / n, "reports": n}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def ours(database: Database, q: Query, statement: str | None = None
         ) -> tuple[float, float, int]:
    """(first-row seconds, total seconds, rows) of one query, as the CLI reads it
    (``statement`` forces a route, as ``run``'s)."""
    with database.connect() as conn:
        started = time.perf_counter()
        first = None
        rows = 0
        for _ in run(conn, q, statement=statement).rows:
            if first is None:
                first = time.perf_counter() - started
            rows += 1
        total = time.perf_counter() - started
    return (first if first is not None else total), total, rows


def duck_sql(q: Query) -> tuple[str, list[Any]]:
    where, params = ["TRUE"], []
    if q.ids:
        where.append("mmsi = ?")
        params.append(q.ids[0][1])
    if q.bbox:
        where.append("lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?")
        params += [q.bbox[0], q.bbox[2], q.bbox[1], q.bbox[3]]
    if q.start:
        where.append("t >= ?")
        params.append(q.start)
    if q.end:
        where.append("t <= ?")
        params.append(q.end)
    sql = f"SELECT * FROM reports WHERE {' AND '.join(where)}"
    if q.sample_seconds:
        sql += (f" QUALIFY row_number() OVER (PARTITION BY mmsi, floor(epoch(t) /"
                f" {q.sample_seconds}) ORDER BY t, lat, lon) = 1")
    return sql + " ORDER BY t, mmsi, lat, lon", params


def duck(con: duckdb.DuckDBPyConnection, q: Query) -> tuple[float, float, int]:
    sql, params = duck_sql(q)
    started = time.perf_counter()
    cur = con.execute(sql, params)
    first_batch = cur.fetchmany(1)
    first = time.perf_counter() - started
    rest = cur.fetchall()
    total = time.perf_counter() - started
    return first, total, len(first_batch) + len(rest)


def shapes(first_pos: dict[str, tuple[float, float]], start: datetime, days: int,
           rng: random.Random) -> dict[str, Callable[[], Query]]:
    """The issue's four shapes as query makers; ``first_pos``: mmsi -> a vessel's first
    position (boxes are drawn around it)."""
    mmsis = sorted(first_pos)
    end = start + timedelta(days=days) - timedelta(microseconds=1)

    def box(lat: float, lon: float, half: float) -> str:
        return (f"{max(-90, lat - half)},{max(-180, lon - half)},{min(90, lat + half)},"
                f"{min(180, lon + half)}")

    def id_bbox_month_hourly() -> Query:
        m = rng.choice(mmsis)
        return Query.parse(ids=[f"mmsi={m}"], bbox=box(*first_pos[m], 15),
                           start=start.isoformat(), end=end.isoformat(), sample="1h")

    def bbox_day() -> Query:
        _, lat, lon = rng.choice(sample.PORTS)
        day = start + timedelta(days=rng.randrange(days))
        return Query.parse(bbox=box(lat, lon, 5), start=day.date().isoformat(),
                           end=day.date().isoformat())

    def id_year_daily() -> Query:
        return Query.parse(ids=[f"mmsi={rng.choice(mmsis)}"], start="2026-01-01",
                           end="2026-12-31", sample="1d")

    def bbox_month_hourly_streamed() -> Query:
        _, lat, lon = rng.choice(sample.PORTS)
        return Query.parse(bbox=box(lat, lon, 5), start=start.isoformat(),
                           end=end.isoformat(), sample="1h")

    return {"id_bbox_month_hourly": id_bbox_month_hourly, "bbox_day": bbox_day,
            "id_year_daily": id_year_daily,
            "bbox_month_hourly_streamed": bbox_month_hourly_streamed}


Results = dict[str, dict[str, list[float]]]


def measure(database: Database, con: duckdb.DuckDBPyConnection,
            made: dict[str, Callable[[], Query]], runs: int) -> Results:
    """Each shape ``runs`` times, ours then DuckDB's for each instance (same answer size
    asserted): first-row and total seconds, rows; and CPU seconds over the shape's runs:
    ours client (this process during our queries), ours server (the cluster's processes,
    when it runs on this machine and serves nothing else), DuckDB's (this process, all its
    threads, during its queries)."""
    results: Results = {}
    try:
        postmaster: int | None = postmaster_of(database.url)
    except (OSError, psycopg.Error, AssertionError, ValueError):
        postmaster = None
    for name, make in made.items():
        qs = [make() for _ in range(runs)]
        ours(database, qs[0])  # warm the cache, as a server serving queries would be
        duck(con, qs[0])
        m: dict[str, list[float]] = {k: [] for k in ("first", "total", "rows", "d_first",
                                                     "d_total", "d_rows")}
        cpu = {"client": 0.0, "duck": 0.0}
        server = cluster_seconds(postmaster) if postmaster else 0.0
        for q in qs:
            c0 = time.process_time()
            first, total, rows = ours(database, q)
            c1 = time.process_time()
            d_first, d_total, d_rows = duck(con, q)
            cpu["client"] += c1 - c0
            cpu["duck"] += time.process_time() - c1
            assert rows == d_rows, (name, q, rows, d_rows)  # the same answer
            for k, v in zip(m, (first, total, rows, d_first, d_total, d_rows), strict=True):
                m[k].append(v)
        time.sleep(1)  # the last backend's exit reaped before its CPU is read
        m["cpu_client"] = [cpu["client"]]
        m["cpu_server"] = [cluster_seconds(postmaster) - server if postmaster else math.nan]
        m["cpu_duck"] = [cpu["duck"]]
        results[name] = m
    return results


def summarise(results: Results, size: dict[str, float], extra: str = "") -> None:
    """Print the table of shapes and the last line."""
    print(f"\n{'shape':28} {'rows p50':>9} {'ours p50':>9} {'ours p95':>9} "
          f"{'1st p95':>8} {'duck p50':>9} {'duck p95':>9} {'duck 1st':>9} {'ratio':>6}")
    ratios = []
    cpu_lines = []
    for name, m in results.items():
        if "cpu_client" in m:
            ours_cpu = m["cpu_client"][0] + m["cpu_server"][0]
            cpu_lines.append(
                f"{name:28} CPU s over the runs: ours {ours_cpu:.2f} (client "
                f"{m['cpu_client'][0]:.2f}, server {m['cpu_server'][0]:.2f}), DuckDB "
                f"{m['cpu_duck'][0]:.2f}; DuckDB / ours {m['cpu_duck'][0] / ours_cpu:.2f}")
        ms = {k: [v * 1000 for v in vals] for k, vals in m.items()
              if "rows" not in k and not k.startswith("cpu")}
        ratio = statistics.median(ms["d_total"]) / statistics.median(ms["total"])
        ratios.append(ratio)
        print(f"{name:28} {statistics.median(m['rows']):9.0f} "
              f"{statistics.median(ms['total']):9.1f} {percentile(ms['total'], 95):9.1f} "
              f"{percentile(ms['first'], 95):8.1f} {statistics.median(ms['d_total']):9.1f} "
              f"{percentile(ms['d_total'], 95):9.1f} {percentile(ms['d_first'], 95):9.1f} "
              f"{ratio:6.2f}")
    for line in cpu_lines:
        print(line)
    streamed = results["bbox_month_hourly_streamed"]
    rps = statistics.median(r / t for r, t in zip(streamed["rows"], streamed["total"],
                                                  strict=True))
    print(f"streamed bbox+month+hourly: {rps:,.0f} rows/s")
    p95_id = max(percentile(results[s]["total"], 95) * 1000
                 for s in ("id_bbox_month_hourly", "id_year_daily"))
    first_area = max(percentile(results[s]["first"], 95) * 1000
                     for s in ("bbox_day", "bbox_month_hourly_streamed"))
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"p95_id_ms={p95_id:.1f} first_byte_area_ms={first_area:.1f} "
          f"ratio_vs_duckdb={geo:.2f} bytes_per_report={size['total']:.1f} {extra}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=3_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duckdb-threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    args = parser.parse_args()

    server = resolve_url()
    url = scratch_database(server, BENCH_DB)
    database = Database(url)
    work = Path(tempfile.mkdtemp(prefix="tracks-bench-"))
    try:
        t = time.perf_counter()
        reports = generate(args.reports, args.days, args.seed)
        print(f"generated {len(reports):,} reports in {time.perf_counter() - t:.1f} s")
        paths = sample.write(reports, work / "csv", "csv", per_file=250_000)
        to_parquet(reports, work / "reports.parquet")

        copy_s = plain_copy(url, paths)
        t = time.perf_counter()
        result = ingest(database, [str(p) for p in paths])
        ingest_s = time.perf_counter() - t
        assert result.rows["rows_rejected"] == 0, result.rows
        with connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE tracks_reports")
        size = storage(url)
        n = len(reports)
        print(f"ingest: {n / ingest_s:,.0f} reports/s ({ingest_s:.1f} s); plain COPY "
              f"{n / copy_s:,.0f} rows/s ({copy_s:.1f} s); ratio {copy_s / ingest_s:.2f}")
        print(f"storage: {size['total']:.1f} bytes/report (heap {size['heap']:.1f}) vs "
              f"BinaryFixes 35")

        con = duckdb.connect()
        con.execute(f"SET threads = {args.duckdb_threads}")
        con.execute(f"CREATE VIEW reports AS SELECT * FROM '{work / 'reports.parquet'}'")
        first_pos: dict[str, tuple[float, float]] = {}
        for r in reports:
            first_pos.setdefault(dict(r.ids)["mmsi"], (r.lat, r.lon))
        made = shapes(first_pos, START, args.days, random.Random(args.seed))
        summarise(measure(database, con, made, args.runs), size,
                  extra=f"ingest_rps={n / ingest_s:.0f} copy_rps={n / copy_s:.0f}")
    finally:
        for p in sorted(work.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        work.rmdir()
        if not args.keep:
            drop_database(server, BENCH_DB)


if __name__ == "__main__":
    main()
