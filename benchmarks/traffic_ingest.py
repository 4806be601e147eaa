"""Benchmark (b) of issue 4: reporter files -> committed histograms, end to end.

Generates a sample (not timed), then in one run against the same PostgreSQL:

- ours: ``submit`` (list the source without reading its files, anti-join the ledger by key,
  enqueue, committing every 64 prefixes as ``renderer traffic submit`` does, so the workers
  start on the first hours while it lists the rest) and 2 worker processes
  working every ``histogram`` item until the queue is empty (up to 32 (tile, hour) items per
  transaction: the ledger rows of the batch read in one statement, then per item read,
  gunzip, C binning, then the whole batch written at once: its ledger rows in one statement,
  its bins in one binary COPY per week partition, its segment lengths in one COPY, its
  rejects in one INSERT); inputs kept (``--after keep``), as archiving is file moving after
  the commit. Timed with the workers already waiting (and again with the
  pool started inside the timing, "cold pool", as ``renderer traffic run`` starts it: its
  fork server, which imports the pipelines, beside the submit);
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
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from scratch import drop_database, scratch_database

from renderer import binning, config
from renderer.db import resolve_url
from renderer.traffic.layout import parse_key
from renderer.traffic.sample import generate

BENCH_DB = "renderer_bench_ingest"
TICK = os.sysconf("SC_CLK_TCK")


class ServerCpu:
    """CPU seconds of the PostgreSQL server when it runs on this machine: its live processes
    plus the exited backends that the postmaster reaped (cutime). Shared with whatever else
    uses the same server at the same time; None when the server is not local."""

    def __init__(self, url: str) -> None:
        self.pid: int | None = None
        try:
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT current_setting('data_directory')").fetchone()
            assert row is not None
            self.pid = int((Path(row[0]) / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, psycopg.Error):
            self.pid = None

    @staticmethod
    def _stat(pid: int) -> list[str]:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()

    def seconds(self) -> float | None:
        if self.pid is None:
            return None
        try:
            own = self._stat(self.pid)
            ticks = sum(int(v) for v in own[11:15])  # utime stime cutime cstime
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        fields = self._stat(int(entry.name))
                    except OSError:
                        continue
                    if int(fields[1]) == self.pid:
                        ticks += int(fields[11]) + int(fields[12])
        except OSError:
            return None
        return ticks / TICK


def own_cpu() -> float:
    """CPU seconds of this process and its reaped children (the pool's fork server, with
    the workers it reaped, once :func:`_stop_fork_server` has ended it)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


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


def run_copy(url: str, bodies: list[bytes],
             server: ServerCpu) -> tuple[float, tuple[float, float] | None]:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bench_copy (segment_id text, next_segment_id text,"
                     " duration text, count text, length text, queue_length text,"
                     " minimum_timestamp text, maximum_timestamp text, source text,"
                     " vehicle_type text)")
        conn.commit()
        cpu0, server0 = own_cpu(), server.seconds()
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY bench_copy FROM STDIN (FORMAT csv)") as copy:
            for body in bodies:
                copy.write(body)
        conn.commit()
        elapsed = time.perf_counter() - start
        cpu = _cpu_since(cpu0, server0, server)
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return elapsed, cpu


def _cpu_since(cpu0: float, server0: float | None,
               server: ServerCpu) -> tuple[float, float] | None:
    """(client, server) CPU seconds since ``cpu0``, ``server0``."""
    server1 = server.seconds()
    if server0 is None or server1 is None:
        return None
    return own_cpu() - cpu0, server1 - server0


def _pool_cpu() -> tuple[int, float]:
    """The pool of this process: its live workers, and the CPU seconds so far of its fork
    server (it imports the pipelines once) with every worker it forked, live or reaped."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (ServerCpu._stat(int(entry.name)),
                                          (entry / "cmdline").read_bytes())
            except OSError:
                continue
    servers = {pid for pid, (fields, cmdline) in stats.items()
               if int(fields[1]) == os.getpid() and b"multiprocessing.forkserver" in cmdline}
    workers = [fields for fields, _ in stats.values() if int(fields[1]) in servers
               and fields[0] not in ("Z", "X")]
    ticks = sum(int(v) for pid in servers for v in stats[pid][0][11:15])  # + reaped children
    ticks += sum(int(f[11]) + int(f[12]) for f in workers)
    return len(workers), ticks / TICK


def _stop_fork_server() -> None:
    """End the pool's fork server and reap it, so that its CPU and its workers' counts in
    own_cpu(); the next run then starts its own, as a new `renderer work` process would.
    (multiprocessing's own test hook: the benchmark's business, not the package's.)"""
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # type: ignore[attr-defined]


def _count(conn: psycopg.Connection[Any], statement: str) -> int:
    row = conn.execute(statement).fetchone()
    assert row is not None
    return int(row[0])


PENDING = ("SELECT count(*) FROM work_queue WHERE kind = 'histogram'"
           " AND state IN ('pending', 'running')")


def _backend_cpu(conn: psycopg.Connection[Any]) -> float:
    """CPU seconds of ``conn``'s own backend so far (the server must be on this machine)."""
    fields = ServerCpu._stat(conn.info.backend_pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def run_ours(url: str, source: Path, processes: int, server: ServerCpu, *,
             warm: bool) -> tuple[float, tuple[float, float] | None, int]:
    """Submit, then the workers until every item is committed: (seconds, cpu, items).

    ``warm``: the worker processes are started first and timing begins once they wait for
    work, as a deployment's workers do; they are told to stop after as many items as the
    sample has prefixes. Otherwise the pool starts inside the timing, as ``renderer traffic
    run`` starts it: its fork server (which imports the pipelines) beside the submit, its
    workers after.
    """
    from renderer.pool import run_pool, warm_up
    from renderer.traffic.ingest import COMMIT_EVERY, submit

    pool: threading.Thread | None = None
    started = 0.0
    if warm:
        prefixes = {p for p in (parse_key(f.relative_to(source).as_posix())
                                for f in source.rglob("*") if f.is_file()) if p is not None}
        pool = threading.Thread(target=run_pool, args=(url,), kwargs={
            "processes": processes, "kinds": ["histogram"], "max_items": len(prefixes)})
        pool.start()
        with psycopg.connect(url, autocommit=True) as conn:
            while _pool_cpu()[0] < processes or _count(
                    conn, "SELECT count(*) FROM queue_workers") < processes:
                time.sleep(0.05)
        time.sleep(0.5)  # past their first (empty) claim, waiting for a notification
        started = _pool_cpu()[1]
    with psycopg.connect(url, autocommit=True) as watch:
        # the pool's CPU so far (start-up) is left out: it is in own_cpu() once reaped
        cpu0, server0 = own_cpu() + started, server.seconds()
        start = time.perf_counter()
        if pool is None:
            warm_up()  # as `renderer traffic run` does: the pool's imports beside the submit
        with psycopg.connect(url) as conn:
            # as `renderer traffic submit` does: the items committed as the listing goes
            result = submit(conn, str(source), after="keep", commit_every=COMMIT_EVERY)
            conn.commit()
        watching = (0.0, 0.0)  # the harness's polling, client and backend: not ours
        if pool is None:
            run_pool(url, processes=processes, kinds=["histogram"], until_empty=True)
        else:
            backend, client0 = _backend_cpu(watch), time.thread_time()
            while _count(watch, PENDING):
                time.sleep(0.01)
            watching = (time.thread_time() - client0, _backend_cpu(watch) - backend)
        elapsed = time.perf_counter() - start
    if pool is not None:
        pool.join()
    _stop_fork_server()
    time.sleep(1.0)  # the postmaster reaps the workers' backends (their CPU) asynchronously
    cpu = _cpu_since(cpu0, server0, server)
    if cpu is not None:
        cpu = (cpu[0] - watching[0], cpu[1] - watching[1])
    return elapsed, cpu, result.prefixes


def count_histograms(url: str) -> tuple[int, int]:
    """(observations, rows) in the histograms."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(sum(count), 0), count(*) FROM traffic_histograms"
                           ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=8.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    server = resolve_url(config.load())
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "reporters"
        stats = generate(source, tiles=args.tiles, days=args.days, seed=1, scale=args.scale)
        print(f"sample: {stats.files} files, {stats.rows} rows, {stats.observations} "
              f"observations, {args.tiles} tiles x {args.days} days, binning "
              f"{binning.IMPLEMENTATION}")
        bodies = csv_bodies(source)
        runs = {}
        for name in ("copy", "ours", "ours, cold pool"):
            url = scratch_database(server, BENCH_DB)
            try:
                server_cpu = ServerCpu(url)
                if name == "copy":
                    seconds, cpu = run_copy(url, bodies, server_cpu)
                    items = 0
                else:
                    seconds, cpu, items = run_ours(url, source, args.processes, server_cpu,
                                                   warm=name == "ours")
                    observations, rows = count_histograms(url)
                    assert observations == stats.observations, (observations, stats.observations)
                    print(f"{name}: {items} items, {rows} histogram rows written")
            finally:
                drop_database(server, BENCH_DB)
            runs[name] = (seconds, cpu)
    copy_seconds, copy_cpu = runs["copy"]
    print(f"copy: {copy_seconds:.2f} s for {stats.rows} rows, one stream")
    for name in ("ours, cold pool", "ours"):
        seconds, cpu = runs[name]
        line = f"{name}: {seconds:.2f} s with {args.processes} worker processes"
        if cpu is not None and copy_cpu is not None:
            line += (f"; cpu s (client + workers, server) {cpu[0]:.2f} + {cpu[1]:.2f}"
                     f" against copy's {copy_cpu[0]:.2f} + {copy_cpu[1]:.2f},"
                     f" ratio by cpu {sum(copy_cpu) / sum(cpu):.2f}")
        print(line)
    print(f"load average {os.getloadavg()[0]:.2f}")
    cold = stats.observations / runs["ours, cold pool"][0]
    ours = stats.observations / runs["ours"][0]
    copy = stats.observations / copy_seconds
    print(f"cold pool: ours={cold:,.0f} obs/s ratio={cold / copy:.2f}")
    print(f"ours={ours:,.0f} obs/s copy={copy:,.0f} obs/s ratio={ours / copy:.2f}")


if __name__ == "__main__":
    main()
