"""Benchmark of issue 13 item 6: the day enrichment before and after fractional speeds.

The same raw rows (``--detectors`` x 1,440 minutes x 2 days, the generator of
``benchmarks/sensors.py``) in two scratch databases of one private embedded cluster: one
migrated to 0011 (``currentspeed`` smallint km/h, enriched speeds smallint) and one at head
(``currentspeed_hundredths`` int4, enriched speeds double precision; speeds in quarters of
km/h). ``renderer.sensors_enrich_day`` of the second day runs ``--repeat`` times in each,
alternating, and the CPU seconds of its backend are read from /proc (the server runs on this
machine). The last line is ``before=<median CPU s> after=<median CPU s>
per_row_ratio=<after/before> size_ratio=<after/before bytes of the day's partition>``.

    .venv/bin/python benchmarks/sensors_speeds.py [--detectors 200 --repeat 6]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import psycopg
from scratch import drop_database, with_database

from renderer import schema
from renderer.localdb import Cluster

DAYS = ("2026-01-01", "2026-01-02")
VERSIONS = {"before": ("renderer_bench_speeds_0011", "0011", "currentspeed", ""),
            "after": ("renderer_bench_speeds_head", "head", "currentspeed_hundredths",
                      " * 100 + h %% 4 * 25")}


def build(server: str, name: str, revision: str, scale: str, detectors: int) -> str:
    drop_database(server, name)
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    schema.upgrade(url, revision)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT renderer.sensors_raw_partition(d::date) FROM unnest(%s::text[]) d",
                     [list(DAYS)])
        for i, day in enumerate(DAYS):
            conn.execute(f"""
                INSERT INTO sensors_raw
                SELECT u, %(day)s::timestamp AT TIME ZONE 'UTC' + m * interval '1 minute',
                       CASE WHEN h %% 20 = 0 THEN NULL
                            WHEN h %% 97 < 9 THEN (5 + h %% 36){scale}
                            ELSE (45 + h %% 80){scale} END,
                       (h %% 1000) / 10.0, h %% 30, h %% 7, h %% 3, h %% 2, h %% 2, 0
                FROM generate_series(0, 1439) m, generate_series(1, %(n)s) u,
                     LATERAL (SELECT abs(hashint4(u * 7919 + m + %(seed)s)) AS h) x
                ORDER BY u, m""", {"day": day, "n": detectors, "seed": i * 1440})
        conn.execute("INSERT INTO sensors_days (day) SELECT d::date FROM unnest(%s::text[]) d",
                     [list(DAYS)])
        conn.execute("VACUUM ANALYZE sensors_raw")
        conn.execute("CHECKPOINT")
    return url


def enrich_cpu(url: str) -> float:
    """CPU seconds of the backend that enriches the second day."""
    with psycopg.connect(url) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

        def cpu() -> float:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, ticks

        before = cpu()
        conn.execute("SELECT renderer.sensors_enrich_day(%s)", [DAYS[1]])
        conn.commit()
        return cpu() - before


def day_bytes(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT pg_relation_size(%s)",
                                ["sensors_enriched_" + DAYS[1].replace("-", "")]).fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=6)
    args = parser.parse_args()
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="renderer-bench-speeds-")))
    server = cluster.ensure_started()
    try:
        urls = {v: build(server, name, rev, scale, args.detectors)
                for v, (name, rev, _, scale) in VERSIONS.items()}
        runs: dict[str, list[float]] = {"before": [], "after": []}
        for i in range(args.repeat):
            for v in ("before", "after") if i % 2 == 0 else ("after", "before"):
                runs[v].append(enrich_cpu(urls[v]))
        for v, values in runs.items():
            print(f"{v}: " + " ".join(f"{x:.2f}" for x in values) + " CPU s", flush=True)
        before, after = statistics.median(runs["before"]), statistics.median(runs["after"])
        size = day_bytes(urls["after"]) / day_bytes(urls["before"])
        print(f"before={before:.2f} after={after:.2f} per_row_ratio={after / before:.3f}"
              f" size_ratio={size:.3f}")
    finally:
        for name, *_ in VERSIONS.values():
            drop_database(server, name)
        cluster.stop()
        shutil.rmtree(cluster.home, ignore_errors=True)


if __name__ == "__main__":
    main()
