"""Benchmark of issue 15 at the issue's size: reports generated in SQL, queries against DuckDB.

``benchmarks/tracks.py`` generates reports in Python and ingests them through files, which
does not reach 100M reports on this machine. Here the reports are generated set-based in
the server, from the same model as ``renderer.tracks.sample``:

- vessels (mmsi 503000000 + n, class B one in five at three times the interval, an IMO
  number one in twenty) alternate port stays (2-30 h, a report every 3 min +-20 %, a few
  hundred metres of jitter) and great-circle legs between ``sample.PORTS`` at 8-22 knots;
- on a leg, within ``--coast-km`` of either port a report every ``--interval`` s (+-20 %),
  offshore only satellites: every 20 min (+-10), arriving an exponential hour late;
- half the legs have an AIS gap of 1-4 h somewhere in their middle 60 %.

The itinerary (a few rows per vessel-day) is a recursive query; the reports of each UTC
day are ``generate_series`` over its segments, with per-report noise from a hash of
(segment, report number), so a day's rows do not depend on how the days are cut. Each day
is loaded the way ``tracks ingest`` loads a new day (``renderer.tracks_bulk_day``: a bare
table, rows in time order, then ``renderer.tracks_attach_day`` builds its indexes), timed
apart: generate + insert, then index build.

Then the day's rows go out by ``COPY .. TO STDOUT`` (time order) as CSV into DuckDB, which
writes one Parquet file per day (together: the reports sorted by time), and the issue's
four query shapes run through ``renderer.tracks.query.run`` and DuckDB in turn
(``tracks.measure``, the same as ``benchmarks/tracks.py``).

    RENDERER_HOME=/tmp/x .venv/bin/python benchmarks/tracks_scale.py --reports 115000000

(the model gives fewer reports than ``--reports`` asks: ~0.87 of it). The scratch database
``renderer_bench_tracks_scale`` is dropped afterwards unless ``--keep``.

The build runs ``--jobs`` days at a time, each on a connection of its own; the generator's
tables live in the schema ``tracks_gen`` and each finished day is recorded in
``tracks_gen.done``, so with ``--keep --work DIR`` a stopped build resumes where it stopped
(a half-built day is built again), and ``--reuse --work DIR`` measures the queries alone on
what a ``--keep`` run left (migrating the database to head first):

    RENDERER_HOME=/tmp/big .venv/bin/python benchmarks/tracks_scale.py --reports 115000000 \
        --keep --build-only --work /tmp/big/parquet
    RENDERER_HOME=/tmp/big .venv/bin/python benchmarks/tracks_scale.py --reuse \
        --work /tmp/big/parquet --runs 20
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg
from psycopg import sql
from scratch import database_exists, drop_database, scratch_database, with_database
from tracks import measure, ours, shapes, storage, summarise

from renderer import schema
from renderer.db import Database, resolve_url
from renderer.tracks import sample
from renderer.tracks.query import Query

BENCH_DB = "renderer_bench_tracks_scale"
START = datetime(2026, 12, 1, tzinfo=UTC)
PER_VESSEL_DAY = 481  # as benchmarks/tracks.py (the Python generator at interval 15 s)

SETUP = """
CREATE FUNCTION tracks_gen.u(k bigint, salt bigint) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
    SELECT ((hashint8extended(k, salt) >> 11) & 9007199254740991)::float8 / 9007199254740992
$$;
CREATE UNLOGGED TABLE tracks_gen.ports AS
SELECT (row_number() OVER () - 1)::integer AS port, lat, lon,
       cos(radians(lat)) * cos(radians(lon)) AS x, cos(radians(lat)) * sin(radians(lon)) AS y,
       sin(radians(lat)) AS z
FROM unnest(%(lats)s::float8[], %(lons)s::float8[]) WITH ORDINALITY AS p(lat, lon, n);
CREATE UNLOGGED TABLE tracks_gen.vessels AS
SELECT n, 503000000 + n AS mmsi, CASE WHEN n %% 20 = 7 THEN 9300000 + n END AS imo,
       CASE WHEN n %% 5 = 4 THEN 'B' ELSE 'A' END AS cls,
       %(interval)s * CASE WHEN n %% 5 = 4 THEN 3 ELSE 1 END AS every,
       floor(tracks_gen.u(n, 1) * %(ports)s)::integer AS port,
       %(t0)s + tracks_gen.u(n, 2) * 3600 AS t,
       tracks_gen.u(n, 3) < 0.5 AS docked
FROM generate_series(0, %(vessels)s - 1) AS n;
"""

# One row per stay or leg, times in epoch seconds: k counts a vessel's (stay, leg) pairs.
ITINERARY = """
CREATE UNLOGGED TABLE tracks_gen.segments AS
WITH RECURSIVE trip(n, k, port, t) AS (
    SELECT n, 0, port, t FROM vessels
    UNION ALL
    SELECT tr.n, tr.k + 1, c.target,
           c.leave + acos(greatest(-1, least(1, a.x * b.x + a.y * b.y + a.z * b.z))) * 6371
                     / (c.knots * 1.852) * 3600
    FROM trip tr
    JOIN vessels v USING (n)
    CROSS JOIN LATERAL (
        SELECT (tr.port + 1 + floor(tracks_gen.u(tr.n * 1000 + tr.k, 5) * (%(ports)s - 1))::integer)
                   %% %(ports)s AS target,
               tr.t + CASE WHEN tr.k = 0 AND NOT v.docked THEN 0
                           ELSE (2 + tracks_gen.u(tr.n * 1000 + tr.k, 4) * 28) * 3600 END AS leave,
               8 + tracks_gen.u(tr.n * 1000 + tr.k, 6) * 14 AS knots) c
    JOIN ports a ON a.port = tr.port
    JOIN ports b ON b.port = c.target
    WHERE tr.t < %(t1)s
)
SELECT row_number() OVER (ORDER BY n, k) AS seg, n, k, port, t,
       lead(port) OVER w AS target, lead(t) OVER w AS arrive
FROM trip
WINDOW w AS (PARTITION BY n ORDER BY k);
"""

LEGS = """
CREATE UNLOGGED TABLE tracks_gen.spans AS
WITH legs AS (
    SELECT s.seg, s.n, s.port, s.target,
           s.t + CASE WHEN s.k = 0 AND NOT v.docked THEN 0
                      ELSE (2 + tracks_gen.u(s.n * 1000 + s.k, 4) * 28) * 3600 END AS leave,
           s.arrive, 8 + tracks_gen.u(s.n * 1000 + s.k, 6) * 14 AS knots, v.every
    FROM segments s JOIN vessels v USING (n)
    WHERE s.target IS NOT NULL
)
-- the stay before each leg: from arriving (t) to leaving
SELECT s.seg * 4 AS span, s.n, s.port AS a, s.port AS b, 'stay' AS kind,
       s.t AS lo, l.leave AS hi, s.t AS start, l.leave AS arrive, 180.0 AS every,
       0.0 AS knots, NULL::float8 AS gap_lo, NULL::float8 AS gap_hi
FROM segments s JOIN legs l USING (seg)
UNION ALL
-- the leg, cut into near the departure port, offshore, near the arrival port
SELECT l.seg * 4 + c.part, l.n, l.port, l.target, c.kind,
       l.leave + c.f_lo * (l.arrive - l.leave), l.leave + c.f_hi * (l.arrive - l.leave),
       l.leave, l.arrive, CASE c.kind WHEN 'coast' THEN l.every ELSE 1200 END, l.knots,
       CASE WHEN tracks_gen.u(l.seg, 7) < 0.5
            THEN l.leave + (0.2 + tracks_gen.u(l.seg, 8) * 0.6) * (l.arrive - l.leave) END,
       CASE WHEN tracks_gen.u(l.seg, 7) < 0.5
            THEN l.leave + (0.2 + tracks_gen.u(l.seg, 8) * 0.6) * (l.arrive - l.leave)
                 + (1 + tracks_gen.u(l.seg, 9) * 3) * 3600 END
FROM legs l
CROSS JOIN LATERAL (
    SELECT l.knots * 1.852 * (l.arrive - l.leave) / 3600 AS km) d
CROSS JOIN LATERAL (VALUES
    (1, 'coast', 0.0, least(0.5, %(coast_km)s / greatest(d.km, 1e-9))),
    (2, 'sea', least(0.5, %(coast_km)s / greatest(d.km, 1e-9)),
               greatest(0.5, 1 - %(coast_km)s / greatest(d.km, 1e-9))),
    (3, 'coast', greatest(0.5, 1 - %(coast_km)s / greatest(d.km, 1e-9)), 1.0)
) AS c(part, kind, f_lo, f_hi)
WHERE c.f_hi > c.f_lo;
CREATE INDEX ON spans (lo);
ANALYZE spans;
"""

# The reports of one UTC day [%(lo)s, %(lo)s + 86400) (epoch seconds), in time order.
DAY = """
WITH ins AS (
INSERT INTO {part} (t, lat, lon, vessel_id, file_id, latency, sog, cog, heading, nav_status,
                    source, ais_class)
SELECT to_timestamp(r.t), r.lat, r.lon, r.n + 1, %(file_id)s, r.latency, r.sog, r.cog,
       r.heading, r.nav_status, r.source, v.cls::"char"
FROM (
    SELECT sp.n, t.t,
           CASE WHEN sp.kind = 'stay'
                THEN a.lat + (tracks_gen.u(sp.span * 100000 + i, 11) - 0.5) * 0.007
                ELSE degrees(atan2(g.z, sqrt(g.x * g.x + g.y * g.y))) END AS lat,
           CASE WHEN sp.kind = 'stay'
                THEN a.lon + (tracks_gen.u(sp.span * 100000 + i, 12) - 0.5) * 0.007
                ELSE degrees(atan2(g.y, g.x)) END AS lon,
           CASE WHEN sp.kind = 'sea'
                THEN (60 - 3600 * ln(1 - tracks_gen.u(sp.span * 100000 + i, 13)))::integer
           END AS latency,
           CASE WHEN sp.kind = 'stay' THEN 0
                ELSE round((sp.knots + (tracks_gen.u(sp.span * 100000 + i, 14) - 0.5)) * 10)
           END::smallint AS sog,
           CASE WHEN sp.kind <> 'stay'
                THEN (round(g.course * 10)::integer %% 3600)::smallint END AS cog,
           CASE WHEN sp.kind <> 'stay'
                THEN (round(g.course)::integer %% 360 * 10)::smallint END AS heading,
           CASE WHEN sp.kind = 'stay' THEN 5 ELSE 0 END::smallint AS nav_status,
           CASE WHEN sp.kind = 'sea' THEN 2 ELSE 1 END::smallint AS source
    FROM spans sp
    JOIN ports a ON a.port = sp.a
    JOIN ports b ON b.port = sp.b
    CROSS JOIN LATERAL generate_series(
        greatest(0, floor((%(lo)s - sp.lo) / sp.every)::bigint - 1),
        floor((least(sp.hi, %(lo)s + 86400) - sp.lo) / sp.every)::bigint + 1) AS i
    CROSS JOIN LATERAL (
        SELECT floor(sp.lo + (i + (tracks_gen.u(sp.span * 100000 + i, 10) - 0.5)
                      * CASE sp.kind WHEN 'sea' THEN 1.0 ELSE 0.4 END) * sp.every) AS t) t
    CROSS JOIN LATERAL (
        SELECT acos(greatest(-1, least(1, a.x * b.x + a.y * b.y + a.z * b.z))) AS angle,
               (t.t - sp.start) / greatest(sp.arrive - sp.start, 1) AS f) w
    CROSS JOIN LATERAL (
        SELECT (sin((1 - w.f) * w.angle) * a.x + sin(w.f * w.angle) * b.x)
                   / greatest(sin(w.angle), 1e-12) AS x,
               (sin((1 - w.f) * w.angle) * a.y + sin(w.f * w.angle) * b.y)
                   / greatest(sin(w.angle), 1e-12) AS y,
               (sin((1 - w.f) * w.angle) * a.z + sin(w.f * w.angle) * b.z)
                   / greatest(sin(w.angle), 1e-12) AS z,
               c.deg - 360 * floor(c.deg / 360) AS course
        FROM (SELECT degrees(atan2(sin(radians(b.lon - a.lon)) * cos(radians(b.lat)),
                                   cos(radians(a.lat)) * sin(radians(b.lat))
                                   - sin(radians(a.lat)) * cos(radians(b.lat))
                                     * cos(radians(b.lon - a.lon))))
                     + 360 + (tracks_gen.u(sp.span * 100000 + i, 15) - 0.5) * 2 AS deg) c) g
    WHERE sp.lo < %(lo)s + 86400 AND sp.hi > %(lo)s - 3600
      AND t.t >= sp.lo AND t.t < sp.hi AND t.t >= %(lo)s AND t.t < %(lo)s + 86400
      AND t.t < %(t1)s
      AND NOT (sp.gap_lo IS NOT NULL AND t.t >= sp.gap_lo AND t.t < sp.gap_hi)
) r
JOIN vessels v USING (n)
ORDER BY r.t, r.n
RETURNING 1)
SELECT count(*) FROM ins
"""

EXPORT = """
COPY (SELECT r.t, (503000000 + r.vessel_id - 1)::text AS mmsi, r.lat, r.lon,
             r.sog / 10.0 AS sog, r.cog / 10.0 AS cog, r.heading / 10.0 AS heading,
             r.nav_status, r.latency
      FROM {part} r ORDER BY r.t, r.vessel_id, r.lat, r.lon) TO STDOUT (FORMAT csv)
"""

IDENTIFIERS = """
INSERT INTO tracks_vessels (vessel_id) SELECT n + 1 FROM vessels;
INSERT INTO tracks_identifiers (key, value, vessel_id)
SELECT 'mmsi', mmsi::text, n + 1 FROM vessels
UNION ALL SELECT 'imo', imo::text, n + 1 FROM vessels WHERE imo IS NOT NULL;
"""

# The day's indexes, built on the loaded table before it is attached (ATTACH then adopts
# them instead of building its own while it holds the parent's lock, which would make the
# parallel days wait on each other): the parent's key, GiST and BRIN, as in
# sql/schema/tracks.sql.
DAY_INDEXES = (
    "CREATE UNIQUE INDEX ON {part} (vessel_id, t, lat, lon)",
    "CREATE INDEX ON {part} USING gist (point(lon, lat))",
    "CREATE INDEX ON {part} USING brin (t) WITH (pages_per_range = 32)",
)

# What a day's worker sets: index builds in memory, no wait on the WAL at each commit.
SESSION = ("SET maintenance_work_mem = '1GB'", "SET synchronous_commit = off",
           "SET work_mem = '256MB'",
           "SELECT set_config('search_path', current_setting('search_path') || ', tracks_gen',"
           " false)")

# The generator's tables, once per database (kept, so that a build stopped part-way resumes
# with the same vessels and itineraries).
DONE = """
CREATE UNLOGGED TABLE tracks_gen.done (
    day date PRIMARY KEY, reports bigint NOT NULL, generate_s float8 NOT NULL,
    index_s float8 NOT NULL, summary_s float8 NOT NULL, export_s float8 NOT NULL)
"""


@dataclass
class Built:
    """The days built: reports, seconds of each step summed over the days (CPU-bound steps
    run ``jobs`` at a time, so these add up to more than the wall time), the wall time of
    this run's build, and the Parquet files in time order."""

    reports: int = 0
    generate_s: float = 0.0
    index_s: float = 0.0
    summary_s: float = 0.0
    export_s: float = 0.0
    wall_s: float = 0.0
    days_built: int = 0
    parquet: list[Path] = field(default_factory=list)


def _session(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    for statement in SESSION:
        conn.execute(statement)
    return conn


def prepare(url: str, params: dict[str, object]) -> None:
    """The generator's vessels, itineraries and spans (schema ``tracks_gen``), the vessels'
    identifiers and the generated file's ledger row, unless a previous run made them."""
    with _session(url) as conn:
        if conn.execute("SELECT to_regclass('tracks_gen.done')").fetchone() != (None,):
            return
        with conn.transaction():
            conn.execute("CREATE SCHEMA tracks_gen")
            for script in (SETUP, ITINERARY, LEGS, IDENTIFIERS, DONE):
                for statement in filter(str.strip, script.split(";\n")):
                    conn.execute(statement, params if "%(" in statement else None)
            conn.execute("INSERT INTO tracks_files (key, size, checksum, format, status)"
                         " VALUES ('generated', 0, '-', 'sql', 'consumed')")


def build_day(url: str, params: dict[str, object], i: int, work: Path) -> tuple[float, ...]:
    """Day ``i``: generated into a bare table in time order, its indexes built, its hourly
    summary built, attached; then exported as Parquet. (reports, generate s, index s,
    summary s, export s)."""
    day = (START + timedelta(days=i)).date()
    with _session(url) as conn:
        file_id = conn.execute("SELECT min(id) FROM tracks_files WHERE key = 'generated'"
                               ).fetchone()
        assert file_id is not None
        # a day left part-built by a stopped run is built again
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
            sql.Identifier(f"tracks_reports_{day:%Y%m%d}"),
            sql.Identifier(f"tracks_summary_{day:%Y%m%d}")))
        started = time.perf_counter()
        with conn.transaction():
            part = conn.execute("SELECT renderer.tracks_bulk_day(%s)", [day]).fetchone()
            assert part is not None and part[0], f"{day} has a partition already"
            ident = sql.Identifier(part[0])
            row = conn.execute(sql.SQL(DAY).format(part=ident), {
                **params, "lo": float(params["t0"]) + i * 86400,  # type: ignore[arg-type]
                "file_id": file_id[0]}).fetchone()
            assert row is not None
            inserted = time.perf_counter()
            for statement in DAY_INDEXES:
                conn.execute(sql.SQL(statement).format(part=ident))
        indexed = time.perf_counter()
        # the summary reads the day's table by name, attached or not
        conn.execute("SELECT renderer.tracks_summary_day(%s)", [day])
        summarised = time.perf_counter()
        conn.execute("SELECT renderer.tracks_attach_day(%s)", [day])
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
        done = time.perf_counter()
        csv = work / f"{day}.csv"
        with conn.cursor().copy(sql.SQL(EXPORT).format(part=ident)) as copy, \
                open(csv, "wb") as f:
            for block in copy:
                f.write(block)
        duck = duckdb.connect()
        duck.execute("SET threads = 1")
        duck.execute(
            f"COPY (SELECT * FROM read_csv('{csv}', header = false, columns = {{"
            "'t': 'TIMESTAMPTZ', 'mmsi': 'VARCHAR', 'lat': 'DOUBLE', 'lon': 'DOUBLE',"
            " 'sog': 'FLOAT', 'cog': 'FLOAT', 'heading': 'FLOAT', 'nav_status': 'TINYINT',"
            f" 'latency': 'INTEGER'}})) TO '{work / f'{day}.parquet'}'"
            " (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
        duck.close()
        csv.unlink()
        exported = time.perf_counter()
        times = (inserted - started, indexed - inserted, summarised - indexed + done - summarised,
                 exported - done)
        conn.execute("INSERT INTO tracks_gen.done VALUES (%s, %s, %s, %s, %s, %s)",
                     [day, row[0], *times])
    print(f"{day}: {row[0]:,} reports, generate+insert {times[0]:.1f} s, indexes "
          f"{times[1]:.1f} s, summary + attach {times[2]:.1f} s, export {times[3]:.1f} s",
          flush=True)
    return (row[0], *times)


def generate(url: str, vessels: int, days: int, interval: float, coast_km: float,
             work: Path, jobs: int = 2, build: bool = True) -> Built:
    """The days that are not built yet (``tracks_gen.done``), ``jobs`` at a time, each on a
    connection of its own (``build`` False: none); the totals over every built day."""
    t0 = START.timestamp()
    params: dict[str, object] = {
        "lats": [p[1] for p in sample.PORTS], "lons": [p[2] for p in sample.PORTS],
        "ports": len(sample.PORTS), "interval": interval, "vessels": vessels, "t0": t0,
        "t1": t0 + days * 86400, "coast_km": coast_km}
    started = time.perf_counter()
    built = Built()
    if build:
        prepare(url, params)
        with psycopg.connect(url) as conn:
            have = {r[0] for r in conn.execute("SELECT day FROM tracks_gen.done")}
        todo = [i for i in range(days) if (START + timedelta(days=i)).date() not in have]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for _ in pool.map(lambda i: build_day(url, params, i, work), todo):
                built.days_built += 1
        if todo:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE tracks_reports")
                conn.execute("ANALYZE tracks_summary")
    built.wall_s = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        for day, n, gen_s, index_s, summary_s, export_s in conn.execute(
                "SELECT day, reports, generate_s, index_s, summary_s, export_s"
                " FROM tracks_gen.done ORDER BY day"):
            built.reports += n
            built.generate_s += gen_s
            built.index_s += index_s
            built.summary_s += summary_s
            built.export_s += export_s
            built.parquet.append(work / f"{day}.parquet")
    return built


def first_positions(url: str) -> dict[str, tuple[float, float]]:
    """mmsi -> a vessel's first position (what the shapes draw boxes around)."""
    with psycopg.connect(url) as conn:
        day = f"tracks_reports_{START:%Y%m%d}"
        rows = conn.execute(sql.SQL(
            "SELECT DISTINCT ON (vessel_id) (503000000 + vessel_id - 1)::text, lat, lon"
            " FROM {} ORDER BY vessel_id, t").format(sql.Identifier(day))).fetchall()
    return {m: (lat, lon) for m, lat, lon in rows}


def routes(database: Database, make: Callable[[], Query], runs: int) -> None:
    """The streamed area month, hourly, through the hourly summary (as chosen) and through
    every report (``tracks.reports_sampled``, the route before the summary), alternated on
    the same instances: p50 whole answer and first row, and the same rows asserted."""
    m: dict[str, list[float]] = {"first": [], "total": [], "b_first": [], "b_total": []}
    for _ in range(runs):
        q = make()
        first, total, rows = ours(database, q)
        b_first, b_total, b_rows = ours(database, q, "tracks.reports_sampled")
        assert rows == b_rows, (q, rows, b_rows)
        for k, v in zip(m, (first, total, b_first, b_total), strict=True):
            m[k].append(v * 1000)
    p50 = {k: statistics.median(v) for k, v in m.items()}
    print(f"area month hourly, summary vs every report (p50 ms): whole {p50['total']:.1f} vs "
          f"{p50['b_total']:.1f} ({p50['b_total'] / p50['total']:.1f}x), first row "
          f"{p50['first']:.1f} vs {p50['b_first']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--coast-km", type=float, default=150.0)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duckdb-threads", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="Days built at once.")
    parser.add_argument("--work", default=None,
                        help="Folder for the Parquet files (kept with --keep).")
    parser.add_argument("--keep", action="store_true",
                        help="Keep the database and the Parquet files (needs --work); a later "
                             "run with --keep resumes a build that was stopped.")
    parser.add_argument("--reuse", action="store_true",
                        help="Build nothing: measure the queries on the kept database and "
                             "Parquet files of an earlier --keep run (same --work).")
    parser.add_argument("--build-only", action="store_true", help="Measure no query.")
    parser.add_argument("--no-routes", action="store_true",
                        help="Skip the summary against every report on the area month (the "
                             "route through every report takes minutes an instance at 100M).")
    args = parser.parse_args()
    if (args.keep or args.reuse) and not args.work:
        parser.error("--keep and --reuse need --work")

    server = resolve_url()
    kept = args.keep or args.reuse
    if kept and database_exists(server, BENCH_DB):
        url = with_database(server, BENCH_DB)
        schema.upgrade(url)  # a database kept by an older commit: its later migrations
    elif args.reuse:
        parser.error(f"--reuse: no database {BENCH_DB} on {server}")
    else:
        url = scratch_database(server, BENCH_DB)
    if kept:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="tracks-scale-", dir=args.work))
    try:
        vessels = max(10, round(args.reports / (args.days * PER_VESSEL_DAY)))
        built = generate(url, vessels, args.days, args.interval, args.coast_km, work,
                         args.jobs, build=not args.reuse)
        n = built.reports
        print(f"{n:,} reports over {len(built.parquet)} of {args.days} days "
              f"({vessels:,} vessels); summed over the days: generate + insert "
              f"{built.generate_s:.0f} s ({n / built.generate_s:,.0f}/s), index builds "
              f"{built.index_s:.0f} s ({built.index_s / n * 1e6:.2f} us a report), hourly "
              f"summaries + attach {built.summary_s:.0f} s ({built.summary_s / n * 1e6:.2f} us"
              f" a report), export {built.export_s:.0f} s; this run built "
              f"{built.days_built} days in {built.wall_s:.0f} s of wall time, {args.jobs} at "
              "a time")
        if args.build_only:
            return
        size = storage(url)
        parquet_bytes = sum(p.stat().st_size for p in built.parquet)
        print(f"storage: {size['total']:.1f} bytes/report (heap {size['heap']:.1f}, hourly "
              f"summary {size['summary']:.1f}) vs BinaryFixes 35; Parquet (zstd) "
              f"{parquet_bytes / n:.1f}")

        con = duckdb.connect()
        con.execute(f"SET threads = {args.duckdb_threads}")
        files = ", ".join(f"'{p}'" for p in built.parquet)
        con.execute(f"CREATE VIEW reports AS SELECT * FROM read_parquet([{files}])")
        rng = random.Random(args.seed)
        made = shapes(first_positions(url), START, len(built.parquet), rng)
        results = measure(Database(url), con, made, args.runs)
        summarise(results, size, extra=f"reports={n}")
        if not args.no_routes:
            routes(Database(url), made["bbox_month_hourly_streamed"], args.runs)
    finally:
        if not kept:
            shutil.rmtree(work, ignore_errors=True)
            drop_database(server, BENCH_DB)


if __name__ == "__main__":
    main()

