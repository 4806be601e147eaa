"""Ingest of issue 15 alone: ``tracks ingest`` against a plain COPY of the same CSV files.

Generates ``--reports`` reports once (``renderer.tracks.sample``, arrival order) into CSV
files of ``--per-file`` reports under ``--cache`` (kept between runs, so that two checkouts
ingest the same bytes), then in a scratch database: a plain ``COPY (FORMAT csv)`` of the
files into an unindexed, unpartitioned table, and ``renderer.tracks.ingest.ingest`` of
them. Prints wall seconds and CPU seconds of the client and of the server (the cluster's
processes, from /proc: the postmaster's reaped children plus the live ones), for both.

    RENDERER_HOME=/tmp/x .venv/bin/python benchmarks/tracks_ingest.py --reports 600000

To compare checkouts, run it with ``PYTHONPATH=<other checkout>`` (same cache).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from scratch import drop_database, scratch_database
from tracks import plain_copy

from renderer.db import Database, connect, resolve_url
from renderer.tracks import sample
from renderer.tracks.ingest import ingest

BENCH_DB = "renderer_bench_tracks_ingest"
PER_VESSEL_DAY = 481


def _ticks(pid: int, children: bool) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15 if children else 13])


def server_cpu(postmaster: int | None) -> float:
    """CPU seconds of the cluster so far: postmaster, reaped and live children."""
    if postmaster is None:
        return float("nan")
    total = _ticks(postmaster, True)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                total += _ticks(int(entry.name), False)
    return total / os.sysconf("SC_CLK_TCK")


def client_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def postmaster_pid(url: str) -> int | None:
    """The parent of a backend of ours, when the server runs on this machine."""
    with connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
    assert row is not None
    try:
        stat = Path(f"/proc/{row['pid']}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def timed(postmaster: int | None, work: object) -> tuple[float, float, float]:
    w, c, s = time.perf_counter(), client_cpu(), server_cpu(postmaster)
    assert callable(work)
    work()
    wall = time.perf_counter() - w
    time.sleep(1)  # the closed connection's backend reaped, its CPU in the postmaster's
    return wall, client_cpu() - c, server_cpu(postmaster) - s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=600_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-file", type=int, default=250_000)
    parser.add_argument("--cache", default="/tmp/tracks-ingest-cache")
    args = parser.parse_args()

    folder = Path(args.cache) / f"{args.reports}-{args.days}-{args.per_file}"
    if not folder.exists():
        vessels = max(10, round(args.reports / (args.days * PER_VESSEL_DAY)))
        reports = sample.generate(vessels=vessels, days=args.days, interval=15, seed=1)
        sample.write(reports, folder / "tmp", "csv", per_file=args.per_file)
        (folder / "tmp").rename(folder / "csv")
    paths = sorted((folder / "csv").glob("*.csv"))
    n = sum(p.read_bytes().count(b"\n") - 1 for p in paths)

    server = resolve_url()
    url = scratch_database(server, BENCH_DB)
    pm = postmaster_pid(url)
    try:
        copy = timed(pm, lambda: plain_copy(url, paths))
        mine = timed(pm, lambda: ingest(Database(url), [str(p) for p in paths]))
    finally:
        drop_database(server, BENCH_DB)
    for name, (wall, cpu_c, cpu_s) in (("plain COPY", copy), ("tracks ingest", mine)):
        print(f"{name:14} {n / wall:10,.0f} reports/s  wall {wall:6.1f} s  client CPU "
              f"{cpu_c:6.1f} s  server CPU {cpu_s:6.1f} s")
    print(f"reports={n} files={len(paths)} ratio={copy[0] / mine[0]:.3f} "
          f"cpu_ratio={(copy[1] + copy[2]) / (mine[1] + mine[2]):.3f}")


if __name__ == "__main__":
    main()
