"""The queue at census scale (issue 17, item 4): a measurement, not a test.

An embedded cluster of its own (``--home``, default /tmp/scale-bench; deleted at the end
unless ``--keep``), then for each history size of ``--history`` (default 0,10M,45M rows):

1. history: done items of the benchmark's kind added set-based (one INSERT .. SELECT
   generate_series per 2.5M rows, the queue's triggers firing as for any insert), in sets of
   ``--per-set`` items (a year of runs), each set with its queue_sets row and a run's
   timing rows; then VACUUM ANALYZE (what autovacuum does after a bulk insert), timed;
2. enqueue: ``--slice`` new items by :func:`renderer.queue.enqueue_keys` (binary COPY
   straight into work_queue; benchmarks/queue_enqueue.py has its variants), timed; and
   ``--slice // 10`` by :func:`renderer.queue.enqueue_many` for the ratio;
3. claim latency with the slice pending: ``--claims`` one-item claims (``queue_claim``)
   and 20 worker-sized ones (``queue_claim_next``, 500 items), each completed;
4. drain: the pool (``run_pool``, ``--processes`` no-op workers, batch 500) until the slice
   is done; items/s from the pool's start and in steady state (from its first completion);
5. the read side at that size: ``queue status`` (:func:`renderer.queue.status`), ``GET
   /sets``, ``/api/sets``, ``/sets/<a history set>``, ``/`` and ``/metrics`` through the real
   application (Starlette's test client, no network), median of 10 after one warm-up;
6. sizes of the table and each index, dead tuples, autovacuum runs seen in the server log.

At the end ``renderer.queue.prune`` removes the history older than 30 days and is timed.

    .venv/bin/python benchmarks/queue_scale.py [--history 0,10000000,45000000]
        [--slice 1000000] [--processes 4] [--per-set 4500] [--keep]

The last line is ``enqueue_per_s=.. drain_per_s=.. claim_ratio_45M=.. pages_max_ms=..``.

``--fast`` (the read side only, minutes not hours): ``--sets`` kept sets (default 10,000)
of ``--per-set`` done items each (``--fast`` default 300: 3M rows), about one in a thousand
failed, 12 timing rows a set, three open sets with pending items and a day of throughput
rows, all built set-based; then, alternating in the same database, what main's read side
runs (``queue_status_v2`` summing every set; the timings summed over every set) against
this branch's (``queue_status_v3`` and the per-kind rows), wall and backend CPU per call;
then every status view through the application (median of 10). ``--measure`` times the
views of a kept ``--fast`` cluster with the checkout the script is run from (e.g. main's).
``queue status`` is timed as the command reads it (the open sets, then the newest, 20 in
all) and, apart, as ``--all-sets`` reads it (every set: O(sets), not a page); ``--explain``
prints EXPLAIN (ANALYZE, BUFFERS) of both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402
from queue_cost import cluster_cpu  # noqa: E402
from queue_scale_reads import (  # noqa: E402
    HISTORY_SETS_SQL,
    HISTORY_TIMINGS_SQL,
    cpu_of,
    fast,
    page_costs,
    status_ms,
)

from renderer import queue, schema  # noqa: E402
from renderer.localdb import Cluster  # noqa: E402

KIND = "bench_noop"  # queue_throughput's no-op kind (its module registers it in workers)
STEP = 2_500_000  # history rows per INSERT statement

HISTORY_SQL = """
INSERT INTO work_queue (kind, key, state, set_id, attempt, payload, enqueued_at, run_after,
                        started_at, finished_at)
SELECT %(kind)s, 'h' || i, 'done', 'hist-' || lpad((i / %(per_set)s)::text, 6, '0'), 1,
       '{}', t, t, t + interval '1 second', t + interval '2 seconds'
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i,
     LATERAL (SELECT now() - interval '365 days'
                     + (i::float8 / %(total)s) * interval '364 days' AS t) x
"""


def sizes(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c"
        " WHERE c.relname = 'work_queue' OR c.oid IN"
        " (SELECT indexrelid FROM pg_index WHERE indrelid = 'work_queue'::regclass)"
        " ORDER BY 1").fetchall()
    out = {r[0]: int(r[1]) for r in rows}
    out["total"] = int(conn.execute(
        "SELECT pg_total_relation_size('work_queue')").fetchone()[0])
    out["database"] = int(conn.execute(
        "SELECT pg_database_size(current_database())").fetchone()[0])
    return out


def table_stats(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    return conn.execute(
        "SELECT n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count, last_autovacuum"
        " FROM pg_stat_user_tables WHERE relname = 'work_queue'").fetchone()


def autovacuum_lines(logfile: Path, seen: int) -> tuple[list[str], int]:
    """Autovacuum reports of work_queue (first line, pages, tuples, timing) written to the
    server log since byte ``seen``."""
    try:
        text = logfile.read_bytes()
    except OSError:
        return [], seen
    out: list[str] = []
    inside = False
    for line in text[seen:].decode(errors="replace").splitlines():
        if "automatic vacuum of table" in line:
            inside = "work_queue" in line
            if inside:
                out.append(line.split("LOG:", 1)[-1].strip())
        elif inside and line[:1].isspace() and any(
                w in line for w in ("pages:", "tuples:", "system usage", "index scans")):
            out.append("  " + line.strip())
        elif not line[:1].isspace():
            inside = False
    return out, len(text)


def grow_history(url: str, have: int, want: int, per_set: int, total: int) -> float:
    """Done rows [have, want) of the benchmark's kind; returns rows/s."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for lo in range(have, want, STEP):
            hi = min(lo + STEP, want)
            params = {"kind": KIND, "lo": lo, "hi": hi, "per_set": per_set, "total": total}
            with conn.transaction():
                conn.execute(HISTORY_SETS_SQL, params)
                conn.execute(HISTORY_SQL, params)
            print(f"  history {hi:,} rows ({(hi - have) / (time.perf_counter() - started):,.0f}"
                  " rows/s)", flush=True)
        conn.execute(HISTORY_TIMINGS_SQL, {"kind": KIND})
        conn.execute("SELECT renderer.queue_rollup()")
    return (want - have) / (time.perf_counter() - started)


def claim_latency(url: str, claims: int) -> tuple[float, float, float]:
    """Median and p95 of one-item claims (ms), and the median of 500-item claims (ms)."""
    one: list[float] = []
    batch: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(claims + 20):
            limit = 1 if i < claims else 500
            t = time.perf_counter()
            if limit == 1:
                rows = conn.execute("SELECT id, lease_token FROM renderer.queue_claim("
                                    "%s, 1, 'latency', 60)", [KIND]).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id, lease_token FROM renderer.queue_claim_next("
                    "ARRAY[%s], ARRAY[500], ARRAY[60.0::float8], 'latency')", [KIND]).fetchall()
            (one if limit == 1 else batch).append((time.perf_counter() - t) * 1000)
            if rows:
                conn.execute("SELECT renderer.queue_complete_v2(%s::bigint[], %s)",
                             [[r[0] for r in rows], rows[0][1]])
    return (statistics.median(one), statistics.quantiles(one, n=20)[-1],
            statistics.median(batch))


def drain(url: str, processes: int,
          postmaster: int) -> tuple[int, float, float, float]:
    """Run the pool until nothing is pending; (items, per s from start, per s steady,
    server CPU us per item: every process of the cluster, as benchmarks/queue_cost.py)."""
    samples: list[tuple[float, int]] = []
    seen: dict[int, float] = {}  # pid -> CPU seconds at its last sample (backends exit early)

    def progress(done: int, remaining: int | None) -> None:
        samples.append((time.perf_counter(), done))
        seen.update(cluster_cpu(postmaster))

    before = cluster_cpu(postmaster)
    started = time.perf_counter()
    stats = queue_pool(url, processes, progress)
    ended = time.perf_counter()
    seen.update(cluster_cpu(postmaster))
    server = sum(c - before.get(p, 0.0) for p, c in seen.items())
    first = next(((t, d) for t, d in samples if d > 0), (started, 0))
    steady = (stats - first[1]) / max(ended - first[0], 1e-9)
    return stats, stats / (ended - started), steady, server / max(stats, 1) * 1e6


def queue_pool(url: str, processes: int, progress: Any) -> int:
    from renderer.pool import run_pool  # imported here: it pulls in the worker machinery

    return run_pool(url, processes=processes, kinds=[KIND], until_empty=True,
                    progress=progress, poll_seconds=1.0, notify=True).done


def prune(url: str, days: int = 30) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        pruned = queue.prune(conn, timedelta(days=days))
        prune_s = time.perf_counter() - t
    print(f"prune older than {days} days: {pruned:,} items in {prune_s:.1f} s "
          f"({pruned / max(prune_s, 1e-9):,.0f}/s)", flush=True)


def claims_ab(url: str, empty_url: str, rounds: int = 5, per_round: int = 200,
              pending: int = 100_000) -> dict[str, tuple[float, float]]:
    """One-item claims alternating between a database with history and an empty one, each
    with ``pending`` items waiting: (median wall ms, median backend CPU us) per claim."""
    out: dict[str, tuple[list[float], list[float]]] = {"history": ([], []), "empty": ([], [])}
    conns = {}
    for name, u in (("history", url), ("empty", empty_url)):
        conn = psycopg.connect(u, autocommit=True)
        with conn.transaction():
            queue.enqueue_keys(conn, KIND, (f"ab-{i}" for i in range(pending)), set_id="ab")
        conn.execute("VACUUM ANALYZE work_queue")
        conns[name] = conn
    try:
        for _ in range(rounds):
            for name, conn in conns.items():
                pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                cpu = cpu_of({pid})
                for _ in range(per_round):
                    t = time.perf_counter()
                    rows = conn.execute("SELECT id, lease_token FROM renderer.queue_claim("
                                        "%s, 1, 'ab', 60)", [KIND]).fetchall()
                    out[name][0].append((time.perf_counter() - t) * 1000)
                    conn.execute("SELECT renderer.queue_complete_v2(%s::bigint[], %s)",
                                 [[r[0] for r in rows], rows[0][1]])
                # the backend's CPU for claim and completion together, per item
                out[name][1].append((cpu_of({pid}) - cpu) / per_round * 1e6)
        for conn in conns.values():
            conn.execute("DELETE FROM work_queue WHERE set_id = 'ab'")
    finally:
        for conn in conns.values():
            conn.close()
    return {k: (statistics.median(w), statistics.median(c)) for k, (w, c) in out.items()}


def after_run(server_url: str, cluster: Cluster, budget: float) -> None:
    """On the cluster a --keep run left: migrate (this checkout's read side), time the pages,
    claims against an empty database in alternation, prune, the pages again."""
    import queue_throughput as qt

    url = server_url.replace("/renderer?", "/bench_scale?")
    schema.upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM work_queue").fetchone()[0]
        sets = conn.execute("SELECT count(*) FROM queue_sets").fetchone()[0]
        conn.execute("VACUUM ANALYZE queue_sets, queue_timings, queue_counts")
        newest = conn.execute("SELECT max(id) FROM queue_sets WHERE id LIKE 'hist-%'"
                              ).fetchone()[0]
    print(f"{rows:,} rows, {sets:,} sets; load average {os.getloadavg()[0]:.1f}", flush=True)
    for name, ms in page_costs(url, newest).items():
        print(f"  {name:24} {ms:7.1f} ms", flush=True)
    empty = qt._database(server_url, "bench_empty")
    schema.upgrade(empty)
    ab = claims_ab(url, empty)
    print("claim + complete of one item, alternating rounds (median wall ms, median backend"
          " CPU us):", flush=True)
    for name, (ms, us) in ab.items():
        print(f"  {name:8} {ms:6.2f} ms {us:7.0f} us", flush=True)
    print(f"claim_cpu_ratio={ab['history'][1] / ab['empty'][1]:.2f} "
          f"claim_wall_ratio={ab['history'][0] / ab['empty'][0]:.2f}", flush=True)
    # Half a month at a time, as a regular prune would: one DELETE of 40M rows would spill its
    # transition table (the counter trigger's) to ~6 GB of temporary files (~0.3 GB each).
    started = time.perf_counter()
    for days in [*range(350, 30, -15), 30]:
        prune(url, days)
        if time.perf_counter() - started > budget:
            print(f"prune stopped at {days} days: over its {budget:.0f} s budget", flush=True)
            break
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM work_queue").fetchone()[0]
        sets = conn.execute("SELECT count(*) FROM queue_sets").fetchone()[0]
        timing_rows = conn.execute("SELECT count(*) FROM queue_timings").fetchone()[0]
    print(f"after prune: {rows:,} rows, {sets:,} sets, {timing_rows:,} timing rows", flush=True)
    for name, ms in page_costs(url, newest).items():
        print(f"  {name:24} {ms:7.1f} ms", flush=True)



def mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", default="0,10000000,45000000")
    parser.add_argument("--slice", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--per-set", type=int, default=None,
                        help="items a set (default 4,500; with --fast 300)")
    parser.add_argument("--fast", action="store_true",
                        help="the read side only: --sets kept sets, main's reads against"
                             " this branch's, and every status view")
    parser.add_argument("--sets", type=int, default=10_000, help="kept sets with --fast")
    parser.add_argument("--explain", action="store_true",
                        help="with --fast: EXPLAIN (ANALYZE, BUFFERS) of queue status's read")
    parser.add_argument("--measure", action="store_true",
                        help="with --fast, on a kept cluster: the status views only")
    parser.add_argument("--ab", action="store_true",
                        help="with --measure: main's reads against this branch's too")
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--home", default="/tmp/scale-bench")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--prune-budget", type=float, default=600,
                        help="seconds --pages-only may spend pruning, half a month at a time")
    parser.add_argument("--pages-only", action="store_true",
                        help="on the cluster a --keep run left: migrate, time the pages, claims"
                             " against an empty database, prune, the pages again")
    args = parser.parse_args()
    levels = [int(x) for x in args.history.split(",")]

    home = Path(args.home)
    os.environ.update({"RENDERER_HOME": str(home / "home"),
                       "RENDERER_PLUGINS": "queue_throughput", "BENCH_BATCH": "500"})
    cluster = Cluster(home / "cluster", extra_settings={
        "log_autovacuum_min_duration": "0", "max_wal_size": "2GB", "log_min_messages": "log",
        "log_checkpoints": "off"})
    server_url = cluster.ensure_started()
    if args.pages_only or args.fast:
        try:
            if args.fast:
                fast(args, server_url)
            else:
                after_run(server_url, cluster, args.prune_budget)
        finally:
            cluster.stop()
            if args.fast and not args.keep:
                shutil.rmtree(home, ignore_errors=True)
        return
    print(f"load average at start {os.getloadavg()[0]:.1f}, "
          f"{shutil.disk_usage(home).free / 2**30:.0f} GB free", flush=True)
    results: list[dict[str, Any]] = []
    try:
        import queue_throughput as qt

        url = qt._database(server_url, "bench_scale")
        schema.upgrade(url)
        have = 0
        log_seen = 0
        total = max(levels)
        for level in levels:
            print(f"== history {level:,}", flush=True)
            r: dict[str, Any] = {"history": level}
            if level > have:
                r["history_rows_per_s"] = grow_history(url, have, level,
                                                       args.per_set or 4_500, total)
                have = level
                with psycopg.connect(url, autocommit=True) as conn:
                    t = time.perf_counter()
                    conn.execute("VACUUM ANALYZE work_queue")
                    r["vacuum_s"] = time.perf_counter() - t
                print(f"  vacuum analyze {r['vacuum_s']:.1f} s", flush=True)
            with psycopg.connect(url) as conn:
                backend = {conn.execute("SELECT pg_backend_pid()").fetchone()[0]}
                t, cpu = time.perf_counter(), cpu_of(backend)
                n = queue.enqueue_keys(conn, KIND, (f"s{level}-{i}" for i in
                                                    range(args.slice)), set_id=f"slice-{level}")
                conn.commit()
                r["enqueue_bulk_per_s"] = n / (time.perf_counter() - t)
                r["enqueue_cpu_us"] = (cpu_of(backend) - cpu) / n * 1e6
                small = args.slice // 10
                t = time.perf_counter()
                m = queue.enqueue_many(conn, (queue.NewItem(KIND, f"m{level}-{i}",
                                                            set_id=f"slice-{level}")
                                              for i in range(small)))
                conn.commit()
                r["enqueue_many_per_s"] = m / (time.perf_counter() - t)
            print(f"  enqueue bulk {r['enqueue_bulk_per_s']:,.0f}/s "
                  f"({r['enqueue_cpu_us']:.1f} us backend CPU an item), enqueue_many "
                  f"{r['enqueue_many_per_s']:,.0f}/s", flush=True)
            r["claim_ms"], r["claim_p95_ms"], r["claim500_ms"] = claim_latency(url, args.claims)
            print(f"  claim 1: {r['claim_ms']:.2f} ms (p95 {r['claim_p95_ms']:.2f}), "
                  f"claim 500: {r['claim500_ms']:.1f} ms", flush=True)
            with psycopg.connect(url, autocommit=True) as conn:
                before = table_stats(conn)
            postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
            (r["drained"], r["drain_per_s"], r["drain_steady_per_s"],
             r["drain_cpu_us"]) = drain(url, args.processes, postmaster)
            print(f"  drain {r['drained']:,} items: {r['drain_per_s']:,.0f}/s "
                  f"(steady {r['drain_steady_per_s']:,.0f}/s), server CPU "
                  f"{r['drain_cpu_us']:.0f} us an item, load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT renderer.queue_maintain_v2()")
                after = table_stats(conn)
                r["sizes"] = sizes(conn)
            r["dead_after_drain"] = after[1]
            r["autovacuums_during"] = after[2] - before[2]
            lines, log_seen = autovacuum_lines(cluster.logfile, log_seen)
            r["autovacuum_log"] = lines
            r["pages_ms"] = page_costs(url, "hist-000000" if level else f"slice-{level}")
            for k, v in r["pages_ms"].items():
                print(f"  {k:24} {v:7.1f} ms", flush=True)
            with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
                print(f"  {'queue status --all-sets':24} {status_ms(conn, True):7.1f} ms",
                      flush=True)
            print(f"  work_queue {mb(r['sizes']['work_queue'])}, total {mb(r['sizes']['total'])}"
                  f", dead tuples {r['dead_after_drain']:,}, autovacuums during the drain "
                  f"{r['autovacuums_during']}", flush=True)
            for line in lines:
                print(f"    {line.strip()[:160]}", flush=True)
            results.append(r)
        report(results)
        if not args.keep:  # a kept cluster keeps its history for --pages-only
            prune(url)
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def report(results: list[dict[str, Any]]) -> None:
    print()
    print("| history rows | enqueue bulk /s (server us/item) | enqueue_many /s | "
          "claim 1 ms (p95) | claim 500 ms | drain /s (steady) | drain server us/item | "
          "work_queue | indexes | dead after |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        s = r["sizes"]
        print(f"| {r['history']:,} | {r['enqueue_bulk_per_s']:,.0f} ({r['enqueue_cpu_us']:.1f}) | "
              f"{r['enqueue_many_per_s']:,.0f} | {r['claim_ms']:.2f} ({r['claim_p95_ms']:.2f}) | "
              f"{r['claim500_ms']:.1f} | {r['drain_per_s']:,.0f} ({r['drain_steady_per_s']:,.0f})"
              f" | {r['drain_cpu_us']:.0f} | {mb(s['work_queue'])} | "
              f"{mb(s['total'] - s['work_queue'])} | "
              f"{r['dead_after_drain']:,} |")
    print()
    paths = list(results[0]["pages_ms"])
    print("| history rows | " + " | ".join(paths) + " |")
    print("| ---: |" + " ---: |" * len(paths))
    for r in results:
        print(f"| {r['history']:,} | " + " | ".join(f"{r['pages_ms'][p]:.1f}" for p in paths)
              + " |")
    print()
    for name in sorted(results[-1]["sizes"]):
        print(f"  {name:28} {mb(results[-1]['sizes'][name])}")
    base = results[0]["claim_ms"]
    last = results[-1]
    pages_max = max(max(r["pages_ms"].values()) for r in results)
    print(f"enqueue_per_s={min(r['enqueue_bulk_per_s'] for r in results):.0f} "
          f"drain_per_s={min(r['drain_steady_per_s'] for r in results):.0f} "
          f"claim_ratio_{last['history'] / 1e6:g}M={last['claim_ms'] / base:.2f} "
          f"pages_max_ms={pages_max:.0f}")


if __name__ == "__main__":
    main()
