"""One sensors day as one process, for whole-process A/B timings against DuckDB.

    .venv/bin/python benchmarks/sensors_one.py ours URL [--engine c|sql] [--day 2026-01-02]
    .venv/bin/python benchmarks/sensors_one.py duckdb PARQUET [--day 2026-01-02]

``ours`` enriches the day in the database at URL (kept by ``benchmarks/sensors.py --keep``,
which prints it) with one engine, PostgreSQL in and out; ``duckdb`` runs the DuckDB query of
benchmarks/sensors.py (2 threads) over the day's Parquet file (printed by the same run), a
table out. Each prints its rows. Timed from outside, as whole processes, interleaved:

    <A/B whole-process timer> --vs 'python benchmarks/sensors_one.py duckdb P' \\
        -- python benchmarks/sensors_one.py ours URL
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime

# The enrichment in DuckDB's SQL, shared by every DuckDB contender (the day from Parquet here,
# the whole day from CSV in sensors_whole.py, DuckDB with PostgreSQL in and out in
# duckdb_pg.py): one window definition per frame over (uniqueid, t), lag for the previous
# speed, RANGE frames in seconds.
WINDOWS = """lag(currentspeed) OVER (PARTITION BY uniqueid ORDER BY t) AS previousspeed,
               avg(currentspeed) OVER (PARTITION BY uniqueid ORDER BY t
                                       RANGE BETWEEN 120 PRECEDING AND CURRENT ROW)
                   AS avgspeed2minutes,
               avg(currentspeed) OVER (PARTITION BY uniqueid ORDER BY t
                                       RANGE BETWEEN 600 PRECEDING AND CURRENT ROW)
                   AS avgspeed10minutes"""
SPEED_DIFF = """CASE WHEN currentspeed - previousspeed >= 20 THEN 1
            WHEN currentspeed - previousspeed <= -20 THEN -1 ELSE 0 END"""
JAM = """CASE WHEN avgspeed2minutes <= 40 THEN 1 WHEN avgspeed2minutes <= 250 THEN 0
            ELSE -1 END"""

# The fastest DuckDB query we found, materialized as a table.
DUCKDB_DAY = f"""
CREATE OR REPLACE TABLE enriched AS
SELECT uniqueid, t, currentspeed, previousspeed, avgspeed2minutes, avgspeed10minutes,
       {SPEED_DIFF} AS speeddiffindicator,
       {JAM} AS trafficjamindicator
  FROM (SELECT uniqueid, t, currentspeed,
               {WINDOWS}
          FROM read_parquet($path)) w
 WHERE t >= $lo
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("who", choices=["ours", "duckdb"])
    parser.add_argument("source", help="database URL (ours) or Parquet file (duckdb)")
    parser.add_argument("--engine", default="c", choices=["c", "sql"])
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 1, 2))
    args = parser.parse_args()
    if args.who == "ours":
        # imported here (a comment, not a habit): each contender pays only its own imports
        from renderer.db import connect
        from renderer.sensors.enrich import enrich_day

        with connect(args.source) as conn:
            rows = enrich_day(conn, args.day, args.engine)
            conn.commit()
    else:
        import duckdb

        con = duckdb.connect()
        con.execute("SET threads = 2")
        lo = int(datetime.combine(args.day, datetime.min.time(), UTC).timestamp())
        con.execute(DUCKDB_DAY, {"path": args.source, "lo": lo})
        rows = con.execute("SELECT count(*) FROM enriched").fetchone()[0]  # type: ignore[index]
    print(f"{args.who}: {rows} rows")


if __name__ == "__main__":
    main()
