"""SP-GiST (quad tree) against GiST on a day's positions: build time, size, and the bounding
boxes of the area queries (10-degree boxes around the sample's ports, a whole day and its
first hour), on a copy of one day partition of a database of generated reports (e.g. one
kept by ``benchmarks/tracks_scale.py --keep``). The two indexes are built in turn on the same
copy, GiST first; each box is read ``--repeat`` times with each, the median kept.

    .venv/bin/python benchmarks/tracks_spgist.py --url URL --day 2026-12-10
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg
from psycopg import sql

from renderer.tracks import sample

INDEXES = {"gist": "USING gist (point(lon, lat))",
           "spgist": "USING spgist (point(lon, lat))"}
QUERY = """
SELECT count(*), sum(sog) FROM {table}
WHERE t >= %(lo)s::date::timestamptz AND t < %(lo)s::date::timestamptz + %(span)s::interval
  AND point(lon, lat) <@ box(point(%(x0)s, %(y0)s), point(%(x1)s, %(y1)s))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--day", default="2026-12-10")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    part = sql.Identifier(f"tracks_reports_{args.day.replace('-', '')}")
    table = sql.Identifier("spgist_bench_copy")
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM {} ORDER BY t").format(
            table, part))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
        n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        assert n is not None
        conn.execute("SET enable_seqscan = off")  # the box index, not a scan of the day
        timings: dict[tuple[str, str], list[float]] = {}
        for kind, using in INDEXES.items():
            conn.execute(sql.SQL("DROP INDEX IF EXISTS spgist_bench_pos"))
            started = time.perf_counter()
            conn.execute(sql.SQL("CREATE INDEX spgist_bench_pos ON {} " + using).format(table))
            built = time.perf_counter() - started
            size = conn.execute("SELECT pg_relation_size('spgist_bench_pos')").fetchone()
            assert size is not None
            print(f"{kind}: build {built:.2f} s ({built / n[0] * 1e6:.2f} us a report), "
                  f"{size[0] / n[0]:.1f} bytes a report", flush=True)
            for span in ("1 hour", "1 day"):
                for _name, lat, lon in sample.PORTS:
                    ms = []
                    for _ in range(args.repeat):
                        started = time.perf_counter()
                        conn.execute(sql.SQL(QUERY).format(table=table), {
                            "lo": args.day, "span": span, "x0": lon - 5, "y0": lat - 5,
                            "x1": lon + 5, "y1": lat + 5}).fetchall()
                        ms.append((time.perf_counter() - started) * 1000)
                    timings.setdefault((kind, span), []).append(statistics.median(ms))
        for span in ("1 hour", "1 day"):
            g = timings[("gist", span)]
            s = timings[("spgist", span)]
            print(f"box + {span}, {len(g)} port boxes: GiST p50 {statistics.median(g):.1f} ms, "
                  f"SP-GiST p50 {statistics.median(s):.1f} ms, sum {sum(g):.0f} vs "
                  f"{sum(s):.0f} ms")
        conn.execute(sql.SQL("DROP TABLE {}").format(table))


if __name__ == "__main__":
    main()
