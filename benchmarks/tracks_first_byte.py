"""Time to the first row of the area queries as a user gets it: ``renderer tracks query``
through a pipe, and ``GET /api/tracks`` from ``renderer serve``, on a database of generated
reports (e.g. one kept by ``benchmarks/tracks_scale.py --keep``).

For ``--runs`` random 10-degree boxes around the sample's ports: bbox + one day (every
report) and bbox + the month, hourly (through the hourly summary), each as

- the CLI: from the process's start (Python start-up and imports included) to the first
  data line read from its stdout (``--format ndjson``: every line is a row), and to its end;
- the API: from the request to the first row's bytes (``format=ndjson``, the first chunk
  is the first row alone) and to the end of the body, over one server process.

Prints p50/p95 of each, ms.

    .venv/bin/python benchmarks/tracks_first_byte.py --url URL --runs 10
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from tracks import percentile

from renderer.tracks import sample

START = datetime(2026, 12, 1, tzinfo=UTC)


def box(lat: float, lon: float, half: float = 5) -> str:
    return (f"{max(-90, lat - half)},{max(-180, lon - half)},{min(90, lat + half)},"
            f"{min(180, lon + half)}")


def queries(rng: random.Random, days: int, runs: int) -> dict[str, list[dict[str, str]]]:
    end = (START + timedelta(days=days) - timedelta(microseconds=1)).isoformat()
    made: dict[str, list[dict[str, str]]] = {"bbox_day": [], "bbox_month_hourly": []}
    for _ in range(runs):
        _, lat, lon = rng.choice(sample.PORTS)
        day = (START + timedelta(days=rng.randrange(days))).date().isoformat()
        made["bbox_day"].append({"bbox": box(lat, lon), "from": day, "to": day})
        _, lat, lon = rng.choice(sample.PORTS)
        made["bbox_month_hourly"].append({"bbox": box(lat, lon), "from": START.isoformat(),
                                          "to": end, "sample": "1h"})
    return made


def cli(env: dict[str, str], params: dict[str, str]) -> tuple[float, float, int]:
    args = [sys.executable, "-m", "renderer", "tracks", "query", "--format", "ndjson"]
    for key, value in params.items():
        args += [f"--{key}", value]
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    first = None
    rows = 0
    for _ in proc.stdout:
        if first is None:
            first = time.perf_counter() - started
        rows += 1
    proc.wait()
    total = time.perf_counter() - started
    return (first if first is not None else total), total, rows


PAGE = 100_000  # the API's largest page (renderer.web.tracks.MAX_LIMIT)


def api(port: int, params: dict[str, str]) -> tuple[float, float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", "/api/tracks?" + urlencode({**params, "format": "ndjson",
                                                    "limit": PAGE}))
    response = conn.getresponse()
    assert response.status == 200, response.read()[:300]
    first = None
    body = b""
    while chunk := response.read1(65536):
        if first is None:
            first = time.perf_counter() - started
        body += chunk
    total = time.perf_counter() - started
    conn.close()
    return (first if first is not None else total), total, body.count(b"\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="The database of generated reports.")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    env = {**os.environ, "RENDERER_DATABASE_URL": args.url}
    env.pop("PYTHONUNBUFFERED", None)  # as from a shell: the CLI's own flushes count
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "renderer", "serve", "--port", str(port),
                               "--no-scheduler", "--no-access-log"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        made = queries(random.Random(args.seed), args.days, args.runs)
        for name, qs in made.items():
            api(port, qs[0])  # warm the cache and the server's pool
            m: dict[str, list[float]] = {k: [] for k in ("cli_first", "cli_total", "api_first",
                                                        "api_total", "rows")}
            for params in qs:
                c_first, c_total, c_rows = cli(env, params)
                a_first, a_total, a_rows = api(port, params)
                # one page of the API: at most PAGE rows, a full one ending with its cursor
                assert a_rows == min(c_rows, PAGE) + (c_rows > PAGE), (params, c_rows, a_rows)
                for k, v in zip(m, (c_first, c_total, a_first, a_total), strict=False):
                    m[k].append(v * 1000)
                m["rows"].append(c_rows)
            print(f"{name}: rows p50 {statistics.median(m['rows']):,.0f}; "
                  + "; ".join(f"{k} p50 {statistics.median(m[k]):.1f} p95 "
                              f"{percentile(m[k], 95):.1f} ms"
                              for k in ("cli_first", "cli_total", "api_first", "api_total")),
                  flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
