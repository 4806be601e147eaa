"""Where a pipeline's CPU goes: the database server's against the workers' (issue 17, item 5).

Runs each pipeline's commands on a generated sample against a private embedded cluster (a
scratch database per pipeline), and counts CPU seconds on both sides:

- server: every process of the cluster (backends, WAL writer, checkpointer, autovacuum):
  the postmaster's own CPU and its reaped children's (so backends that exit before the end
  count whole, however short-lived) plus its live children's, from /proc (10 ms ticks);
- workers: the ``renderer`` command and every process it waited for (its pool's workers),
  from ``getrusage(RUSAGE_CHILDREN)``; a command's start-up (interpreter, imports, connect,
  schema check: ``renderer queue status``, best of three) is measured too, and taken off
  the tiles and tracks figures once (what a long-running worker pays once, not per item).

The pipelines (``--pipelines``, default all three):

- ``traffic``: ``renderer traffic run`` of the sample (as benchmarks/traffic_run.py): per
  item done and per histogram row written (``traffic_histograms``);
- ``tiles``: ``renderer tiles sample --import`` (timed apart: per region), then
  ``renderer tiles render --wait`` (zoom levels, arcs, shapes, then every block item in that
  one process): per tile rendered (``tiles``);
- ``tracks``: ``renderer tracks ingest`` of ``renderer tracks sample``'s files: per report
  accepted; then ``--queries`` queries of each of benchmarks/tracks.py's four shapes through
  ``renderer.tracks.query.run`` on one connection (as the service's pool runs them): the
  backend's CPU and this process's (rows built as the CLI and HTTP get them) per query.

Each prints the ratio workers / server: how many worker cores one server core keeps busy.

    .venv/bin/python benchmarks/pipeline_cost.py [--pipelines traffic,tiles,tracks]
        [--tiles 4 --days 7 --scale 24 --processes 2] [--cols 64 --rows 48 --max-zoom 14]
        [--vessels 100 --track-days 7 --queries 20]

The last line holds ``key=value`` pairs: ``server_us_per_item``,
``server_us_per_histogram_row``, ``worker_cores_per_server_core`` (traffic, as before),
``tiles_server_ms_per_tile``, ``tiles_worker_cores_per_server_core``,
``tracks_server_us_per_report``, ``tracks_worker_cores_per_server_core``,
``tracks_query_server_ms``, ``tracks_query_client_ms`` (means over the four shapes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from scratch import cluster_seconds, scratch_database
from tracks import START, shapes

from renderer.db import connect
from renderer.localdb import Cluster
from renderer.tracks import sample as track_sample
from renderer.tracks.query import run
from renderer.traffic.sample import generate

ROOT = Path(__file__).resolve().parent.parent
RENDERER = str(ROOT / ".venv/bin/renderer")


class ServerCpu:
    """The cluster's CPU seconds since this was made."""

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster
        self.before = cluster_seconds(postmaster)

    def total(self) -> float:
        return cluster_seconds(self.postmaster) - self.before


@dataclass
class Measured:
    wall: float
    server: float
    workers: float
    stdout: str

    @property
    def ratio(self) -> float:
        return self.workers / self.server


@dataclass
class Bench:
    """The cluster, its postmaster and the environment of the commands."""

    cluster: Cluster
    server_url: str
    home: Path
    postmaster: int

    def env(self, url: str) -> dict[str, str]:
        return {**os.environ, "RENDERER_DATABASE_URL": url, "RENDERER_HOME": str(self.home),
                "RENDERER_STORAGE": (self.home / "store").as_uri()}

    def start_up(self, url: str) -> float:
        """CPU seconds of a command that does next to nothing but start, connect and check
        the schema (``renderer queue status``): what every measured command pays once."""
        return min(self.measure(url, "queue", "status", "--json").workers for _ in range(3))

    def measure(self, url: str, *args: str) -> Measured:
        """Run ``renderer -q ARGS`` and count the server's and the command's CPU."""
        server = ServerCpu(self.postmaster)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([RENDERER, "-q", *args], capture_output=True, text=True,
                              env=self.env(url), check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_s = server.total()
        if done.returncode != 0:
            sys.exit(f"renderer {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        workers = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        return Measured(wall, server_s, workers, done.stdout)


def count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def traffic(bench: Bench, args: argparse.Namespace) -> dict[str, float]:
    url = scratch_database(bench.server_url, "renderer_bench_cost_traffic")
    base = bench.start_up(url)
    made = generate(bench.home / "sample", tiles=args.tiles, days=args.days, seed=1,
                    scale=args.scale)
    print(f"traffic sample: {made.files:,} files, {made.rows:,} rows, "
          f"{made.observations:,} observations, {len(made.tiles)} tiles, {args.days} days")
    m = bench.measure(url, "traffic", "run", "--source", str(made.root), "--processes",
                      str(args.processes), "--after", "keep", "--json")
    summary = json.loads(m.stdout)
    rows = count(url, "SELECT count(*) FROM traffic_histograms")
    items = summary["items_done"]
    print(f"traffic run: {m.wall:.1f} s, {items:,} items, {rows:,} histogram rows, "
          f"{summary['speed_tiles']} speed tiles; {load()}")
    print(f"  server CPU {m.server:.2f} s: {m.server / items * 1e6:,.0f} us an item, "
          f"{m.server / rows * 1e6:.2f} us a histogram row")
    print(f"  workers CPU {m.workers:.2f} s: {m.workers / items * 1e6:,.0f} us an item; "
          f"workers / server {m.ratio:.2f} ({(m.workers - base) / m.server:.2f} less one "
          f"command start-up of {base:.2f} s)")
    return {"server_us_per_item": m.server / items * 1e6,
            "server_us_per_histogram_row": m.server / rows * 1e6,
            "worker_cores_per_server_core": m.ratio}


def tiles(bench: Bench, args: argparse.Namespace) -> dict[str, float]:
    url = scratch_database(bench.server_url, "renderer_bench_cost_tiles")
    base = bench.start_up(url)
    folder = bench.home / "regions"
    imported = bench.measure(url, "tiles", "sample", str(folder), "--cols", str(args.cols),
                             "--rows", str(args.rows), "--no-natural-earth", "--import")
    regions = count(url, "SELECT count(*) FROM regions")
    print(f"tiles import: {regions:,} regions in {imported.wall:.1f} s; server CPU "
          f"{imported.server:.2f} s ({imported.server / regions * 1e3:.2f} ms a region), "
          f"command {imported.workers:.2f} s; {load()}")
    m = bench.measure(url, "tiles", "render", "--max-zoom", str(args.max_zoom), "--wait",
                      "--json")
    made = count(url, "SELECT count(*) FROM tiles")
    items = count(url, "SELECT count(*) FROM work_queue WHERE state = 'done'")
    print(f"tiles render: {m.wall:.1f} s, {made:,} tiles (zooms 0-{args.max_zoom}), "
          f"{items} items; {load()}")
    print(f"  server CPU {m.server:.2f} s: {m.server / made * 1e3:.3f} ms a tile")
    work = m.workers - base
    print(f"  worker CPU {m.workers:.2f} s, {work:.2f} s less the command's start-up "
          f"({base:.2f} s): {work / made * 1e3:.3f} ms a tile; workers / server "
          f"{work / m.server:.2f}")
    return {"tiles_server_ms_per_tile": m.server / made * 1e3,
            "tiles_worker_ms_per_tile": work / made * 1e3,
            "tiles_worker_cores_per_server_core": work / m.server}


def backend_cpu(pid: int) -> float:
    """CPU seconds of one process, to the nanosecond (/proc's ticks are 10 ms: a query's
    share is often less)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def tracks(bench: Bench, args: argparse.Namespace) -> dict[str, float]:
    url = scratch_database(bench.server_url, "renderer_bench_cost_tracks")
    base = bench.start_up(url)
    folder = bench.home / "reports"
    start = START.date().isoformat()
    subprocess.run([RENDERER, "-q", "tracks", "sample", "--out", str(folder), "--vessels",
                    str(args.vessels), "--days", str(args.track_days), "--start", start],
                   env=bench.env(url), check=True, capture_output=True)
    m = bench.measure(url, "tracks", "ingest", str(folder), "--json")
    reports = json.loads(m.stdout)["rows"]["rows_accepted"]
    print(f"tracks ingest: {m.wall:.1f} s, {reports:,} reports ({args.vessels} vessels, "
          f"{args.track_days} days, the sample's four formats); {load()}")
    print(f"  server CPU {m.server:.2f} s: {m.server / reports * 1e6:.1f} us a report")
    work = m.workers - base
    print(f"  worker CPU {m.workers:.2f} s, {work:.2f} s less the command's start-up "
          f"({base:.2f} s): {work / reports * 1e6:.1f} us a report; workers / server "
          f"{work / m.server:.2f}")
    out = {"tracks_server_us_per_report": m.server / reports * 1e6,
           "tracks_worker_us_per_report": work / reports * 1e6,
           "tracks_worker_cores_per_server_core": work / m.server}
    # The same reports the CLI wrote (same generator, arguments and seed), for the shapes.
    made = track_sample.generate(vessels=args.vessels, days=args.track_days, start=START)
    makers = shapes(made, args.track_days, random.Random(7))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    server_ms, client_ms = [], []
    with connect(url) as conn:
        pid = int(conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])  # type: ignore[index]
        conn.commit()
        for name, make in makers.items():
            queries = [make() for _ in range(args.queries)]
            for q in queries[:2]:  # warm the caches and the plans
                sum(1 for _ in run(conn, q).rows)
            rows = 0
            server0, client0 = backend_cpu(pid), time.process_time()
            for q in queries:
                rows += sum(1 for _ in run(conn, q).rows)
            server = backend_cpu(pid) - server0
            client = time.process_time() - client0
            server_ms.append(server / len(queries) * 1e3)
            client_ms.append(client / len(queries) * 1e3)
            print(f"  query {name}: {len(queries)} queries, {rows / len(queries):,.0f} rows "
                  f"each: server {server_ms[-1]:.2f} ms, client {client_ms[-1]:.2f} ms a "
                  f"query; client / server {client / server if server else float('nan'):.2f}")
    print(f"tracks queries: {load()}")
    out["tracks_query_server_ms"] = sum(server_ms) / len(server_ms)
    out["tracks_query_client_ms"] = sum(client_ms) / len(client_ms)
    return out


PIPELINES = {"traffic": traffic, "tiles": tiles, "tracks": tracks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=24.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cols", type=int, default=64)
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--max-zoom", type=int, default=14)
    parser.add_argument("--vessels", type=int, default=100)
    parser.add_argument("--track-days", type=int, default=7)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    chosen = [p for p in args.pipelines.split(",") if p]
    unknown = [p for p in chosen if p not in PIPELINES]
    if unknown:
        sys.exit(f"unknown pipelines {unknown}; known: {', '.join(PIPELINES)}")

    home = Path(tempfile.mkdtemp(prefix="renderer-bench-pipeline-"))
    cluster = Cluster(home / "cluster")
    server_url = cluster.ensure_started()
    found: dict[str, Any] = {}
    try:
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        bench = Bench(cluster, server_url, home, postmaster)
        for name in chosen:
            found.update(PIPELINES[name](bench, args))
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(" ".join(f"{k}={v:.2f}" if k != "server_us_per_item" else f"{k}={v:.0f}"
                   for k, v in found.items()))


if __name__ == "__main__":
    main()
