"""DuckDB with its postgres extension, PostgreSQL in and out: the like-for-like contender of
the sensors benchmarks (issue 16), for a user who keeps PostgreSQL as the system of record.

The extension is on the package mirror only for DuckDB 1.5.5 (``duckdb-extension-postgres-
scanner``), while the project's venv has DuckDB 2.0.1 for the Parquet contenders; so this
contender runs in a separate virtualenv, ``.venv-duckdb-pg/`` at the repository root
(gitignored), made on demand by :func:`python` (``pip install duckdb==1.5.5
duckdb-extension-postgres-scanner==1.5.5``, offline against the mirror), as a subprocess:

    .venv-duckdb-pg/bin/python benchmarks/duckdb_pg.py day URL LO POSTMASTER [SETTINGS]
    .venv-duckdb-pg/bin/python benchmarks/duckdb_pg.py whole URL CSV OUT POSTMASTER [SETTINGS]
    <any python with duckdb> benchmarks/duckdb_pg.py parquet PARQUET LO

Each prints one JSON line: wall and CPU seconds of its timed part (this process, all its
threads) and the server's CPU seconds over it (every process of the cluster whose postmaster
is POSTMASTER, from /proc), with the steps apart. The extension is LOADed from the package's
file by path (no download). This module imports only the standard library at its top, so the
benchmarks import its helpers from the project's venv.

``day``: the raw rows of the day at LO (epoch seconds), its 600 s of context and, for a
detector without context, its previous record (what ``READ`` of ``benchmarks/sensors.py``
gives), through the attached database; the windows of ``DUCKDB_DAY``
(``benchmarks/sensors_one.py``), every column; the enriched day written into
``bench_duckdb_pg_out``, shaped as a day partition of ``sensors_enriched``, in one timed
transaction, the primary key built after the load, as ours does for its fresh table. Two ways
(setting ``write``): ``ctas`` (the best), the table made by ``CREATE TABLE pg... AS`` in the
transaction, as ours makes its fresh table in its own (its columns and types are ours, but not
the CHECKs and NOT NULLs on the two indicators); ``insert``, the table made before the clock
starts from ours' DDL (``renderer.sensors_enriched_ddl``: columns, types, CHECKs), emptied in
the transaction (TRUNCATE) and loaded by ``INSERT``. Either way, with ``wal_level=minimal``,
the load is not WAL-logged, as ours' is not. The extension loads by binary COPY either way.

``whole``: the day's CSV read typed (``read_csv``, as ``DUCKDB_WHOLE``), the raw rows written
into ``bench_duckdb_pg_raw`` (shaped as ``sensors_raw`` with its key, maintained by the load,
as ours' COPY into the day's partition), the enrichment computed from the rows in memory (as
ours' ingest does for a fresh day) and written into ``bench_duckdb_pg_out`` as in ``day``, all
in one transaction; then the Parquet export (zstd, sorted as ours) from the enriched rows
DuckDB holds, as a user with the rows in hand would write it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sensors_one import JAM, SPEED_DIFF, WINDOWS

VERSION = "1.5.5"
ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-duckdb-pg"
OUT = "bench_duckdb_pg_out"
RAW = "bench_duckdb_pg_raw"
ENRICHED_COLUMNS = (
    "uniqueid, recordtimestamp, currentspeed, bezettingsgraad, previousspeed,"
    " trafficjamindicator, trafficintensityclass1, trafficintensityclass2,"
    " trafficintensityclass3, trafficintensityclass4, trafficintensityclass5,"
    " speeddiffindicator, avgspeed2minutes, avgspeed10minutes")
# The best settings of the sweep of benchmarks/sensors.py (BENCHMARKS.md): one thread (two
# spend more CPU waiting on PostgreSQL, and took longer), the table made by CREATE TABLE AS in
# the timed transaction and its key built by one process (as ours); each run may override
# any of them.
DEFAULTS: dict[str, Any] = {"threads": 1, "read": "attached", "write": "ctas",
                            "binary": True, "pushdown": True, "connections": 4,
                            "key": "after", "key_workers": 0}

# The windows of DUCKDB_DAY (sensors_one.py) over the raw rows in ``raw`` (t in epoch
# seconds, currentspeed in km/h), every column of the enriched day, in its order.
ENRICH = f"""
SELECT uniqueid, recordtimestamp, currentspeed, bezettingsgraad, previousspeed,
       ({JAM})::SMALLINT AS trafficjamindicator,
       trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
       trafficintensityclass4, trafficintensityclass5,
       ({SPEED_DIFF})::SMALLINT
           AS speeddiffindicator,
       avgspeed2minutes, avgspeed10minutes
  FROM (SELECT *,
               {WINDOWS}
          FROM {{raw}}) w
 WHERE t >= {{lo}}
"""

# The raw rows of the day and its context, from the attached table (the extension pushes the
# time filter down: one binary COPY of the day's partition and the context's rows).
RAW_ATTACHED = """
SELECT uniqueid, recordtimestamp, epoch(recordtimestamp)::BIGINT AS t,
       currentspeed_hundredths / 100 AS currentspeed, bezettingsgraad,
       trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
       trafficintensityclass4, trafficintensityclass5
  FROM pg.renderer.sensors_raw
 WHERE recordtimestamp >= to_timestamp({lo} - 600)
   AND recordtimestamp < to_timestamp({lo} + 86400)
"""

# The previous record of each detector of ``ids`` before the context (an index probe each,
# as ours' previous_speeds), run by PostgreSQL.
PREVIOUS = """
SELECT p.uniqueid, p.recordtimestamp, extract(epoch FROM p.recordtimestamp)::bigint AS t,
       p.currentspeed_hundredths::float8 / 100 AS currentspeed, NULL::real AS bezettingsgraad,
       NULL::int AS trafficintensityclass1, NULL::int AS trafficintensityclass2,
       NULL::int AS trafficintensityclass3, NULL::int AS trafficintensityclass4,
       NULL::int AS trafficintensityclass5
FROM unnest('{{{ids}}}'::integer[]) d(uniqueid)
CROSS JOIN LATERAL (
    SELECT * FROM renderer.sensors_raw r WHERE r.uniqueid = d.uniqueid
      AND r.recordtimestamp < to_timestamp({lo} - 600)
    ORDER BY r.recordtimestamp DESC LIMIT 1) p
"""

# READ of benchmarks/sensors.py with every raw column, run by PostgreSQL (postgres_query):
# the day, its context, and the previous record of every detector of the day.
RAW_QUERY = """
SELECT uniqueid, recordtimestamp, extract(epoch FROM recordtimestamp)::bigint AS t,
       currentspeed_hundredths::float8 / 100 AS currentspeed, bezettingsgraad,
       trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
       trafficintensityclass4, trafficintensityclass5
FROM renderer.sensors_raw WHERE recordtimestamp >= to_timestamp({lo} - 600)
  AND recordtimestamp < to_timestamp({lo} + 86400)
UNION ALL
SELECT p.uniqueid, p.recordtimestamp, extract(epoch FROM p.recordtimestamp)::bigint,
       p.currentspeed_hundredths::float8 / 100, NULL, NULL, NULL, NULL, NULL, NULL
FROM (SELECT DISTINCT uniqueid FROM renderer.sensors_raw
      WHERE recordtimestamp >= to_timestamp({lo})
        AND recordtimestamp < to_timestamp({lo} + 86400)) d
CROSS JOIN LATERAL (
    SELECT * FROM renderer.sensors_raw r WHERE r.uniqueid = d.uniqueid
      AND r.recordtimestamp < to_timestamp({lo} - 600)
    ORDER BY r.recordtimestamp DESC LIMIT 1) p
"""

CSV = """
SELECT uniqueid, to_timestamp(t) AS recordtimestamp, t, currentspeed, bezettingsgraad,
       trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
       trafficintensityclass4, trafficintensityclass5
  FROM read_csv($csv, header = true, columns = {
      'uniqueid': 'INTEGER', 'recordtimestamp': 'BIGINT', 'currentspeed': 'DOUBLE',
      'bezettingsgraad': 'FLOAT', 'trafficintensityclass1': 'INTEGER',
      'trafficintensityclass2': 'INTEGER', 'trafficintensityclass3': 'INTEGER',
      'trafficintensityclass4': 'INTEGER', 'trafficintensityclass5': 'INTEGER'})
       AS raw(uniqueid, t, currentspeed, bezettingsgraad, trafficintensityclass1,
              trafficintensityclass2, trafficintensityclass3,
              trafficintensityclass4, trafficintensityclass5)
"""


# --- the parent's side (the project's venv) ------------------------------------------------

def python() -> Path:
    """The separate venv's interpreter, with DuckDB 1.5.5 and its postgres extension; made on
    first use (about 20 s, offline against the package mirror)."""
    exe = VENV / "bin" / "python"
    check = [str(exe), "-c", f"import duckdb, duckdb_extension_postgres_scanner;"
             f" assert duckdb.__version__ == {VERSION!r}"]
    if exe.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return exe
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(exe), "-m", "pip", "install", "-q", f"duckdb=={VERSION}",
                    f"duckdb-extension-postgres-scanner=={VERSION}"], check=True)
    subprocess.run(check, check=True)
    return exe


def run(exe: Path | str, *args: Any) -> dict[str, Any]:
    """One worker run in its own process; its JSON report."""
    done = subprocess.run([str(exe), __file__, *map(str, args)], capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"duckdb_pg {args[0]} failed:\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def describe(settings: dict[str, Any]) -> str:
    """The settings that differ from DEFAULTS, for the sweep's lines."""
    changed = {k: v for k, v in settings.items() if DEFAULTS.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"


# --- the worker's side (the separate venv) -------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cluster_seconds(postmaster: int) -> float:
    """The cluster's CPU seconds so far (as benchmarks/scratch.py, which needs psycopg)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == postmaster:
            total += sum(int(v) for v in fields[11:15])
        elif int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


class Steps:
    """Wall, client CPU and server CPU of each timed step, and of them all."""

    def __init__(self, con: Any, postmaster: int) -> None:
        self.con, self.postmaster = con, postmaster
        self.steps: list[list[Any]] = []

    def __call__(self, name: str, statement: str, params: Any = None) -> Any:
        s0, w0, c0 = cluster_seconds(self.postmaster), time.perf_counter(), time.process_time()
        result = self.con.execute(statement, params).fetchall()
        self.steps.append([name, time.perf_counter() - w0, time.process_time() - c0,
                           cluster_seconds(self.postmaster) - s0])
        return result

    def report(self, **more: Any) -> str:
        total = [sum(s[i] for s in self.steps) for i in (1, 2, 3)]
        return json.dumps({"wall": total[0], "cpu": total[1], "server": total[2],
                           "steps": self.steps, **more})


def connect(url: str, settings: dict[str, Any]) -> Any:
    """DuckDB with the extension loaded by path and the database attached as ``pg``."""
    import duckdb
    import duckdb_extension_postgres_scanner as package  # type: ignore[import-not-found]

    ext = (Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}"
           / "postgres_scanner.duckdb_extension")
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    con.execute(f"SET threads = {int(settings['threads'])}")
    con.execute(f"SET pg_use_binary_copy = {bool(settings['binary'])}")
    con.execute(f"SET pg_experimental_filter_pushdown = {bool(settings['pushdown'])}")
    con.execute(f"SET pg_pool_max_connections = {int(settings['connections'])}")
    con.execute("ATTACH '{}' AS pg (TYPE postgres)".format(url.replace("'", "''")))
    return con


def fresh_out(con: Any, settings: dict[str, Any]) -> None:
    """bench_duckdb_pg_out made anew, shaped as a day partition of sensors_enriched (not
    timed, as ours' fresh table is made by renderer.sensors_enrich_begin from the same DDL);
    dropped only, for CREATE TABLE AS in the timed transaction."""
    con.execute(f"CALL postgres_execute('pg', 'DROP TABLE IF EXISTS {OUT}')")
    if settings["write"] == "ctas":
        return
    ddl = con.execute("SELECT * FROM postgres_query('pg', 'SELECT"
                      f" renderer.sensors_enriched_ddl(''{OUT}'') AS d')").fetchone()[0]
    con.execute("CALL postgres_execute('pg', $ddl)", {"ddl": ddl})
    if settings["key"] == "before":
        con.execute(f"CALL postgres_execute('pg', 'ALTER TABLE {OUT}"
                    " ADD PRIMARY KEY (uniqueid, recordtimestamp)')")


def write_out(step: Steps, source: str, settings: dict[str, Any],
              name: str = "compute + write") -> None:
    """The enriched rows of ``source`` (a query) into bench_duckdb_pg_out, key after, in the
    open transaction."""
    if settings["write"] == "ctas":  # the table made by DuckDB in the transaction
        step(f"create table as: {name}", f"CREATE TABLE pg.renderer.{OUT} AS {source}")
    else:
        step("truncate", f"CALL postgres_execute('pg', 'TRUNCATE {OUT}')")
        step(name, f"INSERT INTO pg.renderer.{OUT} ({ENRICHED_COLUMNS}) {source}")
    if settings["key"] == "after":
        if settings["key_workers"] is not None:  # as ours: 0, one process builds the key
            step("set", "CALL postgres_execute('pg', 'SET LOCAL"
                 f" max_parallel_maintenance_workers = {int(settings['key_workers'])}')")
        step("key", f"CALL postgres_execute('pg', 'ALTER TABLE {OUT}"
                    " ADD PRIMARY KEY (uniqueid, recordtimestamp)')")


def day(url: str, lo: int, postmaster: int, settings: dict[str, Any]) -> str:
    con = connect(url, settings)
    fresh_out(con, settings)
    step = Steps(con, postmaster)
    step("begin", "BEGIN")
    if settings["read"] == "query":  # READ, run by PostgreSQL, in the same statement
        query = RAW_QUERY.format(lo=lo).replace("'", "''")
        raw = f"postgres_query('pg', '{query}')"
    else:  # the attached table, then probes for detectors without context (as ours)
        step("read day + context", "CREATE TEMP TABLE raw AS " + RAW_ATTACHED.format(lo=lo))
        ids = [r[0] for r in step("detectors without context", "SELECT uniqueid FROM raw"
                                  f" GROUP BY uniqueid HAVING min(t) >= {lo}")]
        if ids:
            query = PREVIOUS.format(ids=",".join(map(str, ids)), lo=lo).replace("'", "''")
            step("previous records", f"INSERT INTO raw SELECT * FROM postgres_query('pg',"
                                     f" '{query}')")
        raw = "raw"
    write_out(step, ENRICH.format(raw=raw, lo=lo), settings)
    step("commit", "COMMIT")
    rows = con.execute(f"SELECT count(*) FROM pg.renderer.{OUT}").fetchone()[0]
    return step.report(rows=rows)


def whole(url: str, csv: str, out: str, postmaster: int, settings: dict[str, Any]) -> str:
    con = connect(url, settings)
    fresh_out(con, settings)
    con.execute(f"CALL postgres_execute('pg', 'DROP TABLE IF EXISTS {RAW};"
                f" CREATE TABLE {RAW} (LIKE renderer.sensors_raw INCLUDING ALL)')")
    step = Steps(con, postmaster)
    step("read CSV", "CREATE TEMP TABLE raw AS " + CSV, {"csv": csv})
    step("begin", "BEGIN")
    step("raw rows into PostgreSQL (key maintained)",
         f"INSERT INTO pg.renderer.{RAW} SELECT uniqueid, recordtimestamp,"
         " round(currentspeed * 100)::INTEGER, bezettingsgraad, trafficintensityclass1,"
         " trafficintensityclass2, trafficintensityclass3, trafficintensityclass4,"
         " trafficintensityclass5, 0 FROM raw ORDER BY uniqueid, t")
    step("compute", "CREATE TEMP TABLE enriched AS "
         + ENRICH.format(raw="raw", lo=-(1 << 62)))
    write_out(step, "SELECT * FROM enriched", settings, "enriched rows into PostgreSQL")
    step("commit", "COMMIT")
    step("Parquet from the enriched rows in memory",
         "COPY (SELECT * FROM enriched ORDER BY uniqueid, recordtimestamp)"
         f" TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    rows = con.execute(f"SELECT count(*) FROM pg.renderer.{OUT}").fetchone()[0]
    return step.report(rows=rows)


def parquet(path: str, lo: int) -> str:
    """DUCKDB_DAY on the day's Parquet file (2 threads), for the version's own effect."""
    import duckdb
    from sensors_one import DUCKDB_DAY

    con = duckdb.connect()
    con.execute("SET threads = 2")
    w0, c0 = time.perf_counter(), time.process_time()
    con.execute(DUCKDB_DAY, {"path": path, "lo": lo})
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    rows = con.execute("SELECT count(*) FROM enriched").fetchone()[0]  # type: ignore[index]
    return json.dumps({"wall": wall, "cpu": cpu, "rows": rows, "version": duckdb.__version__})


def main() -> None:
    what, args = sys.argv[1], sys.argv[2:]
    if what == "parquet":
        print(parquet(args[0], int(args[1])))
        return
    settings = {**DEFAULTS, **(json.loads(args[-1]) if args[-1].startswith("{") else {})}
    if what == "day":
        print(day(args[0], int(args[1]), int(args[2]), settings))
    elif what == "whole":
        print(whole(args[0], args[1], args[2], int(args[3]), settings))
    else:
        raise SystemExit(f"unknown run {what!r}: day, whole or parquet")


if __name__ == "__main__":
    main()
