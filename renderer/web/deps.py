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

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

import jinja2
from fastapi import Request

from renderer import config, db
from renderer.errors import RendererError

POOL_WAIT_SECONDS = 10  # a request waits this long for a pooled connection, then answers 503


class WebError(RendererError):
    """An error answered with ``status`` and ``message`` in the service's one error shape."""

    def __init__(self, status: int, message: str, fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.status = status


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

    @contextmanager
    def connection(self) -> Iterator[db.Connection]:
        """A pooled connection; committed when the block succeeds, rolled back otherwise."""
        with self.pool.connection(timeout=POOL_WAIT_SECONDS) as conn:
            yield conn


def state(request: Request) -> WebState:
    """The state of the application serving ``request``."""
    return cast(WebState, request.app.state.web)
