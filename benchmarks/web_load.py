"""The service under load: requests/s, p50 and p99 per endpoint at concurrency 50.

Starts ``renderer serve`` from a checkout (this one by default; ``--checkout`` another, e.g.
the main branch exported with ``git archive``, to measure before and after) on a free
loopback port, with the settings of the environment (``RENDERER_HOME``: its embedded
cluster), waits for ``/healthz``, then sends ``--requests`` GETs to each endpoint from
``--concurrency`` concurrent clients (httpx, asyncio), endpoint after endpoint, and a mixed
round where probes run while ``/api/sets`` keeps the database busy. Loopback only: the
server listens on 127.0.0.1 and nothing else is contacted.

    RENDERER_HOME=/tmp/bench-home python benchmarks/web_load.py [--web-workers 2]
        [--requests 2000] [--concurrency 50] [--checkout DIR]

Each line: ``endpoint requests/s p50_ms p99_ms errors``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = ["/healthz", "/readyz", "/api/sets"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(checkout: Path, port: int, web_workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    args = [sys.executable, "-m", "renderer", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--no-scheduler"]
    if web_workers > 1:
        args += ["--web-workers", str(web_workers)]
    if "--no-access-log" in subprocess.run([*args[:4], "--help"], env=env, cwd=checkout,
                                           capture_output=True, text=True).stdout:
        args.append("--no-access-log")
    server = subprocess.Popen(args, env=env, cwd=checkout, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit("the server did not become ready within 180 s")


async def load(client: httpx.AsyncClient, path: str, requests: int,
               concurrency: int) -> tuple[list[float], int, float]:
    """Latencies (s), errors (non-2xx or failed) and wall time of ``requests`` GETs."""
    latencies: list[float] = []
    errors = 0
    pending = iter(range(requests))

    async def one_client() -> None:
        nonlocal errors
        for _ in pending:
            started = time.perf_counter()
            try:
                response = await client.get(path)
                errors += response.status_code >= 300
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def _line(name: str, latencies: list[float], errors: int, wall: float) -> str:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return (f"{name:<22} {len(latencies) / wall:8.0f} req/s  p50 {q[49] * 1000:7.1f} ms  "
            f"p99 {q[98] * 1000:7.1f} ms  errors {errors}")


async def run(base: str, requests: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        for path in ENDPOINTS:
            await load(client, path, min(200, requests), concurrency)  # warm up
            print(_line(path, *await load(client, path, requests, concurrency)), flush=True)
        # probes while the database routes are busy: half the clients on /api/sets
        half = concurrency // 2
        busy = asyncio.create_task(load(client, "/api/sets", requests, half))
        for path in ("/healthz", "/readyz"):
            print(_line(f"{path} (busy)", *await load(client, path, requests, half)),
                  flush=True)
        await busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--checkout", type=Path, default=ROOT,
                        help="the source tree whose renderer serves (default: this one)")
    args = parser.parse_args()
    port = _free_port()
    server = start_server(args.checkout.resolve(), port, args.web_workers)
    try:
        print(f"checkout {args.checkout} web workers {args.web_workers} concurrency "
              f"{args.concurrency} requests {args.requests} cores {os.cpu_count()}")
        asyncio.run(run(f"http://127.0.0.1:{port}", args.requests, args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
