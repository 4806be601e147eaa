"""Where a pipeline's CPU goes: the database server's against the workers' (issue 17, item 5).

Runs ``renderer traffic run`` on a generated sample (as benchmarks/traffic_run.py) against a
private embedded cluster, and counts CPU seconds on both sides:

- server: every process of the cluster (backends, WAL writer, checkpointer, autovacuum),
  sampled from /proc every 0.2 s so that backends which exit before the end still count
  (up to 0.2 s of each one's last moments is lost);
- workers: the ``renderer`` command and every process it waited for (its pool's workers),
  from ``getrusage(RUSAGE_CHILDREN)``.

Prints per item done and per histogram row written (``traffic_histograms``), and the ratio
workers / server: how many worker cores one server core keeps busy on this pipeline.

    .venv/bin/python benchmarks/pipeline_cost.py [--tiles 4 --days 7 --scale 24 --processes 2]

The last line is ``server_us_per_item=.. server_us_per_histogram_row=..
worker_cores_per_server_core=..``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from queue_cost import cluster_cpu

from renderer import schema
from renderer.localdb import Cluster
from renderer.traffic.sample import generate

ROOT = Path(__file__).resolve().parent.parent


class ServerCpu(threading.Thread):
    """The cluster's CPU seconds by pid, sampled until stopped."""

    def __init__(self, postmaster: int) -> None:
        super().__init__(daemon=True)
        self.postmaster = postmaster
        self.before = cluster_cpu(postmaster)
        self.seen: dict[int, float] = dict(self.before)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.seen.update(cluster_cpu(self.postmaster))

    def total(self) -> float:
        self.seen.update(cluster_cpu(self.postmaster))
        return sum(c - self.before.get(p, 0.0) for p, c in self.seen.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=24.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="renderer-bench-pipeline-"))
    cluster = Cluster(home / "cluster")
    url = cluster.ensure_started()
    try:
        schema.upgrade(url)
        made = generate(home / "sample", tiles=args.tiles, days=args.days, seed=1,
                        scale=args.scale)
        print(f"sample: {made.files:,} files, {made.rows:,} rows, "
              f"{made.observations:,} observations, {len(made.tiles)} tiles, {args.days} days")
        env = {**os.environ, "RENDERER_DATABASE_URL": url, "RENDERER_HOME": str(home),
               "RENDERER_STORAGE": (home / "store").as_uri()}
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        server = ServerCpu(postmaster)
        server.start()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [str(ROOT / ".venv/bin/renderer"), "-q", "traffic", "run", "--source",
             str(made.root), "--processes", str(args.processes), "--after", "keep", "--json"],
            capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_s = server.total()
        server.stop.set()
        if done.returncode != 0:
            sys.exit(f"renderer traffic run failed: {done.stderr.strip()}")
        summary = json.loads(done.stdout)
        workers_s = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT count(*) FROM traffic_histograms").fetchone()[0]
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    items = summary["items_done"]
    print(f"run: {wall:.1f} s, {items:,} items, {rows:,} histogram rows, "
          f"{summary['speed_tiles']} speed tiles; load average {os.getloadavg()[0]:.1f}")
    print(f"server CPU {server_s:.2f} s: {server_s / items * 1e6:,.0f} us an item, "
          f"{server_s / rows * 1e6:.2f} us a histogram row")
    print(f"workers CPU {workers_s:.2f} s (interpreter start-up included): "
          f"{workers_s / items * 1e6:,.0f} us an item")
    print(f"server_us_per_item={server_s / items * 1e6:.0f} "
          f"server_us_per_histogram_row={server_s / rows * 1e6:.2f} "
          f"worker_cores_per_server_core={workers_s / server_s:.2f}")


if __name__ == "__main__":
    main()
