"""The sensors day stored as one row per (detector, day) with an array per field, measured
against today's row per event (issue 16 item 2): a prototype, not the product's layout.

In a private cluster, two days of ``--detectors`` x 1,440 minutes are generated as
``benchmarks/sensors.py`` does and enriched by the C engine (today's tables). From them, not
timed, the same rows are put in the array layout (``array_agg`` per detector and day, in
time order): the enriched days with the 13 fields as arrays, and the raw day as arrays. Then,
each step in a connection of its own, the server's CPU read from /proc for that backend and
the client's apart:

- write: the enriched day by one binary COPY into a fresh table made in the transaction (as
  ``renderer.sensors_enrich_begin`` does) and its key, as 1.44M rows (today) and as 1,000
  rows of arrays with each TOAST choice (EXTERNAL: out of line, not compressed; pglz; lz4);
  the raw day as rows with the key maintained (ingest today) and as arrays;
- read: the binary COPY out of the enriched day (the export's read) and of the raw day (the
  enrichment's read), rows against arrays, and the export's whole route today
  (``renderer.sensors.export.day_table`` and the Parquet write);
- the reads users make, through a view ``bench_enriched`` that unnests the arrays into
  today's columns and rows, and on the array table directly, each against today's
  ``sensors_enriched``: one detector's day (the detector page's statement), a day's ranking
  (``/sensors/days/{day}``), a time range of all detectors and of one, and the plans of the
  last two (does a time filter on the view prune by day?). Results compared equal.

Last line: ``arrays_write_ratio=R``, the enriched day's write in server CPU s, rows / arrays
(EXTERNAL).

    .venv/bin/python benchmarks/sensors_arrays.py [--detectors 1000] [--reps 2] [--keep]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg
from scratch import scratch_database
from sensors import generate

from renderer.db import connect
from renderer.localdb import Cluster
from renderer.sensors.enrich import enrich_day
from renderer.sensors.export import _parquet_bytes, day_table

TICK = os.sysconf("SC_CLK_TCK")
DAY = date(2026, 1, 2)
LO, HI = "2026-01-02 00:00+00", "2026-01-03 00:00+00"
FIELDS = ["currentspeed", "bezettingsgraad", "previousspeed", "trafficjamindicator",
          *[f"trafficintensityclass{i}" for i in range(1, 6)], "speeddiffindicator",
          "avgspeed2minutes", "avgspeed10minutes"]
TYPES = ["float8", "real", "float8", "smallint", *["integer"] * 5, "smallint", "float8",
         "float8"]
ROW_COLUMNS = "uniqueid, recordtimestamp, " + ", ".join(FIELDS)
ARRAY_COLUMNS = "uniqueid, day, recordtimestamp, " + ", ".join(FIELDS)
RAW = ["currentspeed_hundredths", "bezettingsgraad",
       *[f"trafficintensityclass{i}" for i in range(1, 6)]]
RAW_READ = "uniqueid, recordtimestamp, " + ", ".join(RAW)  # sensors_day.raw_rows_copy's
RAW_WRITE = RAW_READ + ", file_id"  # sensors_ingest.copy_raw's


def backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Step:
    """Wall, client CPU and this connection's backend CPU of a block; kept in ``seen``."""

    seen: dict[str, list[tuple[float, float, float]]] = {}

    def __init__(self, conn: psycopg.Connection, name: str) -> None:
        self.pid, self.name = conn.info.backend_pid, name

    def __enter__(self) -> None:
        self.s, self.c = backend_cpu(self.pid), time.process_time()
        self.w = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        took = (time.perf_counter() - self.w, time.process_time() - self.c,
                backend_cpu(self.pid) - self.s)
        self.seen.setdefault(self.name, []).append(took)
        print(f"  {self.name:52s} wall {took[0]:6.3f}  client {took[1]:6.3f}"
              f"  server {took[2]:6.3f}", flush=True)


def server_median(name: str) -> float:
    return statistics.median(s for _, _, s in Step.seen[name])


def copy_out(conn: psycopg.Connection, statement: str) -> bytes:
    out = io.BytesIO()
    with conn.cursor().copy(statement) as copy:
        for block in copy:
            out.write(block)
    return out.getvalue()


def copy_in(conn: psycopg.Connection, statement: str, data: bytes) -> None:
    with conn.cursor().copy(statement) as copy:
        for at in range(0, len(data), 1 << 20):
            copy.write(data[at:at + (1 << 20)])


def array_table(conn: psycopg.Connection, name: str, storage: str | None = None,
                compression: str | None = None) -> None:
    fields = ", ".join(f"{c} {t}[]" for c, t in zip(FIELDS, TYPES, strict=True))
    conn.execute(f"CREATE TABLE {name} (uniqueid integer NOT NULL, day date NOT NULL,"
                 f" recordtimestamp timestamptz[] NOT NULL, {fields})")
    for column in ["recordtimestamp", *FIELDS]:
        if storage:
            conn.execute(f"ALTER TABLE {name} ALTER COLUMN {column} SET STORAGE {storage}")
        if compression:
            conn.execute(f"ALTER TABLE {name} ALTER COLUMN {column}"
                         f" SET COMPRESSION {compression}")


def prepare(url: str, detectors: int) -> None:
    """Two days generated and enriched as today; the same rows in the array layout."""
    t0 = time.perf_counter()
    generate(url, 2, detectors)
    with connect(url) as conn:
        for day in (date(2026, 1, 1), DAY):
            enrich_day(conn, day, "c")
            conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        array_table(conn, "bench_days", "EXTERNAL")
        aggs = ", ".join(f"array_agg({c} ORDER BY recordtimestamp)" for c in FIELDS)
        conn.execute(f"INSERT INTO bench_days SELECT uniqueid,"
                     " (recordtimestamp AT TIME ZONE 'UTC')::date,"
                     f" array_agg(recordtimestamp ORDER BY recordtimestamp), {aggs}"
                     " FROM sensors_enriched GROUP BY 1, 2 ORDER BY 1, 2")
        conn.execute("ALTER TABLE bench_days ADD PRIMARY KEY (uniqueid, day)")
        conn.execute("CREATE INDEX ON bench_days (day)")
        raw = ", ".join(f"{c} {t}[]" for c, t in zip(
            [*RAW, "file_id"], ["integer", "real", *["integer"] * 5, "bigint"], strict=True))
        conn.execute(f"CREATE TABLE bench_raw_days (uniqueid integer NOT NULL, day date NOT"
                     f" NULL, recordtimestamp timestamptz[] NOT NULL, {raw})")
        for column in ["recordtimestamp", *RAW, "file_id"]:
            conn.execute(f"ALTER TABLE bench_raw_days ALTER COLUMN {column} SET STORAGE"
                         " EXTERNAL")
        aggs = ", ".join(f"array_agg({c} ORDER BY recordtimestamp)" for c in [*RAW, "file_id"])
        conn.execute(f"INSERT INTO bench_raw_days SELECT uniqueid, %s::date,"
                     f" array_agg(recordtimestamp ORDER BY recordtimestamp), {aggs}"
                     " FROM sensors_raw WHERE recordtimestamp >= %s AND recordtimestamp < %s"
                     " GROUP BY uniqueid ORDER BY uniqueid", [DAY, LO, HI])
        cols = ", ".join(f"u.{c}" for c in ["recordtimestamp", *FIELDS])
        args = ", ".join(f"d.{c}" for c in ["recordtimestamp", *FIELDS])
        conn.execute(f"CREATE VIEW bench_enriched AS SELECT d.uniqueid, {cols}"
                     f" FROM bench_days d CROSS JOIN LATERAL unnest({args})"
                     f" AS u(recordtimestamp, {', '.join(FIELDS)})")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
        sizes = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('sensors_enriched_20260102')),"
            " pg_size_pretty(pg_total_relation_size('bench_days') / 2)").fetchone()
    print(f"prepared in {time.perf_counter() - t0:.0f} s; the enriched day: rows {sizes[0]},"
          f" arrays (EXTERNAL) {sizes[1]}", flush=True)


def writes(url: str, reps: int) -> None:
    with psycopg.connect(url) as conn:
        rows = copy_out(conn, f"COPY (SELECT {ROW_COLUMNS} FROM sensors_enriched WHERE"
                        f" recordtimestamp >= '{LO}' AND recordtimestamp < '{HI}'"
                        " ORDER BY uniqueid, recordtimestamp) TO STDOUT (FORMAT binary)")
        arrays = copy_out(conn, f"COPY (SELECT {ARRAY_COLUMNS} FROM bench_days WHERE day ="
                          f" '{DAY}' ORDER BY uniqueid) TO STDOUT (FORMAT binary)")
        raw_rows = copy_out(conn, f"COPY (SELECT {RAW_WRITE} FROM sensors_raw WHERE"
                            f" recordtimestamp >= '{LO}' AND recordtimestamp < '{HI}'"
                            " ORDER BY uniqueid, recordtimestamp) TO STDOUT (FORMAT binary)")
        raw_arrays = copy_out(conn, f"COPY (SELECT {RAW_WRITE.replace('id, ', 'id, day, ', 1)}"
                              " FROM bench_raw_days ORDER BY uniqueid) TO STDOUT"
                              " (FORMAT binary)")
        ddl = conn.execute("SELECT renderer.sensors_enriched_ddl('bench_fresh')").fetchone()
    print(f"binary COPY of the enriched day: rows {len(rows) / 1e6:.0f} MB,"
          f" arrays {len(arrays) / 1e6:.0f} MB", flush=True)
    for rep in range(reps):
        print(f"write, round {rep + 1}", flush=True)
        with psycopg.connect(url) as conn:
            conn.execute("SET max_parallel_maintenance_workers = 0")
            conn.execute(ddl[0])  # as renderer.sensors_enrich_begin makes its fresh table
            with Step(conn, "enriched rows: COPY + key + commit"):
                copy_in(conn, f"COPY bench_fresh ({ROW_COLUMNS}) FROM STDIN (FORMAT binary)",
                        rows)
                conn.execute("ALTER TABLE bench_fresh ADD PRIMARY KEY"
                             " (uniqueid, recordtimestamp)")
                conn.commit()
            conn.execute("DROP TABLE bench_fresh")
            conn.commit()
        for label, storage, compression in [("EXTERNAL", "EXTERNAL", None),
                                            ("pglz", None, "pglz"), ("lz4", None, "lz4")]:
            with psycopg.connect(url) as conn:
                array_table(conn, "bench_fresh", storage, compression)
                with Step(conn, f"enriched arrays {label}: COPY + key + commit"):
                    copy_in(conn, f"COPY bench_fresh ({ARRAY_COLUMNS}) FROM STDIN"
                            " (FORMAT binary)", arrays)
                    conn.execute("ALTER TABLE bench_fresh ADD PRIMARY KEY (uniqueid, day)")
                    conn.commit()
                conn.execute("DROP TABLE bench_fresh")
                conn.commit()
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE bench_fresh (LIKE sensors_raw INCLUDING ALL)")
            conn.commit()  # ingest COPYs into a partition that exists: WAL-logged
            with Step(conn, "raw rows: COPY, key maintained, commit"):
                copy_in(conn, f"COPY bench_fresh ({RAW_WRITE}) FROM STDIN (FORMAT binary)",
                        raw_rows)
                conn.commit()
            conn.execute("DROP TABLE bench_fresh")
            conn.execute("CREATE TABLE bench_fresh (LIKE bench_raw_days INCLUDING STORAGE,"
                         " PRIMARY KEY (uniqueid, day))")
            conn.commit()
            with Step(conn, "raw arrays: COPY, key maintained, commit"):
                copy_in(conn, f"COPY bench_fresh ({RAW_WRITE.replace('id, ', 'id, day, ', 1)})"
                        " FROM STDIN (FORMAT binary)", raw_arrays)
                conn.commit()
            conn.execute("DROP TABLE bench_fresh")
            conn.commit()


def reads(url: str, reps: int) -> None:
    for rep in range(reps):
        print(f"read, round {rep + 1}", flush=True)
        with psycopg.connect(url) as conn:
            with Step(conn, "enriched rows: COPY out"):
                copy_out(conn, f"COPY (SELECT {ROW_COLUMNS} FROM sensors_enriched WHERE"
                         f" recordtimestamp >= '{LO}' AND recordtimestamp < '{HI}'"
                         " ORDER BY uniqueid, recordtimestamp) TO STDOUT (FORMAT binary)")
            with Step(conn, "enriched arrays: COPY out"):
                copy_out(conn, f"COPY (SELECT {ARRAY_COLUMNS} FROM bench_days WHERE day ="
                         f" '{DAY}' ORDER BY uniqueid) TO STDOUT (FORMAT binary)")
            with Step(conn, "raw rows and context: COPY out"):
                copy_out(conn, f"COPY (SELECT {RAW_READ} FROM sensors_raw WHERE"
                         f" recordtimestamp >= '{LO}'::timestamptz - interval '600 seconds'"
                         f" AND recordtimestamp < '{HI}' ORDER BY uniqueid, recordtimestamp)"
                         " TO STDOUT (FORMAT binary)")
            with Step(conn, "raw arrays: COPY out"):
                copy_out(conn, f"COPY (SELECT {RAW_READ} FROM bench_raw_days ORDER BY"
                         " uniqueid) TO STDOUT (FORMAT binary)")
        with connect(url) as conn:
            with Step(conn, "export today: COPY read by C into columns"):
                table = day_table(conn, DAY)
            with Step(conn, "export today: Parquet (zstd) write"):
                _parquet_bytes(table)


def named(path: Path, name: str) -> str:
    part = path.read_text().split(f"-- name: {name}\n", 1)[1].split("-- name:", 1)[0]
    return "\n".join(line for line in part.splitlines() if not line.startswith("--"))


def user_reads(url: str, sql: Path) -> None:
    web, export = sql / "web_sensors.sql", sql / "sensors_export.sql"
    detector_day = named(web, "detector_day")
    ranking = named(web, "day_ranking")
    # the day's arrays with the day named, unnested into the columns the ranking reads
    day_arrays = ("(SELECT d.uniqueid, u.* FROM bench_days d, unnest(d.recordtimestamp,"
                  " d.currentspeed, d.avgspeed10minutes, d.trafficjamindicator)"
                  " AS u(recordtimestamp, currentspeed, avgspeed10minutes,"
                  " trafficjamindicator) WHERE d.day = %(day)s)")
    on_arrays = ranking.replace("FROM sensors_enriched\n",
                                f"FROM {day_arrays} AS sensors_enriched\n").replace(
        "JOIN sensors_enriched e ON", f"JOIN {day_arrays} e ON")
    assert on_arrays.count("bench_days") == 2
    hour = ("SELECT count(*), sum(currentspeed) FROM {t} WHERE recordtimestamp >="
            " '2026-01-02 07:00+00' AND recordtimestamp < '2026-01-02 08:00+00'")
    one = hour + " AND uniqueid = 417"
    cases = [
        ("detector day", "rows", detector_day),
        ("detector day", "view", detector_day.replace("sensors_enriched", "bench_enriched")),
        ("detector day", "arrays", """
            SELECT extract(epoch FROM u.recordtimestamp
                           - %(day)s::timestamp AT TIME ZONE 'UTC')::integer AS second,
                   u.currentspeed, u.avgspeed2minutes, u.avgspeed10minutes,
                   u.trafficjamindicator
              FROM bench_days d, unnest(d.recordtimestamp, d.currentspeed,
                   d.avgspeed2minutes, d.avgspeed10minutes, d.trafficjamindicator)
                   AS u(recordtimestamp, currentspeed, avgspeed2minutes, avgspeed10minutes,
                        trafficjamindicator)
             WHERE d.uniqueid = %(detector)s AND d.day = %(day)s ORDER BY 1"""),
        ("day ranking", "rows", ranking),
        ("day ranking", "view", ranking.replace("sensors_enriched", "bench_enriched")),
        ("day ranking", "arrays", on_arrays),
        ("an hour, all detectors", "rows", hour.format(t="sensors_enriched")),
        ("an hour, all detectors", "view", hour.format(t="bench_enriched")),
        ("an hour, one detector", "rows", one.format(t="sensors_enriched")),
        ("an hour, one detector", "view", one.format(t="bench_enriched")),
        ("sensors query (12 h)", "rows", named(export, "query")),
        ("sensors query (12 h)", "view",
         named(export, "query").replace("sensors_enriched", "bench_enriched")),
    ]
    params = {"day": DAY, "detector": 417, "limit": 50, "lo": "2026-01-02 06:00+00",
              "hi": "2026-01-02 18:00+00"}
    print("reads users make (ms: median of 3, the ranking 2; load", os.getloadavg()[0], ")")
    with psycopg.connect(url, autocommit=True) as conn:
        got: dict[str, list[object]] = {}
        for what, how, statement in cases:
            took = []
            for _ in range(2 if what == "day ranking" else 3):
                t0 = time.perf_counter()
                rows = conn.execute(statement, params).fetchall()
                took.append(time.perf_counter() - t0)
            same = got.setdefault(what, rows) == rows
            print(f"  {what:24s} {how:7s} {len(rows):5d} rows"
                  f" {statistics.median(took) * 1000:9.1f} ms  equal to rows: {same}",
                  flush=True)
        for label, statement in [("an hour, all detectors", hour), ("one detector", one)]:
            plan = conn.execute("EXPLAIN " + statement.format(t="bench_enriched")).fetchall()
            print(f"  plan of {label} through the view:")
            for (line,) in plan:
                print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the cluster's folder")
    parser.add_argument("--user-reads", action="store_true",
                        help="only the reads users make (no writes, no COPY reads)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="renderer-bench-sensors-arrays-"))
    cluster = Cluster(folder)
    try:
        url = scratch_database(cluster.ensure_started(), "renderer_bench_sensors_arrays")
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
        prepare(url, args.detectors)
        user_reads(url, Path(__file__).resolve().parent.parent / "sql")
        if args.user_reads:
            return
        writes(url, args.reps)
        reads(url, args.reps)
        rows = server_median("enriched rows: COPY + key + commit")
        arrays = server_median("enriched arrays EXTERNAL: COPY + key + commit")
        print(f"load average {os.getloadavg()[0]:.1f}; the enriched day's write, server CPU s:"
              f" rows {rows:.2f}, arrays {arrays:.2f}")
        print(f"arrays_write_ratio={rows / arrays:.2f}")
    finally:
        cluster.stop()
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
