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

from renderer import config, queue, schema  # noqa: E402
from renderer.localdb import Cluster  # noqa: E402

KIND = "bench_noop"  # queue_throughput's no-op kind (its module registers it in workers)
STEP = 2_500_000  # history rows per INSERT statement
TICK = os.sysconf("SC_CLK_TCK")

HISTORY_SQL = """
INSERT INTO work_queue (kind, key, state, set_id, attempt, payload, enqueued_at, run_after,
                        started_at, finished_at)
SELECT %(kind)s, 'h' || i, 'done', 'hist-' || lpad((i / %(per_set)s)::text, 6, '0'), 1,
       '{}', t, t, t + interval '1 second', t + interval '2 seconds'
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i,
     LATERAL (SELECT now() - interval '365 days'
                     + (i::float8 / %(total)s) * interval '364 days' AS t) x
"""
HISTORY_SETS_SQL = """
INSERT INTO queue_sets (id, created_at, changed_at)
SELECT 'hist-' || lpad(s::text, 6, '0'), t, t
FROM generate_series(%(lo)s::bigint / %(per_set)s, (%(hi)s::bigint - 1) / %(per_set)s) AS s,
     LATERAL (SELECT now() - interval '365 days'
                     + (s::float8 * %(per_set)s / %(total)s) * interval '364 days' AS t) x
ON CONFLICT (id) DO NOTHING
"""
HISTORY_TIMINGS_SQL = """
INSERT INTO queue_timings (kind, set_id, what, bucket, n, sum, max, first_at, last_at)
SELECT %(kind)s, s.id, w.what, b, 100, 100 * 0.001 * 2 ^ b, 0.001 * 2 ^ b, s.created_at,
       s.created_at + interval '1 hour'
FROM queue_sets s, (VALUES ('claim_wait'), ('run')) AS w(what), generate_series(0, 5) AS b
WHERE s.id LIKE 'hist-%%'
ON CONFLICT DO NOTHING
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


def cpu_of(pids: set[int]) -> float:
    """CPU seconds (user + system) of these processes."""
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


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


def status_ms(conn: Any, all_sets: bool) -> float:
    """Median ms of 10 (after a warm-up) of what ``renderer queue status`` reads: the open
    sets then the newest, 20 in all, or with ``all_sets`` every set kept (``--all-sets``,
    which grows with the sets: it is not a page and not under the 100 ms goal)."""
    from renderer.cli.queue import _status  # the command's own read

    times = []
    for _ in range(11):
        t = time.perf_counter()
        _status(conn, 20, all_sets)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times[1:])


def page_costs(url: str, set_id: str, status: bool = True) -> dict[str, float]:
    """Median ms of 10 requests (after a warm-up) per read path, through the application;
    ``queue status`` as the command reads it (before 2026-12-06 this read every set, what
    ``--all-sets`` reads: 177 ms at 2,222 sets under load 13, reported beside it now)."""
    from starlette.testclient import TestClient  # test-only dependency, as web_load's httpx

    from renderer.web.app import create_app

    settings = config.load()
    out: dict[str, float] = {}
    if status:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            out["queue status"] = status_ms(conn, False)
    with TestClient(create_app(settings, url=url)) as client:
        for name in ("/", "/sets", "/api/sets", "/sets/<id>", "/api/sets/<id>", "/metrics"):
            path = name.replace("<id>", set_id)
            times = []
            for _ in range(11):
                t = time.perf_counter()
                response = client.get(path, headers={"accept": "text/html"})
                times.append((time.perf_counter() - t) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
            out[name] = statistics.median(times[1:])
    return out


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



# -- --fast: the read side at 10,000 kept sets ----------------------------------------------

FAST_HISTORY_SQL = """
INSERT INTO work_queue (kind, key, state, set_id, attempt, payload, enqueued_at, run_after,
                        started_at, finished_at, last_error)
SELECT %(kind)s, 'h' || i, CASE WHEN i %% 997 = 0 THEN 'failed' ELSE 'done' END,
       'hist-' || lpad((i / %(per_set)s)::text, 6, '0'), 1, '{}', t, t,
       t + interval '1 second', t + interval '2 seconds',
       CASE WHEN i %% 997 = 0 THEN 'boom' END
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i,
     LATERAL (SELECT now() - interval '365 days'
                     + (i::float8 / %(total)s) * interval '364 days' AS t) x
"""
FAST_RATES_SQL = """
INSERT INTO queue_rates (kind, set_id, minute, done, first_at, last_at)
SELECT %(kind)s, 'day-' || (m / 60), date_trunc('minute', now()) - make_interval(mins => m),
       100, date_trunc('minute', now()) - make_interval(mins => m),
       date_trunc('minute', now()) - make_interval(mins => m) + interval '59 seconds'
FROM generate_series(1, 1439) AS m
"""
# The statements of main's read side (queue_status_v2 and its timings statement, which
# summed every set's rows) and of this branch's, for the alternating A/B.
OLD_TIMINGS_SQL = """
SELECT x.kind, x.what, x.bucket, sum(x.n)::bigint AS n, sum(x.sum)::float8 AS sum,
       max(x.max)::float8 AS max, min(x.first_at) AS first_at, max(x.last_at) AS last_at
FROM (
    SELECT kind, set_id, what, bucket, n, sum, max, first_at, last_at FROM queue_timings
    UNION ALL
    SELECT kind, set_id, what, bucket, n, sum, max, first_at, last_at FROM queue_timing_deltas
) x
WHERE %(set_id)s::text IS NULL OR x.set_id = %(set_id)s
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""


def build_fast(url: str, sets: int, per_set: int) -> None:
    """``sets`` kept sets of ``per_set`` items, set-based; three open sets; a day of rates."""
    total = sets * per_set
    step = 500_000
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for lo in range(0, total, step):
            hi = min(lo + step, total)
            params = {"kind": KIND, "lo": lo, "hi": hi, "per_set": per_set, "total": total}
            with conn.transaction():
                conn.execute(HISTORY_SETS_SQL, params)
                conn.execute(FAST_HISTORY_SQL, params)
            conn.execute("SELECT renderer.queue_rollup()")
        conn.execute(HISTORY_TIMINGS_SQL, {"kind": KIND})
        # what the maintenance pass leaves: the throughput rows of the last day only (the
        # history's items finished months ago), here one run an hour
        conn.execute("DELETE FROM queue_rates")
        conn.execute(FAST_RATES_SQL, {"kind": KIND})
        for i in range(3):
            queue.enqueue_keys(conn, KIND, (f"open{i}-{k}" for k in range(5_000)),
                               set_id=f"open-{i}")
        conn.execute("SELECT renderer.queue_rollup()")
        conn.execute("SELECT renderer.queue_rollup_timings()")
        conn.execute("VACUUM ANALYZE")
        counts = conn.execute("SELECT (SELECT count(*) FROM work_queue),"
                              " (SELECT count(*) FROM queue_sets),"
                              " (SELECT count(*) FROM queue_counts),"
                              " (SELECT count(*) FROM queue_timings),"
                              " (SELECT count(*) FROM queue_rates),"
                              " pg_size_pretty(pg_database_size(current_database()))"
                              ).fetchone()
    print(f"built in {time.perf_counter() - started:.0f} s: {counts[0]:,} items, "
          f"{counts[1]:,} sets, {counts[2]:,} counter rows, {counts[3]:,} timing rows, "
          f"{counts[4]:,} rate rows, {counts[5]}", flush=True)


def _backend_ms(conn: psycopg.Connection[Any], pid: int, call: Any) -> tuple[float, float]:
    """Wall ms and the backend's CPU ms of ``call(conn)``."""
    cpu = cpu_of({pid})
    t = time.perf_counter()
    call(conn)
    return (time.perf_counter() - t) * 1000, (cpu_of({pid}) - cpu) * 1000


def read_side_ab(url: str, rounds: int = 40) -> None:
    """main's read side against this branch's, alternating, in one database."""
    from renderer.queue import shown_sets  # this checkout's (the --fast run's)

    def old_metrics(conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT * FROM renderer.queue_status_v2(300, '{}')").fetchall()
        conn.execute(OLD_TIMINGS_SQL, {"set_id": None}).fetchall()

    def new_metrics(conn: psycopg.Connection[Any]) -> None:
        queue.status(conn, sets=[])
        queue.timings(conn)

    def old_status(conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT * FROM renderer.queue_status_v2(300, NULL)").fetchall()

    def new_status(conn: psycopg.Connection[Any]) -> None:
        sets, _ = shown_sets(conn, 20)
        queue.status(conn, sets=sets)

    pairs = {"metrics reads": (old_metrics, new_metrics),
             "queue status reads": (old_status, new_status)}
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        pid = conn.execute("SELECT pg_backend_pid() AS p").fetchone()["p"]
        for old, new in pairs.values():  # warm-up
            old(conn), new(conn)
        print(f"alternating A/B, {rounds} rounds, load {os.getloadavg()[0]:.1f}: median wall ms"
              " (backend CPU ms a call, the mean: /proc counts in 10 ms ticks)", flush=True)
        for name, (old, new) in pairs.items():
            got: dict[str, list[tuple[float, float]]] = {"main": [], "branch": []}
            for _ in range(rounds):
                got["main"].append(_backend_ms(conn, pid, old))
                got["branch"].append(_backend_ms(conn, pid, new))
            med = {k: (statistics.median(w for w, _ in v), statistics.fmean(c for _, c in v))
                   for k, v in got.items()}
            print(f"  {name:20} main {med['main'][0]:7.1f} ({med['main'][1]:6.1f})   branch "
                  f"{med['branch'][0]:6.1f} ({med['branch'][1]:5.1f})   ratio "
                  f"{med['main'][0] / max(med['branch'][0], 1e-9):5.1f}x wall", flush=True)
        for label, sql in (
                ("main: kinds summed over every set's counters",
                 "SELECT kind, state, sum(n) FROM (SELECT kind, state, n FROM queue_counts"
                 " UNION ALL SELECT kind, state, n FROM queue_count_deltas) x GROUP BY 1, 2"),
                ("main: timings summed over every set", OLD_TIMINGS_SQL),
                ("branch: timings from the per-kind rows", queue_named("timings"))):
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + sql,
                                {"set_id": None} if "%(" in sql else None).fetchall()
            print(f"  EXPLAIN ANALYZE, {label}:", flush=True)
            for row in plan:
                line = row["QUERY PLAN"]
                if "->" in line or "Execution Time" in line or not line.startswith(" "):
                    print(f"    {line[:110]}", flush=True)


def rollup_overhead(url: str, rounds: int = 60) -> None:
    """What the per-kind triggers add to the maintenance rollup: a fold of 400 counter
    deltas (100 counter rows) and 200 timing deltas (50 rows), with the triggers on and off
    in alternation; the per-kind rows are rebuilt from the per-set ones afterwards."""
    deltas = ("INSERT INTO queue_count_deltas (kind, set_id, state, n)"
              " SELECT %(kind)s, 'hist-' || lpad((s * 7)::text, 6, '0'), st,"
              " CASE st WHEN 'done' THEN 5 ELSE -5 END FROM generate_series(1, 50) s,"
              " unnest(ARRAY['running', 'done']) st, generate_series(1, 4) rep")
    timing = ("INSERT INTO queue_timing_deltas (kind, set_id, what, bucket, n, sum, max,"
              " first_at, last_at) SELECT %(kind)s, 'hist-' || lpad((s * 7)::text, 6, '0'),"
              " 'run', 3, 5, 0.02, 0.008, now(), now() FROM generate_series(1, 50) s,"
              " generate_series(1, 4) rep")
    got: dict[bool, list[float]] = {True: [], False: []}
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            for i in range(rounds):
                on = i % 2 == 0
                for table in ("queue_counts", "queue_timings"):
                    conn.execute(f"ALTER TABLE {table} {'ENABLE' if on else 'DISABLE'}"
                                 " TRIGGER USER")
                conn.execute(deltas, {"kind": KIND})
                conn.execute(timing, {"kind": KIND})
                t = time.perf_counter()
                with conn.transaction():
                    conn.execute("SELECT renderer.queue_rollup()")
                    conn.execute("SELECT renderer.queue_rollup_timings()")
                got[on].append((time.perf_counter() - t) * 1000)
        finally:
            for table in ("queue_counts", "queue_timings"):
                conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            with conn.transaction():
                conn.execute("DELETE FROM queue_kind_counts")
                conn.execute("DELETE FROM queue_kind_timings")
                conn.execute("INSERT INTO queue_kind_counts SELECT kind, state, sum(n)"
                             " FROM queue_counts GROUP BY 1, 2")
                conn.execute("INSERT INTO queue_kind_timings SELECT kind, what, bucket,"
                             " sum(n), sum(sum), max(max), min(first_at), max(last_at)"
                             " FROM queue_timings GROUP BY 1, 2, 3")
    print(f"maintenance rollup, median of {rounds // 2} each, load {os.getloadavg()[0]:.1f}:"
          f" with the per-kind triggers {statistics.median(got[True]):.2f} ms, without"
          f" {statistics.median(got[False]):.2f} ms", flush=True)


def queue_named(name: str) -> str:
    from renderer.db import query  # the named statement as the application runs it

    return query(f"queue.{name}")


def status_views(url: str, set_id: str) -> dict[str, float]:
    """Median ms of 10 (after a warm-up) of each status view of the checkout run from:
    ``queue status`` as its command reads it, and the pages through the application."""
    out: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        try:
            from renderer.cli.queue import _status  # this branch's command

            def read() -> None:
                _status(conn, 20, False)
        except ImportError:  # main's command read every set
            def read() -> None:
                queue.status(conn)
        times = []
        for _ in range(11):
            t = time.perf_counter()
            read()
            times.append((time.perf_counter() - t) * 1000)
        out["queue status"] = statistics.median(times[1:])
    for name, ms in page_costs(url, set_id, status=False).items():
        out[name] = ms
    return out


def fast(args: argparse.Namespace, server_url: str) -> None:
    import queue_throughput as qt

    if args.measure:  # the kept database
        url = server_url.replace("/renderer?", "/bench_fast?")
    else:
        url = qt._database(server_url, "bench_fast")
        schema.upgrade(url)
        build_fast(url, args.sets, args.per_set or 300)
    if not args.measure or args.ab:
        read_side_ab(url)
        rollup_overhead(url)
    print(f"status views of this checkout ({ROOT}), load {os.getloadavg()[0]:.1f}:",
          flush=True)
    for name, ms in status_views(url, f"hist-{args.sets // 2:06d}").items():
        print(f"  {name:24} {ms:7.1f} ms", flush=True)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        print(f"  {'queue status --all-sets':24} {status_ms(conn, True):7.1f} ms", flush=True)
        if args.explain:
            explain_status(conn)

def explain_status(conn: Any) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the status statement as the command runs it (the sets
    it shows) and as ``--all-sets`` does (every set)."""
    from renderer.queue import shown_sets  # this checkout's (the --fast run's)

    sets, _ = shown_sets(conn, 20)
    for label, asked in (("the command's 20 sets", sets), ("--all-sets", None)):
        print(f"EXPLAIN (ANALYZE, BUFFERS) of queue status, {label}:", flush=True)
        for row in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + queue_named("status"),
                                {"window": 300, "set_ids": asked}):
            print("  " + row["QUERY PLAN"], flush=True)


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
