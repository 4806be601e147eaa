"""A real uvicorn server on a free loopback port (the ``live`` fixture), and the endpoints
every deployment probes: /healthz, /readyz, /metrics, the error shape."""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from renderer import queue, schema
from renderer.config import Settings
from renderer.db import Database
from renderer.web.app import create_app
from tests.factories import add_schedule, backdate


@dataclass
class Live:
    """A running server: its base URL, its settings, a client bound to it."""

    url: str
    settings: Settings
    source: Path
    client: httpx.Client
    app_state: Any = None
    """The application's WebState (pool, settings), for tests that look inside."""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST, as JSON unless the caller's headers name another content type."""
        headers = {"Content-Type": "application/json", **(kwargs.pop("headers", None) or {})}
        return self.client.post(path, headers=headers, **kwargs)


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", http="h11",
                                           lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"uvicorn-{port}")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    return server, thread, port


@pytest.fixture
def live(db: Database, tmp_path: Path) -> Iterator[Callable[..., Live]]:
    """Start a server with settings overrides (``web_secrets="s1,s2"``, ...) on the test
    database, a store and a traffic source under tmp_path; stopped after the test."""
    running: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(*, traffic_source: bool = True, run_scheduler: bool = False,
              **overrides: Any) -> Live:
        settings = dataclasses.replace(
            Settings(database_url=db.url, home=tmp_path / "home",
                     storage=(tmp_path / "store").as_uri()), **overrides)
        source = tmp_path / "source"
        source.mkdir(exist_ok=True)
        app = create_app(settings, url=db.url, run_scheduler=run_scheduler,
                         traffic_source=source.as_uri() if traffic_source else None)
        if not traffic_source:
            app.state.web.traffic_source = None
        server, thread, port = _serve(app)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        running.append((server, thread, client))
        return Live(f"http://127.0.0.1:{port}", settings, source, client, app.state.web)

    yield start
    for server, thread, client in running:
        client.close()
        server.should_exit = True
        thread.join(timeout=15)


def queue_total(db: Database) -> int:
    """Items in the queue, from the counters (what the security tests need: zero)."""
    with db.connect() as conn:
        total = queue.status(conn)["total"]
    return sum(int(total.get(s, 0)) for s in ("pending", "held", "running", "done", "failed"))


def test_healthz_and_readyz(live: Callable[..., Live]) -> None:
    server = live()
    assert server.get("/healthz").json() == {"status": "ok"}
    ready = server.get("/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"] == "reachable"
    assert checks["migrations"]["current"] == checks["migrations"]["head"]


def test_readyz_reports_an_unreachable_database(db: Database, tmp_path: Path) -> None:
    url = "postgresql://nobody:hunter2@127.0.0.1:1/none"
    app = create_app(Settings(database_url=url, home=tmp_path), url=url)
    server, thread, port = _serve(app)
    try:
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
        assert ready.status_code == 503
        message = ready.json()["error"]["message"]
        assert message.startswith("not ready: cannot connect") and "hunter2" not in ready.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_readyz_reports_pending_migrations(live: Callable[..., Live], db: Database) -> None:
    server = live()
    with db.connect() as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0005'")
        conn.commit()
    try:
        deadline = time.monotonic() + 30  # answered from a check refreshed every 3 s
        while (ready := server.get("/readyz")).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert ready.status_code == 503
        assert "renderer db migrate" in ready.json()["error"]["message"]
    finally:
        with db.connect() as conn:
            conn.execute("UPDATE alembic_version SET version_num = %s", (schema.head(),))
            conn.commit()


METRIC_LINE = re.compile(
    r'^[a-z_]+(\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$')


def test_metrics_in_prometheus_text_format(live: Callable[..., Live], db: Database) -> None:
    with db.connect() as conn:
        queue.enqueue(conn, "metrics-test", "a")
        queue.enqueue(conn, "metrics-test", "b")
        queue.enqueue(conn, 'odd"kind\\', "c")
        conn.commit()
    server = live()
    response = server.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    for line in lines:
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or METRIC_LINE.match(
            line), line
    assert 'renderer_queue_items{kind="metrics-test",state="pending"} 2.0' in lines
    assert 'renderer_queue_items{kind="odd\\"kind\\\\",state="pending"} 1.0' in lines
    assert "renderer_workers_alive 0.0" in lines
    assert any(line.startswith('renderer_queue_oldest_pending_seconds{kind="metrics-test"}')
               for line in lines)
    assert "renderer_queue_pending 3.0" in lines  # a gauge: no _total suffix


def test_metrics_histograms_of_claim_waits_and_run_times(live: Callable[..., Live],
                                                         db: Database) -> None:
    with db.connect() as conn:
        conn.autocommit = True
        for key in ("a", "b", "c"):
            queue.enqueue(conn, "timed", key)
        backdate(conn, enqueued_at=5, run_after=5)
        claimed = queue.claim(conn, "timed", limit=2)
        queue.complete(conn, claimed)
    lines = live().get("/metrics").text.splitlines()
    assert "# TYPE renderer_queue_claim_wait_seconds histogram" in lines
    assert 'renderer_queue_claim_wait_seconds_count{kind="timed"} 2.0' in lines
    assert 'renderer_queue_claim_wait_seconds_bucket{kind="timed",le="+Inf"} 2.0' in lines
    # 5 s waits: none up to 4.096 s, both by 8.192 s; buckets are cumulative
    assert 'renderer_queue_claim_wait_seconds_bucket{kind="timed",le="4.096"} 0.0' in lines
    assert 'renderer_queue_claim_wait_seconds_bucket{kind="timed",le="8.192"} 2.0' in lines
    assert 'renderer_queue_run_seconds_count{kind="timed"} 2.0' in lines
    waited = next(line for line in lines
                  if line.startswith('renderer_queue_claim_wait_seconds_sum{kind="timed"}'))
    assert 10 <= float(waited.split()[-1]) < 12


def test_every_error_has_the_one_json_shape(live: Callable[..., Live]) -> None:
    server = live()
    for method, path, status in [("GET", "/nowhere", 404), ("GET", "/api/sets/none", 404),
                                 ("GET", "/api/items/k/a/b", 404), ("PUT", "/api/runs", 405),
                                 ("POST", "/api/runs", 403)]:
        response = server.client.request(method, path)
        assert response.status_code == status, (path, response.text)
        body = response.json()
        assert set(body) == {"error"} and body["error"]["status"] == status
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_serve_fires_schedules(live: Callable[..., Live], db: Database) -> None:
    with db.connect() as conn:
        add_schedule(conn, "minutely", "* * * * *", "metrics-test", "m")  # due now
        conn.commit()
    live(run_scheduler=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with db.connect() as conn:
            ticks = conn.execute("SELECT key FROM work_queue WHERE kind = 'schedule-tick'"
                                 ).fetchall()
        if ticks:
            break
        time.sleep(0.1)
    assert [t["key"].split("/")[0] for t in ticks] == ["minutely"]


def test_a_browser_gets_an_escaped_html_error_page(live: Callable[..., Live]) -> None:
    server = live()
    response = server.get("/sets/<script>alert(1)</script>", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<script>alert(1)" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]
