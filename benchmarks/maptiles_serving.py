"""The serving contest of benchmarks/maptiles.py: ``/tiles`` of ``renderer serve`` (statistics
merged per request) against the same tiles served from the exported PMTiles file, in one
server process, with the CPU per request of that process and of the database."""

from __future__ import annotations

import multiprocessing
import os
import random
import socket
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import APIRouter, Response
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import deserialize_directory, find_tile, zxy_to_tileid

from renderer import config
from renderer.maptiles import export
from renderer.web.app import create_app


def _server(url: str, pmtiles_path: Path, sock: socket.socket) -> None:
    """The app with one more route serving the same tiles from the PMTiles file (a child
    process: the clients' threads must not share its interpreter)."""
    app = create_app(config.Settings(database_url=url, home=pmtiles_path.parent / "home",
                                     storage=(pmtiles_path.parent / "store").as_uri()), url=url)
    source = open(export.geojson_archive(pmtiles_path), "rb")  # noqa: SIM115 (process-long)
    get_bytes = MmapSource(source)
    header = Reader(get_bytes).header()
    directories: dict[tuple[int, int], Any] = {}  # parsed once: the reader parses per call

    def directory(offset: int, length: int) -> Any:
        key = (offset, length)
        if key not in directories:
            directories[key] = deserialize_directory(get_bytes(offset, length))
        return directories[key]

    router = APIRouter()

    @router.get("/pmtiles/{z}/{x}/{y}.json")
    def from_file(z: int, x: int, y: int) -> Response:
        tile_id = zxy_to_tileid(z, x, y)
        offset, length = header["root_offset"], header["root_length"]
        for _ in range(4):
            entry = find_tile(directory(offset, length), tile_id)
            if entry is None:
                return Response(status_code=404)
            if entry.run_length == 0:
                offset = header["leaf_directory_offset"] + entry.offset
                length = entry.length
                continue
            data = get_bytes(header["tile_data_offset"] + entry.offset, entry.length)
            return Response(data, media_type="application/geo+json",
                            headers={"Content-Encoding": "gzip"})
        return Response(status_code=404)

    app.include_router(router)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                  lifespan="on")).run(sockets=[sock])


def _process_cpu(pid: int) -> float:
    """CPU seconds of one live process (``/proc``), its threads included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(url: str, pmtiles_path: Path, keys: list[tuple[int, int, int]], clients: int,
          requests: int, cluster_cpu: Callable[[], float]) -> dict[str, dict[str, float]]:
    """Tiles/s and latencies, and the CPU per request of the server process and of the
    database (a figure that the machine's load does not skew as it skews walls)."""
    sock = socket.socket()
    # Accepted connections inherit it: without, a response written in two parts waits for
    # the client's delayed ACK (40 ms a request, whatever is served).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    child = multiprocessing.get_context("fork").Process(target=_server,
                                                        args=(url, pmtiles_path, sock))
    child.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    out: dict[str, dict[str, float]] = {}
    rng = random.Random(1)
    paths = [rng.choice(keys) for _ in range(requests)]
    try:
        for name, prefix in (("tiles", "/tiles"), ("pmtiles", "/pmtiles")):
            local = threading.local()

            def fetch(key: tuple[int, int, int], prefix: str = prefix,
                      local: threading.local = local) -> float:
                if not hasattr(local, "client"):
                    local.client = httpx.Client(base_url=base,
                                                headers={"Accept-Encoding": "gzip"})
                t0 = time.perf_counter()
                r = local.client.get(f"{prefix}/{key[0]}/{key[1]}/{key[2]}.json")
                r.raise_for_status()
                return time.perf_counter() - t0

            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(fetch, paths[:50]))  # warm up
                app0, db0 = _process_cpu(child.pid or 0), cluster_cpu()
                t0 = time.perf_counter()
                latencies = sorted(pool.map(fetch, paths))
                wall = time.perf_counter() - t0
                app, db = _process_cpu(child.pid or 0) - app0, cluster_cpu() - db0
            out[name] = {"per_s": len(paths) / wall,
                         "p50_ms": statistics.median(latencies) * 1000,
                         "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
                         "app_ms": app / len(paths) * 1000, "db_ms": db / len(paths) * 1000}
    finally:
        child.terminate()
        child.join(timeout=10)
    return out
