"""Set-based enqueue (issue 17, item 4: >= 100k items/s): a measurement, not a test.

An embedded cluster of its own (``--home``, deleted at the end), optionally ``--history``
done rows first (as benchmarks/queue_scale.py builds them), then ``--items`` new keys of
one set per round by :func:`renderer.queue.enqueue_keys`, one transaction each, in these
variants (alternated over ``--rounds``; each round its own keys):

- ``direct``: the path as shipped (a chunk of new keys copied straight into work_queue);
- ``staged``: the path before it (COPY into a staging table, INSERT .. SELECT .. ON
  CONFLICT DO NOTHING of the new keys, the rest through the upsert);
- ``no-trigger``, ``no-partial``: ``direct`` with the insert trigger disabled, or with the
  claim and set-pending indexes dropped, for the round only: what those cost, by difference;
- ``again``: the keys of the last ``direct`` round enqueued once more (all already queued:
  the probe chunk is refused, the rest goes staged and changes nothing);
- ``two``: two sessions at once, half the keys each (the machine's two cores), into a set
  made before (as the callers make theirs, queue.create_set);
- ``two-new-set``: the same into a set neither session finds made: the second session
  waits on the first's uncommitted row of it (``Lock:transactionid``) until that commits.

Each round's keys (``<round><variant>-<n>``) and set sort after every earlier round's, so
each variant's new entries land at the right end of the (kind, key) and set-pending
indexes, as a census of keys after the last ones does (before, round 1 of ``direct`` landed
in the middle of them and ``two`` at the end: 9.98 against 9.61 us of backend CPU an
item, median of four pairs at load 7, within the noise, and 445 against 485 WAL bytes).

Per variant: items/s (wall), backend CPU and client CPU per item (from /proc), WAL records
and bytes per item (pg_stat_wal), and the load average.

    .venv/bin/python benchmarks/queue_enqueue.py [--items 1000000] [--rounds 2]
        [--history 0] [--variants direct,staged,...]

The last line is ``enqueue_per_s=R`` (the best ``direct`` or ``two`` round).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import psycopg  # noqa: E402
import queue_throughput as qt  # noqa: E402
from queue_scale import grow_history  # noqa: E402

from renderer import queue, schema  # noqa: E402
from renderer.localdb import Cluster  # noqa: E402
from renderer.queue import _bulk  # noqa: E402

KIND = "bench_noop"
APP = "enqueue-bench"
TICK = os.sysconf("SC_CLK_TCK")
VARIANTS = ("direct", "staged", "no-trigger", "no-partial", "again", "two", "two-new-set")
SETUP = {  # SQL before and after a round of the variant
    "no-trigger": ("ALTER TABLE work_queue DISABLE TRIGGER work_queue_counts_insert",
                   "ALTER TABLE work_queue ENABLE TRIGGER work_queue_counts_insert"),
    "no-partial": ("DROP INDEX work_queue_claim; DROP INDEX work_queue_set_pending",
                   "CREATE INDEX work_queue_claim ON work_queue (kind, priority DESC,"
                   " run_after, id) WHERE state = 'pending';"
                   " CREATE INDEX work_queue_set_pending ON work_queue (set_id, run_after)"
                   " WHERE state = 'pending' AND set_id IS NOT NULL"),
}


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wal(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT wal_records, wal_bytes FROM pg_stat_wal").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def sample_waits(url: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """Every 5 ms until ``stop``: what each enqueue backend and each background process
    waits on (``CPU`` when it waits on nothing), counted into ``counts``."""
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            for who, what in conn.execute(
                    "SELECT CASE WHEN application_name = %s THEN 'enqueue' ELSE backend_type"
                    " END, coalesce(wait_event_type || ':' || wait_event, 'CPU')"
                    " FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                    " AND (application_name = %s OR backend_type <> 'client backend')",
                    [APP, APP]):
                counts[f"{who} {what}"] = counts.get(f"{who} {what}", 0) + 1
            time.sleep(0.005)


def enqueue(url: str, prefix: str, lo: int, hi: int, out: dict[str, float],
            perf: str = "") -> None:
    """Enqueue keys prefix-lo .. prefix-(hi-1) in one transaction; backend and client CPU
    seconds into ``out``; with ``perf``, a perf record of the backend into that file."""
    with psycopg.connect(url, application_name=APP) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        recorder = subprocess.Popen(["perf", "record", "-F", "1999", "-g", "-p", str(pid),
                                     "-o", perf], stderr=subprocess.DEVNULL) if perf else None
        server, client = cpu_of(pid), time.thread_time()
        queue.enqueue_keys(conn, KIND, (f"{prefix}-{i}" for i in range(lo, hi)),
                           set_id=f"set-{prefix}")
        conn.commit()
        if recorder:
            recorder.send_signal(signal.SIGINT)
            recorder.wait()
        out["server"] = out.get("server", 0) + cpu_of(pid) - server
        out["client"] = out.get("client", 0) + time.thread_time() - client


def one_round(url: str, variant: str, prefix: str, items: int, perf: str = "",
              waits: dict[str, int] | None = None) -> dict[str, float]:
    before, after = SETUP.get(variant, ("", ""))
    if before:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(before)
    copy_new = _bulk._copy_new
    if variant == "staged":
        _bulk._copy_new = lambda *a: False  # type: ignore[assignment]
    records, size = wal(url)
    out: dict[str, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_waits, args=(url, stop, waits)) \
        if waits is not None else None
    if sampler:
        sampler.start()
    t = time.perf_counter()
    try:
        if variant.startswith("two"):
            if variant == "two":  # the set made first, as the callers do (queue.create_set)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("INSERT INTO queue_sets (id) VALUES (%s)", [f"set-{prefix}"])
            outs: list[dict[str, float]] = [{}, {}]
            threads = [threading.Thread(target=enqueue, args=(
                url, prefix, k * items // 2, (k + 1) * items // 2, outs[k]))
                for k in range(2)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            out = {k: outs[0][k] + outs[1][k] for k in outs[0]}
        else:
            enqueue(url, prefix, 0, items, out, perf if variant == "direct" else "")
    finally:
        _bulk._copy_new = copy_new  # type: ignore[method-assign]
        stop.set()
        if sampler:
            sampler.join()
    wall = time.perf_counter() - t
    records2, size2 = wal(url)
    if after:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(after)
    with psycopg.connect(url) as conn:
        n = conn.execute("SELECT count(*) FROM work_queue WHERE set_id = %s",
                         [f"set-{prefix}"]).fetchone()[0]  # type: ignore[index]
    assert n == items, (variant, n, items)
    return {"per_s": items / wall, "server_us": out["server"] / items * 1e6,
            "client_us": out["client"] / items * 1e6,
            "wal_records": (records2 - records) / items, "wal_bytes": (size2 - size) / items,
            "load": os.getloadavg()[0]}


def print_waits(waits: dict[str, int]) -> None:
    """Per process kind, the share of samples in each wait event (CPU: none)."""
    kinds: dict[str, int] = {}
    for k, n in waits.items():
        kinds[k.split()[0]] = kinds.get(k.split()[0], 0) + n
    for k, n in sorted(waits.items(), key=lambda kv: (kv[0].split()[0], -kv[1])):
        who, what = k.split(" ", 1)
        if n * 50 >= kinds[who]:  # 2 % or more of that kind's samples
            print(f"      {who:18} {what:28} {100 * n / kinds[who]:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--home", default="/tmp/queue-enqueue-bench")
    parser.add_argument("--perf", metavar="FILE", default="",
                        help="perf record of the backend of the direct rounds into FILE")
    parser.add_argument("--waits", action="store_true",
                        help="sample pg_stat_activity's wait events during each round")
    args = parser.parse_args()
    variants = args.variants.split(",")
    home = Path(args.home)
    os.environ.update({"RENDERER_HOME": str(home / "home"),
                       "RENDERER_PLUGINS": "queue_throughput"})
    cluster = Cluster(home / "cluster", extra_settings={"max_wal_size": "4GB"})
    server_url = cluster.ensure_started()
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    print(f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    try:
        url = qt._database(server_url, "bench_enqueue")
        schema.upgrade(url)
        if args.history:
            grow_history(url, 0, args.history, 4_500, args.history)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE work_queue")
        last_direct = ""
        for r in range(args.rounds):
            for i, v in enumerate(variants):
                # each round's keys and set sort after every earlier round's: every variant
                # appends at the right end of the (kind, key) and set-pending indexes (the
                # prefixes "direct1" < "two0" put round 1 of direct in the middle before)
                prefix = last_direct if v == "again" and last_direct else f"{r:02d}{i:02d}{v}"
                if v == "again" and not last_direct:
                    continue
                waits: dict[str, int] | None = {} if args.waits else None
                res = one_round(url, v, prefix, args.items, args.perf, waits)
                if v == "direct":
                    last_direct = prefix
                results[v].append(res)
                print(f"  {v:11} {res['per_s']:9,.0f}/s  server {res['server_us']:5.2f} us"
                      f"  client {res['client_us']:5.2f} us  WAL {res['wal_records']:.2f}"
                      f" records {res['wal_bytes']:.0f} B  load {res['load']:.1f}",
                      flush=True)
                if waits:
                    print_waits(waits)
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    print()
    print(f"| variant ({args.items:,} items, history {args.history:,}) | items/s | "
          "backend us/item | client us/item | WAL records/item | WAL bytes/item |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for v, rs in results.items():
        if not rs:
            continue

        def med(k: str, rs: list[dict[str, float]] = rs) -> float:
            return statistics.median(x[k] for x in rs)

        print(f"| {v} | {med('per_s'):,.0f} | {med('server_us'):.2f} | "
              f"{med('client_us'):.2f} | {med('wal_records'):.2f} | {med('wal_bytes'):.0f} |")
    best = max((x["per_s"] for v in ("direct", "two") for x in results.get(v, [])),
               default=0.0)
    print(f"enqueue_per_s={best:.0f}")


if __name__ == "__main__":
    main()
