"""Benchmark (b) of issue 4: reporter files -> committed histograms, end to end.

Generates a sample (not timed), then in one run against the same PostgreSQL:

- ours: ``submit`` (list the source, anti-join the ledger, enqueue) and 2 worker processes
  working every ``histogram`` item until the queue is empty (read, gunzip, C binning, one
  transaction per (tile, hour) with ledger, summed upsert, rejects and segment lengths);
  inputs kept (``--after keep``), as archiving is file moving after the commit;
- copy: a plain ``COPY`` of the same CSV rows (decompressed beforehand, header and
  wrong-width lines dropped) into an unindexed table of ten text columns, one stream.

Both are reported as observations per second (the sum of ``count`` over the rows the
histogram stage accepted); the last line is the ratio ours / copy (goal >= 1.0).

    .venv/bin/python benchmarks/traffic_ingest.py [--tiles 4 --days 7 --scale 8]

Uses the configured database server (RENDERER_DATABASE_URL or the embedded cluster) with a
scratch database ``renderer_bench_ingest`` that it drops afterwards.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import psycopg
from scratch import drop_database, scratch_database

from renderer import binning, config
from renderer.db import resolve_url
from renderer.traffic.sample import generate

BENCH_DB = "renderer_bench_ingest"


def csv_bodies(root: Path) -> list[bytes]:
    """Each file's data lines, decompressed, without the header and wrong-width lines."""
    bodies = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        lines = [ln for ln in data.split(b"\n")[1:] if ln.count(b",") == 9]
        bodies.append(b"\n".join(lines) + b"\n")
    return bodies


def run_copy(url: str, bodies: list[bytes]) -> float:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bench_copy (segment_id text, next_segment_id text,"
                     " duration text, count text, length text, queue_length text,"
                     " minimum_timestamp text, maximum_timestamp text, source text,"
                     " vehicle_type text)")
        conn.commit()
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY bench_copy FROM STDIN (FORMAT csv)") as copy:
            for body in bodies:
                copy.write(body)
        conn.commit()
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return elapsed


def run_ours(url: str, source: Path, processes: int) -> tuple[float, int]:
    from renderer.pool import run_pool
    from renderer.traffic.ingest import submit

    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        result = submit(conn, str(source), after="keep")
        conn.commit()
    run_pool(url, processes=processes, kinds=["histogram"], until_empty=True)
    elapsed = time.perf_counter() - start
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(sum(count), 0), count(*) FROM traffic_histograms"
                           ).fetchone()
    assert row is not None
    print(f"ours: {result.files_new} files in {result.prefixes} items, {row[1]} bins written")
    return elapsed, int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=8.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    server = resolve_url(config.load())
    url = scratch_database(server, BENCH_DB)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "reporters"
            stats = generate(source, tiles=args.tiles, days=args.days, seed=1, scale=args.scale)
            print(f"sample: {stats.files} files, {stats.rows} rows, {stats.observations} "
                  f"observations, {args.tiles} tiles x {args.days} days, binning "
                  f"{binning.IMPLEMENTATION}")
            bodies = csv_bodies(source)
            copy_seconds = run_copy(url, bodies)
            ours_seconds, observations = run_ours(url, source, args.processes)
            assert observations == stats.observations, (observations, stats.observations)
    finally:
        drop_database(server, BENCH_DB)
    ours = observations / ours_seconds
    copy = observations / copy_seconds
    print(f"copy: {copy_seconds:.2f} s for {stats.rows} rows")
    print(f"ours: {ours_seconds:.2f} s with {args.processes} worker processes")
    print(f"ours={ours:,.0f} obs/s copy={copy:,.0f} obs/s ratio={ours / copy:.2f}")


if __name__ == "__main__":
    main()
