"""The read side of ``benchmarks/queue_scale.py``: what ``renderer queue status`` and the set
pages cost at scale (:func:`status_ms`, :func:`page_costs`), and its ``--fast`` mode, the
read side alone on a history built set-based (:func:`fast`): main's reads against this
checkout's, alternating, and every status view. Run through ``queue_scale.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from renderer import config, queue, schema  # noqa: E402

KIND = "bench_noop"  # as queue_scale's
TICK = os.sysconf("SC_CLK_TCK")
# The kept sets of the history and their timing rows (queue_scale builds its history with
# them too).
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


def cpu_of(pids: set[int]) -> float:
    """CPU seconds (user + system) of these processes."""
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total




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
