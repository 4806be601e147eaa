"""``renderer serve --web-workers 2 --workers 1``: two server processes share the port, a
worker pool runs beside them, and all stop with the command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from renderer.db import Database


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


def test_serve_with_web_workers_and_a_worker_pool(db: Database, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "RENDERER_DATABASE_URL": db.url, "RENDERER_HOME": str(tmp_path)}
    serve = subprocess.Popen([sys.executable, "-m", "renderer", "serve", "--port", str(port),
                              "--web-workers", "2", "--workers", "1", "--no-scheduler"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        alive = 0
        while time.monotonic() < deadline and not alive:
            time.sleep(0.5)
            assert serve.poll() is None, serve.stderr.read() if serve.stderr else ""
            try:
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                continue
            alive = int(float(next(line.split()[1] for line in metrics.splitlines()
                                   if line.startswith("renderer_workers_alive"))))
        assert alive >= 1  # the pool beside the service heartbeats
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        # the pool, uvicorn's supervisor threads aside: two server processes and one pool
        commands = {p: Path(f"/proc/{p}/cmdline").read_bytes() for p in _children(serve.pid)}
        pools = [p for p, c in commands.items() if b"\0work\0" in c]
        assert len(pools) == 1
        assert sum(b"multiprocessing" in c for c in commands.values()) >= 2
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=120)
    assert serve.returncode == 0
    assert not Path(f"/proc/{pools[0]}").exists()  # the pool stopped with the service
