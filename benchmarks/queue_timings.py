"""Queue timings: what the per-(kind, set) timing histograms cost and what they save.

Two measurements on one embedded cluster in a temporary home, side by side:

1. Server CPU per no-op item claimed and completed (500 per claim), with the claim,
   completion and maintenance functions as they were at 0009 (no timings, their retired
   definitions in sql/schema/retired/) and at head (claim waits and run times appended per
   batch), read from ``/proc/<backend pid>/stat``, so other load on the machine barely
   moves it.
2. A set page's data with N done items in the set and N in another: the durations query
   the page used before (percentiles over the set's rows) against ``set_data`` now.

    python benchmarks/queue_timings.py [--items 60000] [--set-items 400000] [--rounds 3]

The last line is ``cpu_before=<us> cpu_after=<us> page_before=<ms> page_after=<ms>``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from scratch import drop_database, with_database

from renderer import schema
from renderer.localdb import Cluster
from renderer.web.pages import set_data

# What the set page ran before 0010: every done row of the set, sorted twice.
OLD_SET_DURATIONS = """
SELECT kind, count(*)::bigint AS done,
       avg(extract(epoch FROM finished_at - started_at))::float8 AS mean_seconds,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - started_at))::float8 AS p50_seconds,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - started_at))::float8 AS p95_seconds,
       max(extract(epoch FROM finished_at - started_at))::float8 AS max_seconds,
       min(started_at) AS first_started, max(finished_at) AS last_finished
  FROM work_queue
 WHERE set_id = %(set_id)s AND state = 'done' AND started_at IS NOT NULL
 GROUP BY kind ORDER BY kind
"""


def database(server: str, name: str, as_of: str | None = None) -> str:
    """A database at head; with ``as_of``, the queue verbs that 0010 changed put back as
    they were at that revision."""
    drop_database(server, name)
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    schema.upgrade(url)
    if as_of is not None:
        with psycopg.connect(url, autocommit=True) as conn:
            for verb in ("queue_claim", "queue_complete", "queue_maintain"):
                conn.execute(schema.definition(verb, as_of).replace(
                    "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    return url


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def drain(conn: psycopg.Connection[Any], kind: str, batch: int) -> None:
    while True:
        with conn.transaction():
            rows = conn.execute("SELECT id, lease_token FROM renderer.queue_claim(%s, %s, 'w')",
                                (kind, batch)).fetchall()
        if not rows:
            break
        with conn.transaction():
            conn.execute("SELECT renderer.queue_complete(%s::bigint[], %s)",
                         ([r["id"] for r in rows], rows[0]["lease_token"]))
    conn.execute("SELECT renderer.queue_maintain()")


def cpu_per_item(url: str, items: int, with_timings: bool) -> float:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        tables = "work_queue, queue_count_deltas, queue_counts, queue_rates"
        if with_timings:
            tables += ", queue_timing_deltas, queue_timings"
        conn.execute(f"TRUNCATE {tables}")
        conn.execute("INSERT INTO work_queue (kind, key, set_id)"
                     " SELECT 'noop', 'k' || g, 's' FROM generate_series(1, %s) g", (items,))
        pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]  # type: ignore[index]
        start = backend_cpu(pid)
        drain(conn, "noop", 500)
        return (backend_cpu(pid) - start) / items * 1e6


def page_times(url: str, items: int, rounds: int) -> tuple[float, float]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SELECT renderer.queue_create_set('big'), renderer.queue_create_set('other')")
        for set_id in ("big", "other"):
            conn.execute("INSERT INTO work_queue (kind, key, set_id) SELECT 'tile', %s || g, %s"
                         " FROM generate_series(1, %s) g", (set_id, set_id, items))
        drain(conn, "tile", 5000)
        conn.execute("VACUUM ANALYZE work_queue")
        old, new = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            before = conn.execute(OLD_SET_DURATIONS, {"set_id": "big"}).fetchall()
            old.append(time.perf_counter() - started)
            started = time.perf_counter()
            now = set_data(conn, "big")
            new.append(time.perf_counter() - started)
        assert before[0]["done"] == now["kinds"][0]["done"] == items
        return statistics.median(old) * 1000, statistics.median(new) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=60_000, help="no-op items per CPU round")
    parser.add_argument("--set-items", type=int, default=400_000, help="done items in the set")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="renderer-bench-"))
    cluster = Cluster(home)
    server = cluster.ensure_started()
    before = database(server, "bench_timings_0009", as_of="0009")
    after = database(server, "bench_timings_head")
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.rounds):  # alternate, so drifting load hits both alike
        cpu["before"].append(cpu_per_item(before, args.items, with_timings=False))
        cpu["after"].append(cpu_per_item(after, args.items, with_timings=True))
    for name, values in cpu.items():
        print(f"server CPU per claimed+completed item, {name}: "
              + ", ".join(f"{v:.1f} us" for v in values), flush=True)
    page_old, page_new = page_times(after, args.set_items, args.rounds)
    print(f"set page, {args.set_items:,} done items: old durations query {page_old:.0f} ms, "
          f"set_data now {page_new:.1f} ms")
    print(f"cpu_before={statistics.median(cpu['before']):.1f} "
          f"cpu_after={statistics.median(cpu['after']):.1f} "
          f"page_before={page_old:.0f} page_after={page_new:.1f}")
    cluster.stop()


if __name__ == "__main__":
    main()
