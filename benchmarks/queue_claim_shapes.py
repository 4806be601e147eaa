"""What a claim that does not rewrite each row would save (issue 16, item 3): a measurement
of the per-item statements, not a prototype.

An embedded cluster of its own (deleted at the end). ``--items`` pending items of one kind
are enqueued (the bulk path), then drained by one session in batches of ``--batch`` in
alternated rounds of each shape, per item: backend CPU (/proc) and WAL records and bytes.

- ``today``: ``queue.claim`` (``queue_claim_v2``) and ``queue.finish`` (``queue_finish_v2``),
  with their triggers, counters and timings; two transactions a batch, as a worker. Since
  per-batch leases (migration 0039) the claim deletes the batch from ``queue_pending`` and
  writes one lease row, and the completion's update to done is HOT; before it, the claim
  updated each item to running (a new row version with its pkey, (kind, key) and
  running-index entries) and the completion to done (pkey and (kind, key) entries). Run the
  script of an earlier commit for the verbs of that commit;
- ``worker``: the path a worker takes (``renderer/worker.py``): ``queue.claim_batch``
  (``queue_claim_next_v2``) in its own transaction, then ``queue.lock`` (``queue_lock_v3``)
  and ``queue.finish`` in the processing transaction; items of a kind of its own
  (``--items`` more of them, enqueued only when the shape runs);
- ``rewrite``: the verbs before 0039 bare: a copy of work_queue with the indexes it had
  then (the primary key, (kind, key), the four partial indexes on ``state``) and no
  triggers; the claim updates the batch to running (``FOR UPDATE SKIP LOCKED`` on the claim
  index), the completion to done: what ``pending-table`` is to be compared with;
- ``pending-table``: the pending queue in a narrow table of its own (kind, priority,
  run_after, id; one index, the claim order): the claim deletes the batch from it (``DELETE
  .. RETURNING`` of the first rows by ``FOR UPDATE SKIP LOCKED``: no row version, no index
  entry, one WAL record a row) and writes one lease row for the batch; the completion
  updates the items' rows in a copy of work_queue with no partial index (so the update of
  ``state`` is HOT: fillfactor 70) and deletes the lease row. No triggers, counters or
  timings: what the shape itself costs, a lower bound for building it.

    .venv/bin/python benchmarks/queue_claim_shapes.py [--items 200000] [--batch 500]
        [--shapes today,worker,rewrite] [--perf DIR]

``--perf DIR`` records the backend of each shape's first round with ``perf record -g``
(``DIR/<shape>.data``; ``perf report -i DIR/worker.data --no-children --sort sym``).

The last line is ``today_vs_rewrite=R worker_vs_rewrite=R ...`` (server CPU per item, medians):
what today's verbs cost above their bare updates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import psycopg  # noqa: E402
import queue_throughput as qt  # noqa: E402
from queue_enqueue import cpu_of, wal  # noqa: E402

from renderer import queue, schema  # noqa: E402
from renderer.localdb import Cluster  # noqa: E402

KIND = "bench_noop"
WORKER_KIND = "bench_worker"
HOT_SCHEMA = """
CREATE TABLE hot{t}_items (LIKE work_queue INCLUDING DEFAULTS) WITH (fillfactor = 70);
ALTER TABLE hot{t}_items ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX ON hot{t}_items (kind, key);
CREATE TABLE hot{t}_pending (kind text NOT NULL, priority integer NOT NULL,
                          run_after timestamptz NOT NULL, id bigint NOT NULL, set_id text);
CREATE INDEX ON hot{t}_pending (kind, priority DESC, run_after, id);
CREATE FUNCTION hot{t}_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM hot{t}_pending p USING old_rows o
    WHERE o.state = 'pending' AND p.kind = o.kind AND p.priority = o.priority
      AND p.run_after = o.run_after AND p.id = o.id
      AND current_setting('hot.direct', true) IS DISTINCT FROM 'on';
    INSERT INTO hot{t}_pending SELECT n.kind, n.priority, n.run_after, n.id, n.set_id
    FROM new_rows n WHERE n.state = 'pending';
    RETURN NULL;
END $$;
CREATE TRIGGER hot{t}_update AFTER UPDATE ON hot{t}_items
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION hot{t}_on_update();
"""
SHAPE_SQL = """
CREATE TABLE shape_items (LIKE work_queue INCLUDING DEFAULTS) WITH (fillfactor = 70);
ALTER TABLE shape_items ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX ON shape_items (kind, key);
CREATE TABLE shape_rewrite (LIKE work_queue INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE shape_rewrite ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX ON shape_rewrite (kind, key);
CREATE INDEX ON shape_rewrite (kind, priority DESC, run_after, id) WHERE state = 'pending';
CREATE INDEX ON shape_rewrite (set_id, run_after) WHERE state = 'pending' AND set_id IS NOT NULL;
CREATE INDEX ON shape_rewrite (lease_owner) WHERE state = 'running';
CREATE INDEX ON shape_rewrite (set_id, kind) WHERE state IN ('held', 'failed');
CREATE TABLE shape_pending (kind text NOT NULL, priority integer NOT NULL,
                            run_after timestamptz NOT NULL, id bigint NOT NULL);
CREATE INDEX ON shape_pending (kind, priority DESC, run_after, id);
CREATE TABLE shape_leases (token uuid PRIMARY KEY, owner text, expires timestamptz,
                           ids bigint[]);
"""
FILL_SQL = """
INSERT INTO shape_items SELECT * FROM work_queue WHERE kind = %(kind)s;
INSERT INTO shape_pending SELECT kind, priority, run_after, id FROM shape_items;
INSERT INTO shape_rewrite SELECT * FROM work_queue WHERE kind = %(kind)s;

VACUUM ANALYZE shape_items; VACUUM ANALYZE shape_pending; VACUUM ANALYZE shape_rewrite;
"""
CLAIM_SQL = """
WITH picked AS (
    SELECT ctid FROM shape_pending WHERE kind = %(kind)s AND run_after <= now()
    ORDER BY priority DESC, run_after, id LIMIT %(n)s FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM shape_pending p USING picked WHERE p.ctid = picked.ctid
         RETURNING p.id),
lease AS (INSERT INTO shape_leases SELECT %(token)s, 'bench', now() + interval '60 s',
                                          array_agg(id) FROM gone)
SELECT i.id, i.key, i.payload FROM shape_items i JOIN gone ON i.id = gone.id
"""
FINISH_SQL = """
WITH l AS (DELETE FROM shape_leases WHERE token = %(token)s RETURNING ids)
UPDATE shape_items i SET state = 'done', finished_at = now(), attempt = i.attempt + 1
FROM l WHERE i.id = ANY (l.ids)
"""
REWRITE_CLAIM_SQL = """
UPDATE shape_rewrite w SET state = 'running', lease_owner = 'bench', lease_token = %(token)s,
       lease_expires = now() + interval '60 s', started_at = now(), attempt = w.attempt + 1
FROM (SELECT ctid FROM shape_rewrite WHERE kind = %(kind)s AND state = 'pending'
        AND run_after <= now()
      ORDER BY priority DESC, run_after, id LIMIT %(n)s FOR UPDATE SKIP LOCKED) p
WHERE w.ctid = p.ctid
RETURNING w.id, w.key, w.payload
"""
HOT_FILL_SQL = """
INSERT INTO hot{t}_items SELECT * FROM work_queue WHERE kind = %(kind)s;
INSERT INTO hot{t}_pending SELECT kind, priority, run_after, id, set_id FROM hot{t}_items;
VACUUM ANALYZE hot{t}_items; VACUUM ANALYZE hot{t}_pending;
"""
HOT_CLAIM_SQL = """
WITH picked AS MATERIALIZED (
    SELECT p.ctid AS pt, i.ctid AS it FROM hot{t}_pending p JOIN hot{t}_items i ON i.id = p.id
    WHERE p.kind = %(kind)s AND p.run_after <= now() AND i.state = 'pending'
    ORDER BY p.priority DESC, p.run_after, p.id LIMIT %(n)s FOR UPDATE OF i SKIP LOCKED),
gone AS (DELETE FROM hot{t}_pending p WHERE p.ctid IN (SELECT pt FROM picked)
         AND %(direct)s)
UPDATE hot{t}_items w SET state = 'running', lease_owner = 'bench', lease_token = %(token)s,
       lease_expires = now() + interval '60 s', started_at = now(), attempt = w.attempt + 1
FROM picked WHERE w.ctid = picked.it
RETURNING w.id, w.key, w.payload
"""
HOT_FINISH_SQL = """
UPDATE hot{t}_items SET state = 'done', finished_at = now(), lease_owner = NULL,
       lease_token = NULL, lease_expires = NULL
WHERE id = ANY (%(ids)s) AND lease_token = %(token)s AND state = 'running'
"""
REWRITE_FINISH_SQL = """
UPDATE shape_rewrite SET state = 'done', finished_at = now(), lease_owner = NULL,
       lease_token = NULL, lease_expires = NULL
WHERE id = ANY (%(ids)s) AND lease_token = %(token)s AND state = 'running'
"""


def rewrite(conn: psycopg.Connection[Any], batch: int) -> int:
    token = str(conn.execute("SELECT gen_random_uuid()").fetchone()[0])  # type: ignore[index]
    with conn.transaction():
        ids = [r[0] for r in conn.execute(REWRITE_CLAIM_SQL,
                                          {"kind": KIND, "n": batch, "token": token})]
    if ids:
        with conn.transaction():
            conn.execute(REWRITE_FINISH_SQL, {"token": token, "ids": ids})
    return len(ids)


def _hot(conn: psycopg.Connection[Any], batch: int, direct: bool) -> int:
    token = str(conn.execute("SELECT gen_random_uuid()").fetchone()[0])  # type: ignore[index]
    with conn.transaction():
        conn.execute("SELECT set_config('hot.direct', %s, true)", ["on" if direct else "off"])
        t = "_d" if direct else "_t"
        ids = [r[0] for r in conn.execute(
            HOT_CLAIM_SQL.format(t=t),
            {"kind": KIND, "n": batch, "token": token, "direct": direct})]
    if ids:
        with conn.transaction():
            conn.execute(HOT_FINISH_SQL.format(t=t), {"token": token, "ids": ids})
    return len(ids)


def hot_trigger(conn: psycopg.Connection[Any], batch: int) -> int:
    return _hot(conn, batch, False)


def hot_direct(conn: psycopg.Connection[Any], batch: int) -> int:
    return _hot(conn, batch, True)


def today(conn: psycopg.Connection[Any], batch: int) -> int:
    with conn.transaction():
        items = queue.claim(conn, KIND, limit=batch)
    if items:
        with conn.transaction():
            queue.finish(conn, items[0].token, [i.id for i in items], [])
    return len(items)


def worker(conn: psycopg.Connection[Any], batch: int) -> int:
    items = queue.claim_batch(conn, [WORKER_KIND], owner="bench", limits=[batch],
                              leases=[60.0])
    if items:
        with conn.transaction():
            locked = queue.lock(conn, items, idle_seconds=600)
            queue.finish(conn, items[0].token, [i.id for i in items if i.id in locked], [])
    return len(items)


def pending_table(conn: psycopg.Connection[Any], batch: int) -> int:
    token = str(conn.execute("SELECT gen_random_uuid()").fetchone()[0])  # type: ignore[index]
    with conn.transaction():
        n = len(conn.execute(CLAIM_SQL, {"kind": KIND, "n": batch, "token": token}).fetchall())
    if n:
        with conn.transaction():
            conn.execute(FINISH_SQL, {"token": token})
    return n


SHAPES = {"today": today, "worker": worker, "rewrite": rewrite,
          "pending-table": pending_table, "hot-trigger": hot_trigger, "hot-direct": hot_direct}


def measure(url: str, shape: Any, batches: int, batch: int,
            perf: str | None = None) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        recorder = None
        if perf:
            recorder = subprocess.Popen(["perf", "record", "-g", "-F", "1999", "-p", str(pid),
                                         "-o", perf], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        records, size = wal(url)
        cpu = cpu_of(pid)
        t = time.perf_counter()
        n = sum(shape(conn, batch) for _ in range(batches))
        wall = time.perf_counter() - t
        cpu = cpu_of(pid) - cpu
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(60)
    records2, size2 = wal(url)
    return {"n": n, "server_us": cpu / n * 1e6, "wall_us": wall / n * 1e6,
            "wal_records": (records2 - records) / n, "wal_bytes": (size2 - size) / n,
            "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--home", default="/tmp/queue-claim-shapes")
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--perf", metavar="DIR",
                        help="perf record each shape's first round into DIR/<shape>.data")
    args = parser.parse_args()
    wanted = args.shapes.split(",")
    if unknown := [s for s in wanted if s not in SHAPES]:
        parser.error(f"unknown shapes {unknown}; choose among {list(SHAPES)}")
    home = Path(args.home)
    os.environ.update({"RENDERER_HOME": str(home / "home"),
                       "RENDERER_PLUGINS": "queue_throughput"})
    cluster = Cluster(home / "cluster", extra_settings={"max_wal_size": "4GB"})
    server_url = cluster.ensure_started()
    shapes = {name: SHAPES[name] for name in wanted}
    results: dict[str, list[dict[str, float]]] = {k: [] for k in shapes}
    print(f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    try:
        url = qt._database(server_url, "bench_shapes")
        schema.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            queue.enqueue_keys(conn, KIND, (f"k{i}" for i in range(args.items)),
                               set_id="shapes")
            if "worker" in shapes:
                queue.enqueue_keys(conn, WORKER_KIND, (f"k{i}" for i in range(args.items)),
                                   set_id="shapes")
            conn.execute(SHAPE_SQL)
            for statement in FILL_SQL.split(";"):
                if statement.strip():
                    conn.execute(statement, {"kind": KIND} if "%(" in statement else None)
            for t in ("_t", "_d"):
                conn.execute(HOT_SCHEMA.format(t=t))
                for statement in HOT_FILL_SQL.format(t=t).split(";"):
                    if statement.strip():
                        conn.execute(statement, {"kind": KIND} if "%(" in statement else None)
            conn.execute("VACUUM ANALYZE work_queue, queue_pending")
        per_round = args.items // args.batch // args.rounds
        for r in range(args.rounds):
            for name, shape in shapes.items():
                perf = f"{args.perf}/{name}.data" if args.perf and r == 0 else None
                res = measure(url, shape, per_round, args.batch, perf)
                results[name].append(res)
                print(f"  round {r} {name:14} server {res['server_us']:6.2f} us/item"
                      f"  wall {res['wall_us']:6.2f} us  WAL {res['wal_records']:.2f} records"
                      f" {res['wal_bytes']:.0f} B  load {res['load']:.1f}", flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    print()
    print(f"| shape (batch {args.batch}) | server us/item | wall us/item | WAL records/item |"
          " WAL bytes/item |")
    print("| --- | ---: | ---: | ---: | ---: |")
    med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]}
           for name, rs in results.items()}
    for name, m in med.items():
        print(f"| {name} | {m['server_us']:.2f} | {m['wall_us']:.2f} | "
              f"{m['wal_records']:.2f} | {m['wal_bytes']:.0f} |")
    pairs = [("today", "rewrite"), ("worker", "rewrite"), ("pending-table", "rewrite"),
             ("hot-direct", "rewrite")]
    print(" ".join(f"{a.replace('-', '_')}_vs_{b}="
                   f"{med[a]['server_us'] / med[b]['server_us']:.2f}"
                   for a, b in pairs if a in med and b in med))


if __name__ == "__main__":
    main()
