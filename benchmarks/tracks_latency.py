"""Latency of the issue's four query shapes through ``renderer.tracks.query.run``, on a kept
database (``benchmarks/tracks_scale.py --keep``), as a client gets them:

- cold: a new connection for each query (as the CLI: connect, then the first statements of a
  backend load the catalog entries of every day partition they plan);
- warm: one connection kept for all (as ``renderer serve``'s pool).

Each shape ``--runs`` random instances (the same for both, from ``--seed``), cold then warm
for each; p50/p95 of the first row and the whole answer, ms, and CPU seconds of this process
(the client) and of the server (the cluster's processes, when it serves nothing else).
For an A/B of two commits, run it from each checkout on the same database, in turn.

    .venv/bin/python benchmarks/tracks_latency.py --url URL --runs 20
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from scratch import cluster_seconds, postmaster_of
from tracks import percentile, shapes
from tracks_scale import START, first_positions

from renderer.db import connect
from renderer.tracks.query import Query, run


def timed(conn: object, q: Query) -> tuple[float, float, int]:
    """(first row ms, whole ms, rows) of ``q`` on ``conn``, its transaction ended."""
    started = time.perf_counter()
    first, rows = None, 0
    for _ in run(conn, q).rows:  # type: ignore[arg-type]
        if first is None:
            first = time.perf_counter() - started
        rows += 1
    conn.rollback()  # type: ignore[attr-defined]
    total = time.perf_counter() - started
    return (first if first is not None else total) * 1000, total * 1000, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with connect(args.url) as conn:
        days = conn.execute("SELECT count(*) AS n FROM renderer.tracks_days()").fetchone()
    made = shapes(first_positions(args.url), START, min(args.days, days["n"]),
                  random.Random(args.seed))
    postmaster = postmaster_of(args.url)
    print(f"{'shape':28} {'mode':5} {'rows p50':>8} {'first p50':>9} {'first p95':>9} "
          f"{'whole p50':>9} {'whole p95':>9} {'client s':>8} {'server s':>8}")
    warm = connect(args.url)
    for name, make in made.items():
        qs = [make() for _ in range(args.runs)]
        timed(warm, qs[0])  # the pool's connection has served this shape before
        got: dict[str, list[tuple[float, float, int]]] = {"cold": [], "warm": []}
        cpu = {k: [0.0, 0.0] for k in got}
        for q in qs:
            for mode in got:
                s0 = cluster_seconds(postmaster)
                c0 = time.process_time()
                if mode == "cold":
                    with connect(args.url) as conn:
                        got[mode].append(timed(conn, q))
                else:
                    got[mode].append(timed(warm, q))
                cpu[mode][0] += time.process_time() - c0
                time.sleep(0.05)  # a closed backend's exit reaped before the cluster is read
                cpu[mode][1] += cluster_seconds(postmaster) - s0
        for mode, m in got.items():
            first, total = [x[0] for x in m], [x[1] for x in m]
            print(f"{name:28} {mode:5} {statistics.median(x[2] for x in m):8.0f} "
                  f"{statistics.median(first):9.1f} {percentile(first, 95):9.1f} "
                  f"{statistics.median(total):9.1f} {percentile(total, 95):9.1f} "
                  f"{cpu[mode][0]:8.2f} {cpu[mode][1]:8.2f}", flush=True)
    warm.close()


if __name__ == "__main__":
    main()
