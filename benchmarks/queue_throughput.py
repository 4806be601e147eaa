"""Work-queue throughput: ours vs PgQueuer (vs procrastinate), a fair race in one run.

No-op items, claim + complete per second, on the same PostgreSQL (an embedded cluster in a
temporary home, default renderer settings, fsync on), each system in its own database with
the same number of worker processes. Each system's workers start on an empty queue and
report ready; then the items are inserted in one transaction and the clock runs from its
commit until the queue is drained. Fair means:

- the same number of items for every contender (``--items``);
- the same drain check for every contender: ``SELECT EXISTS (unfinished item)`` every 20 ms;
- each contender at its best settings, found by a small sweep that is printed (ours: claim
  batch; PgQueuer: dequeue batch and queue managers per process), at ``--sweep-items``
  items each; the final race then runs both at their best with ``--items``.

PgQueuer's own benchmark tool (``tools/benchmark.py``, drain strategy) is run too, at its
best of a small sweep (queue managers x dequeue batch), on the same cluster: the wheel does
not ship it, so it is taken from the installed version's source distribution, fetched once
from the package index. The line before the last says ``ratio_vs_pgqueuer_tool=<r>``.
procrastinate (one job at a time per worker) is opt-in (``--procrastinate``): it is not a
goal.

Then claim latency (one-item claims, median) with 10k and with 5M rows of history.

    python benchmarks/queue_throughput.py [--processes N] [--items N] [--sweep-items N]
    python benchmarks/queue_throughput.py --items 20000 --sweep-items 5000 --history 100000

The last line is ``ours=<n>/s pgqueuer=<n>/s ratio_vs_pgqueuer=<r>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from renderer import queue  # noqa: E402

KIND = "bench_noop"
# Whether our queue still has work: items waiting (queue_pending) or claimed (a lease row);
# two EXISTS probes, as PgQueuer's drain check is one.
DRAIN_SQL = ("SELECT EXISTS (SELECT 1 FROM queue_pending)"
             " OR EXISTS (SELECT 1 FROM queue_leases)")

if __name__ == "queue_throughput":
    # Imported by our worker processes (RENDERER_PLUGINS=queue_throughput).
    @queue.register(KIND, batch_size=int(os.environ.get("BENCH_BATCH", "500")),
                    time_limit=60)
    def _noop(job: queue.Job) -> None:
        """Nothing: the benchmark measures the queue."""


def _database(server_url: str, name: str) -> str:
    admin = server_url.replace("/renderer?", "/postgres?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.replace("/renderer?", f"/{name}?")


def _drain(url: str, remaining_sql: str, n: int, ready: Any, processes: int,
           enqueue: Callable[[], None], timeout: float = 600) -> float:
    """Wait for the workers, enqueue (one transaction), time the drain; items per second."""
    deadline = time.monotonic() + 120
    while ready.value < processes:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not start")
        time.sleep(0.05)
    time.sleep(0.5)  # let them settle into their idle wait
    enqueue()
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute(remaining_sql).fetchone()[0]:
            if time.perf_counter() - started > timeout:
                raise RuntimeError("the queue did not drain")
            time.sleep(0.02)
    return n / (time.perf_counter() - started)


def _stop(procs: list[Any]) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()


# -- ours ------------------------------------------------------------------------------------

def _ours_child(url: str, ready: Any) -> None:
    import threading

    from renderer import worker

    def announce() -> None:  # ready once this worker's heartbeat row exists
        with psycopg.connect(url, autocommit=True) as conn:
            while not conn.execute("SELECT count(*) FROM queue_workers WHERE info->>'pid' = %s",
                                   [str(os.getpid())]).fetchone()[0]:
                time.sleep(0.02)
        with ready.get_lock():
            ready.value += 1

    threading.Thread(target=announce, daemon=True).start()
    worker.run_worker(url, kinds=[KIND], poll_seconds=1.0, notify=True)


def bench_ours(server_url: str, n: int, processes: int, batch: int = 500) -> float:
    from renderer import schema

    url = _database(server_url, "bench_ours")
    schema.upgrade(url)
    os.environ["RENDERER_PLUGINS"] = "queue_throughput"
    os.environ["BENCH_BATCH"] = str(batch)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Value("i", 0)
    procs = [ctx.Process(target=_ours_child, args=(url, ready)) for _ in range(processes)]
    for p in procs:
        p.start()

    def enqueue() -> None:
        with psycopg.connect(url) as conn:
            queue.enqueue_many(conn, (queue.NewItem(KIND, f"k{i}") for i in range(n)))

    try:
        return _drain(url, DRAIN_SQL, n, ready, processes, enqueue)
    finally:
        _stop(procs)


# -- PgQueuer --------------------------------------------------------------------------------

def _pgq_child(dsn: str, ready: Any, managers: int, batch: int) -> None:
    import asyncpg
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries

    async def main() -> None:
        # As PgQueuer's own benchmark does: several queue managers (dequeue loops), each
        # with its own connection, in one process.
        qms = []
        for _ in range(managers):
            conn = await asyncpg.connect(dsn)
            qm = QueueManager(Queries.from_asyncpg_connection(conn))

            @qm.entrypoint("noop")
            async def noop(job: Any) -> None:
                pass

            qms.append(qm)
        loop = asyncio.get_running_loop()
        for qm in qms:
            loop.add_signal_handler(signal.SIGTERM, qm.shutdown.set)
        with ready.get_lock():
            ready.value += 1
        await asyncio.gather(*(qm.run(batch_size=batch, dequeue_timeout=timedelta(seconds=1))
                               for qm in qms))

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def _dsn(url: str) -> str:
    """libpq URL with host= in the query -> an asyncpg DSN (socket path as host)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return (f"postgresql://{parts.username}@/{parts.path.lstrip('/')}"
            f"?host={query['host'][0]}&port={query.get('port', ['5432'])[0]}")


def bench_pgqueuer(server_url: str, n: int, processes: int, managers: int,
                   batch: int) -> float:
    import asyncpg
    from pgqueuer.queries import Queries

    url = _database(server_url, "bench_pgqueuer")
    dsn = _dsn(url)

    async def install() -> None:
        conn = await asyncpg.connect(dsn)
        await Queries.from_asyncpg_connection(conn).install()
        await conn.close()

    asyncio.run(install())
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Value("i", 0)
    procs = [ctx.Process(target=_pgq_child, args=(dsn, ready, managers, batch))
             for _ in range(processes)]
    for p in procs:
        p.start()

    def enqueue() -> None:
        async def go() -> None:
            conn = await asyncpg.connect(dsn)
            await Queries.from_asyncpg_connection(conn).enqueue(["noop"] * n, [None] * n,
                                                                 [0] * n)
            await conn.close()

        asyncio.run(go())

    try:
        return _drain(url, "SELECT EXISTS (SELECT 1 FROM pgqueuer)", n, ready, processes,
                      enqueue)
    finally:
        _stop(procs)


# -- procrastinate ---------------------------------------------------------------------------

def _proc_app(url: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop")
    def noop() -> None:
        pass

    return app


def _proc_child(url: str, ready: Any) -> None:
    app = _proc_app(url)

    async def main() -> None:
        async with app.open_async():
            with ready.get_lock():
                ready.value += 1
            await app.run_worker_async(concurrency=1, wait=True)

    asyncio.run(main())


def bench_procrastinate(server_url: str, n: int, processes: int) -> float:
    url = _database(server_url, "bench_procrastinate")
    app = _proc_app(url)
    with app.open():
        app.schema_manager.apply_schema()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Value("i", 0)
    procs = [ctx.Process(target=_proc_child, args=(url, ready)) for _ in range(processes)]
    for p in procs:
        p.start()

    def enqueue() -> None:
        async def go() -> None:
            async with app.open_async():
                await app.tasks["noop"].batch_defer_async(*([{}] * n))

        asyncio.run(go())

    try:
        return _drain(url, "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs"
                      " WHERE status IN ('todo', 'doing'))", n, ready, processes, enqueue)
    finally:
        _stop(procs)


# -- claim latency against history -----------------------------------------------------------

def _claim_latency(conn: psycopg.Connection[Any], rounds: int) -> float:
    queue.enqueue_many(conn, (queue.NewItem("bench_lat", f"p{time.time_ns()}-{i}")
                              for i in range(rounds)))
    conn.execute("VACUUM ANALYZE work_queue")
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        items = queue.claim_batch(conn, ["bench_lat"], owner="bench", limits=[1], leases=[60])
        samples.append(time.perf_counter() - started)
        queue.complete(conn, items)
    return statistics.median(samples) * 1000


def _history(conn: psycopg.Connection[Any], start: int, stop: int) -> None:
    step = 1_000_000
    for lo in range(start, stop, step):
        conn.execute("INSERT INTO work_queue (kind, key, state, attempt, started_at, finished_at)"
                     " SELECT 'bench_history', 'h' || g, 'done', 1, now(), now()"
                     " FROM generate_series(%s::bigint, %s::bigint) g",
                     [lo, min(stop, lo + step) - 1])


def bench_latency(server_url: str, small: int, large: int, rounds: int) -> tuple[float, float]:
    from renderer import schema

    url = _database(server_url, "bench_latency")
    schema.upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        _history(conn, 0, small)
        low = _claim_latency(conn, rounds)
        _history(conn, small, large)
        high = _claim_latency(conn, rounds)
    return low, high


def pgqueuer_own_tool(cache: Path) -> Path:
    """PgQueuer's own benchmark script (``tools/benchmark.py``), of the installed version:
    from the installed distribution if it ships it (the wheel does not), else from the
    version's source distribution, fetched once from the package index into ``cache``."""
    from importlib import metadata

    for f in metadata.files("pgqueuer") or []:
        if f.name == "benchmark.py":
            return Path(str(f.locate()))
    version = metadata.version("pgqueuer")
    script = cache / f"pgqueuer-{version}" / "tools" / "benchmark.py"
    if not script.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", f"pgqueuer=={version}",
                        "--no-binary", ":all:", "--no-deps", "--quiet", "--dest", str(cache)],
                       check=True, timeout=300)
        with tarfile.open(cache / f"pgqueuer-{version}.tar.gz") as sdist:
            sdist.extract(f"pgqueuer-{version}/tools/benchmark.py", cache, filter="data")
    return script


def bench_pgqueuer_tool(server_url: str, script: Path, jobs: int, dequeue: int,
                        batch: int) -> float:
    """One run of PgQueuer's own tool, drain strategy (a pre-filled queue drained by
    ``dequeue`` queue managers in one process): its printed rate, jobs/s."""
    import asyncpg
    from pgqueuer.queries import Queries

    url = _database(server_url, "bench_pgqueuer_tool")
    parts = psycopg.conninfo.conninfo_to_dict(url)

    async def install() -> None:
        conn = await asyncpg.connect(_dsn(url))
        await Queries.from_asyncpg_connection(conn).install()
        await conn.close()

    asyncio.run(install())
    out = Path(tempfile.mkdtemp(prefix="pgq-tool-")) / "result.json"
    env = {**os.environ, "PGHOST": str(parts["host"]), "PGPORT": str(parts.get("port", 5432)),
           "PGUSER": str(parts["user"]), "PGDATABASE": str(parts["dbname"])}
    subprocess.run([sys.executable, str(script), "--strategy", "drain", "--driver", "apg",
                    "--jobs", str(jobs), "--dequeue", str(dequeue),
                    "--dequeue-batch-size", str(batch), "--output-json", str(out)],
                   env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)
    rate = float(json.loads(out.read_text())["rate"])
    shutil.rmtree(out.parent)
    return rate


def sweep(label: str, run: Callable[..., float], grid: list[dict[str, int]]) -> dict[str, int]:
    """Run each setting of the grid once; print and return the fastest."""
    best, best_rate = grid[0], 0.0
    for setting in grid:
        rate = run(**setting)
        print(f"  sweep {label} {setting}: {rate:.0f}/s", flush=True)
        if rate > best_rate:
            best, best_rate = setting, rate
    print(f"  best {label}: {best}", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--items", type=int, default=100_000,
                        help="no-op items, the same for every contender")
    parser.add_argument("--sweep-items", type=int, default=20_000,
                        help="items per sweep setting (0: no sweep, defaults)")
    parser.add_argument("--procrastinate", action="store_true",
                        help="also race procrastinate (slow: one job at a time per worker)")
    parser.add_argument("--history", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=500, help="claims per latency sample")
    parser.add_argument("--only", choices=["ours", "pgqueuer", "procrastinate", "latency"])
    parser.add_argument("--tool-cache", default=str(Path.home() / ".cache" / "renderer-bench"),
                        help="where PgQueuer's source distribution is kept for its own tool")
    args = parser.parse_args()

    from renderer.localdb import Cluster

    home = Path(tempfile.mkdtemp(prefix="renderer-bench-"))
    cluster = Cluster(home)
    server_url = cluster.ensure_started()
    print(f"PostgreSQL in {home}; {args.processes} worker processes per system; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    results: dict[str, float] = {}
    ours_best: dict[str, int] = {"batch": 500}
    pgq_best: dict[str, int] = {"batch": 500, "managers": 1}
    try:
        if args.sweep_items:
            if args.only in (None, "ours"):
                ours_best = sweep("ours", lambda batch: bench_ours(
                    server_url, args.sweep_items, args.processes, batch),
                    [{"batch": b} for b in (100, 500, 1000)])
            if args.only in (None, "pgqueuer"):
                pgq_best = sweep("pgqueuer", lambda batch, managers: bench_pgqueuer(
                    server_url, args.sweep_items, args.processes, managers, batch),
                    [{"batch": b, "managers": m} for b in (100, 500) for m in (1, 5)])
        if args.only in (None, "ours"):
            results["ours"] = bench_ours(server_url, args.items, args.processes,
                                         ours_best["batch"])
            print(f"ours: {args.items} items at {ours_best}, {results['ours']:.0f}/s",
                  flush=True)
        if args.only in (None, "pgqueuer"):
            results["pgqueuer"] = bench_pgqueuer(server_url, args.items, args.processes,
                                                 pgq_best["managers"], pgq_best["batch"])
            print(f"pgqueuer: {args.items} jobs at {pgq_best}, {results['pgqueuer']:.0f}/s",
                  flush=True)
            script = pgqueuer_own_tool(Path(args.tool_cache))
            tool_best = sweep("pgqueuer's own tool", lambda dequeue, batch: bench_pgqueuer_tool(
                server_url, script, args.sweep_items or args.items, dequeue, batch),
                [{"dequeue": d, "batch": b} for d in (2, 5, 10) for b in (10, 100, 500)])
            results["pgqueuer_tool"] = bench_pgqueuer_tool(server_url, script, args.items,
                                                           **tool_best)
            print(f"pgqueuer's own tool ({script}, drain): {args.items} jobs at "
                  f"{tool_best}, {results['pgqueuer_tool']:.0f}/s", flush=True)
        if args.procrastinate or args.only == "procrastinate":
            results["procrastinate"] = bench_procrastinate(server_url, args.items,
                                                           args.processes)
            print(f"procrastinate: {args.items} jobs, {results['procrastinate']:.0f}/s",
                  flush=True)
        if args.only in (None, "latency"):
            low, high = bench_latency(server_url, 10_000, args.history, args.rounds)
            print(f"claim latency (median of {args.rounds}): {low:.3f} ms with 10k rows, "
                  f"{high:.3f} ms with {args.history / 1e6:g}M rows, "
                  f"ratio {high / low:.2f}", flush=True)
    finally:
        cluster.stop()
    ours, pgq = results.get("ours", 0.0), results.get("pgqueuer", 0.0)
    print(f"load average: {os.getloadavg()[0]:.1f}")
    if results.get("pgqueuer_tool"):
        print(f"pgqueuer_tool={results['pgqueuer_tool']:.0f}/s "
              f"ratio_vs_pgqueuer_tool={ours / results['pgqueuer_tool']:.2f}")
    print(f"ours={ours:.0f}/s pgqueuer={pgq:.0f}/s "
          f"ratio_vs_pgqueuer={ours / pgq if pgq else 0:.2f}")


if __name__ == "__main__":
    main()
