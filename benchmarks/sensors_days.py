"""The sensors day page (``/sensors/days/{day}``) read from the per-detector summary its
enrichment writes (``sensors_day_detectors``) against the aggregate over the day's rows, and
the enrichment's cost of writing that summary.

``prepare FOLDER``: a private cluster in FOLDER (left running), a scratch database at head,
two days of ``--detectors`` x 1,440 minutes generated as ``benchmarks/sensors.py`` does, the
second enriched by the C engine (summary included); prints the database URL.

``reads URL``: the page's read on the enriched day, median ms of ``--reps``: the first view
of a day without summary rows (``web_sensors.day_fill`` then ``day_ranking``, in a
transaction rolled back; the page's read before the summary aggregated much as the fill
does) against the read of the summary (``web_sensors.day_ranking``), both at the page's
limit (500) and at 50, results compared equal; then ``day_data`` whole (what the page and
its JSON twin call), the sparklines' points alone (memoised, warm as in a serving process,
against point by point as before; the text compared equal), and the page and its JSON twin
over HTTP in process (FastAPI's test client: the sparklines and the template included).
Last line ``day_page_ratio=R``, filled / summary at the page's limit.

``enrich URL``: one enrichment of the day by the C engine in its own transaction, committed;
prints wall, client CPU and its backend's CPU (from /proc) as one line. Run it from two trees
in turn (the one before the summary and this one, the tree chosen by ``PYTHONPATH``) to pair
the enrichment's cost before and after.

``stop FOLDER``: stop the cluster and remove the folder.

    .venv/bin/python benchmarks/sensors_days.py prepare /tmp/x [--detectors 1000]
    .venv/bin/python benchmarks/sensors_days.py reads URL [--reps 7]
    .venv/bin/python benchmarks/sensors_days.py enrich URL
    .venv/bin/python benchmarks/sensors_days.py stop /tmp/x
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from scratch import scratch_database
from sensors import START, generate

from renderer.db import connect, query
from renderer.localdb import Cluster
from renderer.sensors.enrich import enrich_day

TICK = os.sysconf("SC_CLK_TCK")
DAY = START + timedelta(days=1)


def backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def prepare(folder: Path, detectors: int) -> None:
    url = scratch_database(Cluster(folder).ensure_started(), "renderer_bench_sensors_days")
    generate(url, 2, detectors)
    with connect(url) as conn:
        enrich_day(conn, DAY, "c")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    print(url)


def _timed(conn: psycopg.Connection, statement: str, params: dict[str, object],
           reps: int) -> tuple[float, list[object]]:
    took, rows = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        rows = conn.execute(statement, params).fetchall()
        took.append(time.perf_counter() - t0)
    return statistics.median(took) * 1000, rows


def _filled(conn: psycopg.Connection, params: dict[str, object],
            reps: int) -> tuple[float, list[object]]:
    """The first view of the day had its summary not been written: filled, then read."""
    took, rows = [], []
    for _ in range(reps):
        with conn.transaction(force_rollback=True):
            conn.execute("DELETE FROM sensors_day_detectors WHERE day = %(day)s", params)
            t0 = time.perf_counter()
            conn.execute(query("web_sensors.day_fill"), params)
            rows = conn.execute(query("web_sensors.day_ranking"), params).fetchall()
            took.append(time.perf_counter() - t0)
    return statistics.median(took) * 1000, rows


def _polylines_unmemoised(values: list[float | None], frame: Any) -> list[str]:
    """The sparkline's point lists formatted point by point, as svg._polylines did before
    it memoised them by frame: the contender of the memo."""
    from renderer.web.svg import _n

    runs: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{_n(frame.x(i))},{_n(frame.y(v))}")
    return [" ".join(r) for r in runs if r]


def reads(url: str, reps: int) -> None:
    # function-level imports: the web package is needed by this subcommand only
    from fastapi.testclient import TestClient

    from renderer.config import Settings
    from renderer.web import svg
    from renderer.web.app import create_app
    from renderer.web.sensor_pages import MAX_DETECTORS, day_data

    print(f"the page's read on {DAY} (median ms of {reps}; load {os.getloadavg()[0]:.1f})")
    ratio = 0.0
    with psycopg.connect(url, autocommit=True) as conn:
        detectors = conn.execute("SELECT count(*) FROM sensors_day_detectors WHERE day = %s",
                                 [DAY]).fetchone()
        print(f"  summary rows of the day: {detectors[0] if detectors else 0}")
        for limit in (MAX_DETECTORS, 50):
            params: dict[str, object] = {"day": DAY, "limit": limit}
            old, expected = _filled(conn, params, reps)
            new, got = _timed(conn, query("web_sensors.day_ranking"), params, reps)
            same = [tuple(r) for r in got] == [tuple(r) for r in expected]
            print(f"  limit {limit:4d}: filled {old:9.1f} ms  summary {new:7.1f} ms"
                  f"  ({old / new:.0f}x)  equal: {same}", flush=True)
            if limit == MAX_DETECTORS:
                ratio = old / new
    with connect(url) as conn:
        took = []
        for _ in range(reps):
            t0 = time.perf_counter()
            data = day_data(conn, DAY)
            took.append(time.perf_counter() - t0)
    print(f"  day_data (the page's data, {data['shown']} detectors, from_summary"
          f" {data['from_summary']}): {statistics.median(took) * 1000:.1f} ms")
    series = [d["mean_by_10_minutes"] for d in data["detectors"]]
    frame = svg._Frame(left=1, top=1, width=142, height=22, xmax=143, ymax=125.0)
    for name, draw in (("memoised (svg._polylines)", svg._polylines),
                       ("point by point (before)", _polylines_unmemoised)):
        took = []
        for _ in range(reps):  # the page's sparklines' points alone, on the day's values
            t0 = time.perf_counter()
            drawn = [draw(values, frame) for values in series]
            took.append(time.perf_counter() - t0)
        print(f"  {len(series)} sparklines' points, {name}:"
              f" {statistics.median(took) * 1000:.1f} ms", flush=True)
        if draw is svg._polylines:
            memoised = drawn
    print(f"  the same text: {drawn == memoised}")
    with tempfile.TemporaryDirectory(prefix="renderer-bench-sensors-days-") as home:
        settings = Settings(database_url=url, home=Path(home),
                            storage=(Path(home) / "store").as_uri())
        with TestClient(create_app(settings, url=url, run_scheduler=False)) as client:
            for path in (f"/api/sensors/days/{DAY}", f"/sensors/days/{DAY}"):
                took = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    body = client.get(path).raise_for_status().content
                    took.append(time.perf_counter() - t0)
                print(f"  GET {path} in process: {len(body) / 1e6:.2f} MB,"
                      f" {statistics.median(took) * 1000:.1f} ms", flush=True)
    print(f"day_page_ratio={ratio:.0f}")


def enrich(url: str) -> None:
    with connect(url) as conn:
        pid = conn.info.backend_pid
        s0, c0, w0 = backend_cpu(pid), time.process_time(), time.perf_counter()
        rows = enrich_day(conn, DAY, "c")
        conn.commit()
        server = backend_cpu(pid) - s0
        summary = conn.execute("SELECT count(*) AS n FROM sensors_day_detectors"
                               " WHERE day = %(day)s", {"day": DAY}).fetchone()
    print(f"enrich {DAY}: {rows} rows, summary rows {summary['n'] if summary else 0}; wall"
          f" {time.perf_counter() - w0:.3f} client {time.process_time() - c0:.3f}"
          f" server {server:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["prepare", "reads", "enrich", "stop"])
    parser.add_argument("target", help="the cluster's folder (prepare, stop) or the URL")
    parser.add_argument("--detectors", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    if args.what == "prepare":
        prepare(Path(args.target), args.detectors)
    elif args.what == "reads":
        reads(args.target, args.reps)
    elif args.what == "enrich":
        enrich(args.target)
    else:
        Cluster(Path(args.target)).stop()
        shutil.rmtree(args.target, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
