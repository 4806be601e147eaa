"""What the routers share: the service's state, its pooled connections and its error class.

Kept apart from :mod:`renderer.web.app`, which assembles the application from the routers
(:mod:`.hooks`, :mod:`.pages`, :mod:`.metrics`): the routers import this module, never the
application, so no module of the package imports one that imports it back.

Example
-------
>>> @router.get("/api/thing")
... def thing(request: Request) -> dict[str, Any]:
...     with state(request).connection() as conn:
...         return {"rows": conn.execute("SELECT 1 AS one").fetchall()}
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import jinja2
from fastapi import Request

from renderer import config, db, schema
from renderer.errors import RendererError

log = logging.getLogger(__name__)

POOL_WAIT_SECONDS = 10  # a request waits this long for a pooled connection, then answers 503
READY_REFRESH_SECONDS = 3.0  # how stale /readyz's database check may be


class WebError(RendererError):
    """An error answered with ``status`` and ``message`` in the service's one error shape."""

    def __init__(self, status: int, message: str, fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.status = status


@dataclass
class ReadyCheck:
    """The last database check and when it ran; :meth:`start` keeps it fresh."""

    url: str
    checks: dict[str, Any] = field(default_factory=dict)
    problem: str | None = "not checked yet"
    checked_at: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def refresh(self) -> None:
        checks: dict[str, Any] = {}
        problem: str | None = None
        try:
            # A fresh connection, not a pooled one: the probe must see what a new client
            # sees, and the connector fails fast (refused) or within its timeout.
            with db.connect(self.url) as conn:
                conn.execute("SELECT 1")
            current, head = schema.current(self.url), schema.head()
            checks["database"] = "reachable"
            checks["migrations"] = {"current": current, "head": head}
            if current != head:
                checks["migrations"]["fix"] = "run `renderer db migrate`"
                problem = (f"database schema at {current}, code expects {head} "
                           "(run `renderer db migrate`)")
        except RendererError as exc:
            checks["database"] = problem = " ".join(str(exc).split())
        self.checks, self.problem, self.checked_at = checks, problem, time.time()

    def start(self) -> None:
        """Check now, then every :data:`READY_REFRESH_SECONDS` in a daemon thread."""
        self.refresh()

        def loop() -> None:
            while not self.stop.wait(READY_REFRESH_SECONDS):
                try:
                    self.refresh()
                except Exception:  # a probe thread must outlive any surprise
                    log.exception("readiness check failed")

        self.thread = threading.Thread(target=loop, name="renderer-readyz", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


@dataclass
class WebState:
    """What the routes share: settings, the database pool, templates."""

    settings: config.Settings
    url: str
    pool: db.Pool
    templates: jinja2.Environment
    traffic_source: str | None
    secrets: list[str] = field(repr=False)  # never logged, never shown
    run_scheduler: bool = False
    scheduler_stop: threading.Event = field(default_factory=threading.Event)
    scheduler_thread: threading.Thread | None = None
    ready: ReadyCheck = field(init=False)

    def __post_init__(self) -> None:
        self.ready = ReadyCheck(self.url)

    @contextmanager
    def connection(self) -> Iterator[db.Connection]:
        """A pooled connection; committed when the block succeeds, rolled back otherwise."""
        with self.pool.connection(timeout=POOL_WAIT_SECONDS) as conn:
            yield conn


def state(request: Request) -> WebState:
    """The state of the application serving ``request``."""
    return cast(WebState, request.app.state.web)
