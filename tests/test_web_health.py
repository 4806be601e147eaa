"""Health probes under load: /healthz touches nothing, /readyz answers from a cached check
(no connection per probe) and says not ready while the service's pool has requests waiting."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from renderer import schema
from tests.test_web_server import Live, live

__all__ = ["live"]


def test_probes_open_no_connection_per_request(live: Callable[..., Live],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    server = live()
    calls: list[str] = []
    real = schema.current

    def counted(url: str) -> Any:
        calls.append(url)
        return real(url)

    monkeypatch.setattr(schema, "current", counted)
    for _ in range(30):
        assert server.get("/healthz").status_code == 200
        assert server.get("/readyz").status_code == 200
    assert len(calls) <= 3  # background refreshes only, whatever the probe rate


def test_readyz_is_not_ready_while_the_pool_is_exhausted(live: Callable[..., Live]) -> None:
    server = live()
    app_state = server.app_state
    pool = app_state.pool
    held = [pool.getconn(timeout=10) for _ in range(pool.max_size)]
    waiting = threading.Thread(target=lambda: pool.putconn(pool.getconn(timeout=20)))
    try:
        waiting.start()
        for _ in range(100):
            if pool.get_stats().get("requests_waiting", 0):
                break
            threading.Event().wait(0.05)
        ready = server.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "pool is exhausted" in ready.json()["error"]["message"]
        assert server.get("/healthz").status_code == 200
    finally:
        for conn in held:
            pool.putconn(conn)
        waiting.join(timeout=30)
    assert server.get("/readyz").status_code == 200
