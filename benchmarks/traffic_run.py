"""Benchmark (b) of issue 5: ``renderer traffic run`` on the sample, end to end.

Generates the sample of ``make run`` (not timed), then runs ``renderer traffic run --source
SAMPLE --processes N --json`` against a scratch database and a scratch store: submit, then
every stage (histograms, weekly speed tiles, reference tiles, coverage) until the queue is
idle. Reports the observations per second of the whole run (the command's own clock, from
the submit to the last item) and the peak resident memory (VmHWM) of each worker process
and of the supervisor, read from /proc while the run goes.

    .venv/bin/python benchmarks/traffic_run.py [--tiles 4 --days 7 --scale 24 --processes 4]

Uses the configured database server (RENDERER_DATABASE_URL or the embedded cluster) with a
scratch database ``renderer_bench_run`` that it drops afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from scratch import drop_database, scratch_database

from renderer import config
from renderer.db import resolve_url
from renderer.traffic.sample import generate

BENCH_DB = "renderer_bench_run"
ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _peak_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class MemoryWatch(threading.Thread):
    """Polls the peak RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peaks: dict[int, tuple[int, str]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            todo = [self.pid]
            while todo:
                pid = todo.pop()
                peak = _peak_kib(pid)
                if peak is not None:
                    name = self.peaks.get(pid, (0, ""))[1] or _name(pid)
                    self.peaks[pid] = (max(peak, self.peaks.get(pid, (0, ""))[0]), name)
                todo += _children(pid)
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2 * (os.cpu_count() or 1))
    args = parser.parse_args()

    server = resolve_url(config.load())
    url = scratch_database(server, BENCH_DB)
    try:
        with tempfile.TemporaryDirectory(prefix="renderer-bench-run-") as tmp:
            made = generate(Path(tmp) / "sample", tiles=args.tiles, days=args.days,
                            seed=args.seed, scale=args.scale)
            print(f"sample: {made.files:,} files, {made.rows:,} rows, "
                  f"{made.observations:,} observations, {len(made.tiles)} tiles, "
                  f"{args.days} days, modes {', '.join(made.modes)}")
            env = {**os.environ, "RENDERER_DATABASE_URL": url, "RENDERER_HOME": tmp,
                   "RENDERER_STORAGE": (Path(tmp) / "store").as_uri()}
            started = time.perf_counter()
            process = subprocess.Popen(
                [str(ROOT / ".venv/bin/renderer"), "-q", "traffic", "run", "--source",
                 str(made.root), "--processes", str(args.processes), "--after", "keep",
                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            watch = MemoryWatch(process.pid)
            watch.start()
            out, err = process.communicate()
            wall = time.perf_counter() - started
            watch.stop.set()
            watch.join()
            if process.returncode != 0:
                sys.exit(f"renderer traffic run failed: {err.strip()}")
            summary = json.loads(out)
    finally:
        drop_database(server, BENCH_DB)
    workers = [kib for pid, (kib, name) in watch.peaks.items()
               if "multiprocessing" in name and "resource_tracker" not in name]
    supervisor = watch.peaks.get(process.pid, (0, ""))[0]
    print(f"run:    {summary['seconds']:.1f} s ({wall:.1f} s with interpreter start), "
          f"{summary['processes']} workers, {summary['items_done']:,} items, "
          f"{summary['items_failed']} failed")
    print(f"built:  {summary['speed_tiles']} speed tiles, {summary['reference_tiles']} "
          f"reference tiles, {summary['files_written']} files, coverage "
          f"{summary['coverage_features']} tiles")
    print(f"memory: workers peak {max(workers, default=0) / 1024:.0f} MiB "
          f"(each: {', '.join(f'{k / 1024:.0f}' for k in sorted(workers))} MiB), "
          f"supervisor {supervisor / 1024:.0f} MiB")
    print(f"observations/s end to end: {summary['observations_per_second']:,.0f} "
          f"({summary['observations']:,} observations)")


if __name__ == "__main__":
    main()
