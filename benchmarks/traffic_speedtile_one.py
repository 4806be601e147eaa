"""One speed-tile week as one process, for whole-process A/B timings against DuckDB.

    .venv/bin/python benchmarks/traffic_speedtile_one.py ours URL [--engine c|sql]
    .venv/bin/python benchmarks/traffic_speedtile_one.py duckdb FOLDER

``ours`` builds the tile-week of benchmarks/traffic_speedtile.py in the database at URL (kept by
its ``--keep``, which prints URL and FOLDER), PostgreSQL in and out, and rolls back (so every
run does the same work); ``duckdb`` runs that benchmark's DuckDB query (2 threads) over the
Parquet files in FOLDER, a table out. Timed from outside, as whole processes, interleaved.
"""

from __future__ import annotations

import argparse
import os

# The fastest DuckDB query we found: sums per (segment, hour, next) in one hash GROUP BY, the
# hour's figures in a second GROUP BY over those (not a window: DuckDB's windows sort), the
# per-next values from a join back; per segment ONE ordered list of structs per group (one
# sort per group, not one per column: 13 list(... ORDER BY) were slower), split into the
# columns by list_transform. Rounding half away from zero (DuckDB's round on doubles), as ours
# (st_round in ext/speedtile.c), and the speed in OpenTraffic's order (length / min_d * 3.6).
DUCKDB_QUERY = """
CREATE OR REPLACE TABLE speeds AS
WITH h AS (
  SELECT segment_id, next_segment_id, hour, count::DOUBLE AS c, queue_code::DOUBLE AS q,
         (CASE WHEN duration_code < 64 THEN duration_code
               WHEN duration_code < 128 THEN 64 + (duration_code - 64) * 2
               WHEN duration_code < 192 THEN 192 + (duration_code - 128) * 5
               ELSE 512 + (duration_code - 192) * 10 END)::DOUBLE AS d
    FROM read_parquet($hist)
), bins AS (
  SELECT segment_id, hour, next_segment_id, sum(c) AS n, sum(c * d) AS sd,
         sum(c * d * d) AS sdd, sum(c * q) AS sq, sum(c * q * q) AS sqq
    FROM h GROUP BY ALL
), hours AS (
  SELECT segment_id, hour, min(sd / n) AS min_d, sum(n) AS total,
         sum(n) FILTER (WHERE sd > 0) AS n_pos, sum(n * n / sd) FILTER (WHERE sd > 0) AS inv,
         count(*) FILTER (WHERE sd > 0) AS nv, sum(n / sd) FILTER (WHERE sd > 0) AS sv,
         sum(n * n / sd / sd) FILTER (WHERE sd > 0) AS svv
    FROM bins GROUP BY ALL
), hl AS (
  SELECT hours.*, l.length::DOUBLE AS length, (hour - $first)::SMALLINT AS how,
         total >= $min_count AS published,
         (((((segment_id % 2147483647) * 48271 + (hour - $first)) % 2147483647) * 48271
           + $first) % 2147483647) * 48271 % 2147483647 % 100 AS r
    FROM hours LEFT JOIN read_parquet($lens) l USING (segment_id)
), hv AS (
  SELECT *, CASE WHEN published AND length IS NOT NULL AND min_d > 0
                      AND round(length / min_d * 3.6, 0) <= $max_speed
                 THEN round(length / min_d * 3.6, 0) ELSE 0 END AS speed
    FROM hl
), per_hour AS (
  SELECT segment_id, min(length)::INTEGER AS length,
         list({'how': how, 'total': total::BIGINT, 'speed': speed::SMALLINT,
               'mean': (CASE WHEN published AND length IS NOT NULL AND n_pos > 0
                              AND round(3.6 * length * inv / n_pos, 0) <= $max_speed
                             THEN round(3.6 * length * inv / n_pos, 0)
                             ELSE 0 END)::SMALLINT,
               'var': (CASE WHEN speed > 0
                            THEN round((3.6 * length) * (3.6 * length)
                                            * greatest(svv / nv - (sv / nv) * (sv / nv), 0), 0)
                            ELSE 0 END)::INTEGER,
               'prev': (CASE WHEN NOT published OR total <= 0 THEN 0
                             WHEN total > 90 THEN 10
                             ELSE greatest(1, 1 + (total > 2)::INT + (total > 6)::INT
                                           + (total > 12)::INT + (total > 20)::INT
                                           + (total > 30)::INT + (total > 42)::INT
                                           + (total > 56)::INT + (total > 72)::INT
                                           + CASE WHEN r < 15 THEN -1 WHEN r >= 85 THEN 1
                                                  ELSE 0 END)
                        END)::SMALLINT} ORDER BY how) AS h
    FROM hv GROUP BY segment_id
), per_next AS (
  SELECT b.segment_id,
         list({'how': hv.how, 'id': b.next_segment_id, 'n': b.n::BIGINT,
               'delay': round(b.sd / b.n - hv.min_d, 0)::INTEGER,
               'dvar': round(greatest(b.sdd / b.n - (b.sd / b.n) * (b.sd / b.n), 0),
                                  0)::BIGINT,
               'ql': coalesce(round(b.sq / b.n * hv.length / 255, 0), 0)::INTEGER,
               'qv': coalesce(round(greatest(b.sqq / b.n - (b.sq / b.n) * (b.sq / b.n), 0)
                                         * (hv.length / 255) * (hv.length / 255), 0),
                              0)::BIGINT}
              ORDER BY b.hour, b.next_segment_id NULLS LAST) AS x
    FROM bins b JOIN hv USING (segment_id, hour)
   WHERE hv.published
   GROUP BY b.segment_id
)
SELECT segment_id, length,
       list_transform(h, lambda e: e.how) AS hours,
       list_transform(h, lambda e: e.total) AS observations,
       list_transform(h, lambda e: e.speed) AS speeds,
       list_transform(h, lambda e: e.mean) AS mean_speeds,
       list_transform(h, lambda e: e.var) AS speed_variances,
       list_transform(h, lambda e: e.prev) AS prevalences,
       list_transform(x, lambda e: e.how) AS next_hours,
       list_transform(x, lambda e: e.id) AS next_ids,
       list_transform(x, lambda e: e.n) AS next_counts,
       list_transform(x, lambda e: e.delay) AS delays,
       list_transform(x, lambda e: e.dvar) AS delay_variances,
       list_transform(x, lambda e: e.ql) AS queue_lengths,
       list_transform(x, lambda e: e.qv) AS queue_length_variances
  FROM per_hour LEFT JOIN per_next USING (segment_id)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("who", choices=["ours", "duckdb"])
    parser.add_argument("source", help="database URL (ours) or Parquet folder (duckdb)")
    parser.add_argument("--engine", default="c", choices=["c", "sql"])
    parser.add_argument("--parts", type=int, default=1, help="ours: backends reading at once")
    parser.add_argument("--sort", default="server", choices=["c", "server"], help="ours")
    parser.add_argument("--work-mem", default="", help="ours: each part's sort memory")
    args = parser.parse_args()
    # imported here (not a habit): each contender pays only its own imports
    from renderer.tiles import Tile
    from renderer.traffic import speedtile, weeks

    first_hour, _ = weeks.hour_range_of_week("2016-W44")
    if args.who == "ours":
        from renderer.db import connect

        with connect(args.source) as conn:
            built = speedtile.build(conn, speedtile.TileWeek("AUTO", Tile(0, 3105), "2016-W44"),
                                    engine=args.engine, parts=args.parts,
                                    sort=args.sort, work_mem=args.work_mem)
            conn.rollback()
        print(f"ours: {built.segments} segments")
    else:
        import duckdb

        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute(DUCKDB_QUERY, {"hist": os.path.join(args.source, "histograms.parquet"),
                                   "lens": os.path.join(args.source, "lengths.parquet"),
                                   "first": first_hour, "min_count": 1,
                                   "max_speed": speedtile.MAX_SPEED})
        print(f"duckdb: {con.execute('SELECT count(*) FROM speeds').fetchone()} segments")


if __name__ == "__main__":
    main()
