"""``/healthz`` (the process answers) and ``/readyz`` (the database is reachable, migrations
are current, the service's connection pool is not exhausted), built so that a probe never
queues behind database work.

Both are ``async`` routes: they answer on the event loop, not in the thread pool that the
database routes can fill. ``/healthz`` touches nothing. ``/readyz`` answers from a
:class:`~renderer.web.deps.ReadyCheck` that a background thread refreshes every
:data:`~renderer.web.deps.READY_REFRESH_SECONDS` (a fresh
connection, as a new client would make, and the schema revision); only whether the pool has
requests waiting for a connection is read at answer time. Measured in BENCHMARKS.md.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from renderer import db
from renderer.web.deps import state

__all__ = ["pool_exhausted", "router"]

router = APIRouter()


def pool_exhausted(pool: db.Pool) -> bool:
    """Whether requests are waiting for a pooled connection: every connection is busy, so
    the service answers late or 503 whatever the database says."""
    stats = pool.get_stats()
    return int(stats.get("requests_waiting", 0)) > 0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    web = state(request)
    ready = web.ready
    checks = {**ready.checks, "checked_seconds_ago": round(time.time() - ready.checked_at, 1)}
    problem = ready.problem
    if problem is None and pool_exhausted(web.pool):
        problem = "the connection pool is exhausted (requests are waiting for a connection)"
        checks["pool"] = "exhausted"
    if problem is not None:
        return JSONResponse({"error": {"status": 503, "message": f"not ready: {problem}"},
                             "checks": checks}, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})
