"""Where the server's time goes per no-op queue item (issue 16, item 3): a measurement.

Starts an embedded cluster with pg_stat_statements loaded, runs our real workers (as
benchmarks/queue_throughput.py does) over ``--items`` no-op items, and prints per item:

- server CPU: all PostgreSQL processes of the cluster (backends, WAL writer, checkpointer,
  autovacuum that were alive at both ends), from /proc;
- per statement (pg_stat_statements): calls, execution time, rows, buffers dirtied and WAL
  written, per item;
- per table (pg_stat_user_tables): inserts, updates, HOT updates, deletes, per item; index
  entries written follow: a non-HOT update writes one entry to every index whose predicate
  the new row version meets;
- WAL (pg_stat_wal): records, full-page images, bytes per item.

    .venv/bin/python benchmarks/queue_cost.py [--items 50000 --processes 4]

With ``--processes 0`` one worker drains the items inside this process, and its client CPU
per item is printed too (the worker's own cost: decoding rows, payloads, ids).

The last line is ``server_cpu_us_per_item=R``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import queue_throughput as qt
from scratch import TICK, cluster_seconds, proc_stats

from renderer import queue, schema
from renderer.localdb import Cluster
from renderer.worker import run_worker


def cluster_cpu(postmaster: int) -> dict[int, float]:
    """CPU seconds of the postmaster's live children (and itself), by pid."""
    return {pid: (int(fields[11]) + int(fields[12])) / TICK for pid, fields in proc_stats()
            if pid == postmaster or int(fields[1]) == postmaster}


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    statements = {r[0]: r[1:] for r in conn.execute(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 70), calls, total_exec_time,"
        " rows, shared_blks_dirtied, wal_records, wal_bytes FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")}
    tables = {r[0]: r[1:] for r in conn.execute(
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del"
        " FROM pg_stat_user_tables")}
    wal = conn.execute("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal").fetchone()
    return {"statements": statements, "tables": tables, "wal": wal}


def _perf(conn: psycopg.Connection[Any], postmaster: int, workers: int,
          out: str) -> subprocess.Popen[bytes]:
    """perf record of the whole machine from the moment the workers' backends exist; the
    cluster's pids go to OUT.pids (perf report -i OUT --pids "$(cat OUT.pids)")."""
    while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type ="
                       " 'client backend'").fetchone()[0] < 2 * workers + 1:
        time.sleep(0.05)
    Path(out + ".pids").write_text(",".join(str(p) for p in cluster_cpu(postmaster)))
    return subprocess.Popen(["perf", "record", "-a", "-F", "999", "-g", "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _in_process(url: str, postmaster: int) -> tuple[float, float, float]:
    """One worker drains the queue in this process: (wall s, client CPU s, server CPU s).
    The server's figure counts the worker's backend, which exits with the worker, through
    the postmaster's reaped-children times."""
    server = cluster_seconds(postmaster)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    run_worker(url, kinds=[qt.KIND], until_empty=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(0.2)  # the backend's exit reaped
    server = cluster_seconds(postmaster) - server
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), server


def _drain(url: str, postmaster: int, args: argparse.Namespace) -> tuple[float, float]:
    """``args.processes`` worker processes drain the queue: (wall s, server CPU s; processes
    born during the drain, the workers' backends, count from zero)."""
    cpu_before = cluster_cpu(postmaster)
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Value("i", 0)
    procs = [ctx.Process(target=qt._ours_child, args=(url, ready))
             for _ in range(args.processes)]
    for p in procs:
        p.start()
    recorder = None
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if args.perf:
                recorder = _perf(conn, postmaster, args.processes, args.perf)
            while conn.execute(qt.DRAIN_SQL).fetchone()[0]:
                time.sleep(0.02)
        wall = time.perf_counter() - started
        cpu_after = cluster_cpu(postmaster)
    finally:
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(60)
        qt._stop(procs)
    return wall, sum(c - cpu_before.get(p, 0.0) for p, c in cpu_after.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--processes", type=int, default=2 * (os.cpu_count() or 1),
                        help="worker processes; 0: one worker in this process, whose client "
                             "CPU per item is printed too")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--setup", metavar="SQL", default="",
                        help="run SQL before the items are enqueued, to measure a change "
                             "without building it (e.g. ALTER TABLE work_queue SET "
                             "(fillfactor = 70))")
    parser.add_argument("--perf", metavar="FILE",
                        help="also record the cluster's processes with perf during the drain "
                             "(perf report -i FILE --sort sym)")
    parser.add_argument("--throttled", type=int, default=0, metavar="N",
                        help="also N items in a set throttled to 10 in flight (issue 18): "
                             "the claim's cost with a throttled set present")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="renderer-bench-cost-"))
    cluster = Cluster(home, extra_settings={"shared_preload_libraries": "'pg_stat_statements'",
                                            "pg_stat_statements.track": "all",
                                            "track_io_timing": "on"})
    server_url = cluster.ensure_started()
    try:
        url = qt._database(server_url, "bench_cost")
        schema.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            if args.setup:
                conn.execute(args.setup)
            indexes = [r[0] for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'work_queue'")]
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        os.environ["RENDERER_PLUGINS"] = "queue_throughput"
        os.environ["BENCH_BATCH"] = str(args.batch)
        with psycopg.connect(url) as conn:  # the items first: the drain alone is measured
            queue.enqueue_many(conn, (queue.NewItem(qt.KIND, f"k{i}")
                                      for i in range(args.items)))
            if args.throttled:
                queue.throttle(conn, "throttled", in_flight=10)
                queue.enqueue_many(conn, (queue.NewItem(qt.KIND, f"t{i}", set_id="throttled")
                                          for i in range(args.throttled)))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE work_queue, queue_pending")
            conn.execute("SELECT pg_stat_statements_reset()")
            conn.execute("SELECT pg_stat_reset()")
            conn.execute("SELECT pg_stat_reset_shared('wal')")
            time.sleep(1.1)  # stats reach the shared view at most every second
            before = snapshot(conn)
        client = 0.0
        if args.processes == 0:
            wall, client, server = _in_process(url, postmaster)
        else:
            wall, server = _drain(url, postmaster, args)
        time.sleep(1.0)
        with psycopg.connect(url, autocommit=True) as conn:
            after = snapshot(conn)
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    n = args.items
    if args.setup:
        print(f"set-up: {args.setup}")
    workers = f"{args.processes} processes" if args.processes else "one worker in process"
    print(f"{n} items (+{args.throttled} held in a throttled set), {workers}, "
          f"batch {args.batch}: {n / wall:.0f}/s (from the workers' start); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"server CPU: {server:.2f} s = {server / n * 1e6:.1f} us per item")
    if args.processes == 0:
        print(f"client CPU (the worker in this process): {client:.2f} s = "
              f"{client / n * 1e6:.1f} us per item")
    print("statements (per item): calls, exec us, rows, blocks dirtied, WAL records, WAL bytes")
    rows = []
    for q, a in after["statements"].items():
        b = before["statements"].get(q, (0,) * 6)
        d = [x - y for x, y in zip(a, b, strict=True)]
        if d[0]:
            rows.append((d[1], q, d))
    for _, q, d in sorted(rows, reverse=True)[:12]:
        print(f"  {d[0] / n:7.4f} {d[1] * 1000 / n:8.2f} {d[2] / n:6.2f} {d[3] / n:6.3f} "
              f"{d[4] / n:6.2f} {float(d[5]) / n:8.1f}  {q}")
    print("tables (per item): inserts, updates, HOT updates, deletes")
    for t, a in sorted(after["tables"].items()):
        b = before["tables"].get(t, (0,) * 4)
        d = [x - y for x, y in zip(a, b, strict=True)]
        if any(d):
            print(f"  {t:24} {d[0] / n:6.3f} {d[1] / n:6.3f} {d[2] / n:6.3f} {d[3] / n:6.3f}")
    w = [x - y for x, y in zip(after["wal"], before["wal"], strict=True)]
    print(f"WAL per item: {w[0] / n:.2f} records, {w[1] / n:.3f} full-page images, "
          f"{float(w[2]) / n:.0f} bytes")
    print("work_queue indexes:")
    for definition in indexes:
        print(f"  {definition}")
    print(f"server_cpu_us_per_item={server / n * 1e6:.1f}")


if __name__ == "__main__":
    main()
