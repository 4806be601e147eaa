"""``/metrics`` (Prometheus text), ``/healthz`` (process up), ``/readyz`` (database reachable,
migrations current).

A scrape reads the queue's counters through :func:`renderer.queue.status` (no COUNT(*) over
``work_queue``), its timing histograms through :func:`renderer.queue.timings` and the attempt
outcomes from ``queue_outcome_totals``; ``renderer.web.prom`` exposes them with the official
client: gauges (items by kind and state, oldest pending age, pending, workers alive),
counters that only go up (completed items, failed attempts, by kind), histograms (claim
wait, run time) and the service's process metrics.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from renderer import db, queue, schema
from renderer.errors import RendererError
from renderer.web.deps import state
from renderer.web.prom import CONTENT_TYPE, Snapshot, render

router = APIRouter()


def snapshot(conn: db.Connection, started: float) -> Snapshot:
    status = queue.status(conn)
    timings = queue.timings(conn)
    outcomes = {(r["kind"], r["outcome"]): int(r["n"])
                for r in conn.execute(db.query("web.outcome_totals")).fetchall()}
    kinds = status["kinds"]
    return Snapshot(
        items={k: {s: int(c.get(s, 0)) for s in queue.STATES} for k, c in kinds.items()},
        oldest_pending={k: float(c.get("oldest_pending_s") or 0.0) for k, c in kinds.items()},
        timings=timings, outcomes=outcomes, workers_alive=int(status["workers_alive"]),
        pending=int(status["total"].get("pending", 0)),
        scrape_seconds=time.perf_counter() - started)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    started = time.perf_counter()
    with state(request).connection() as conn:
        snap = snapshot(conn, started)
    return Response(render(snap), media_type=CONTENT_TYPE)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    web = state(request)
    checks: dict[str, Any] = {}
    ready = True
    try:
        # A fresh connection, not a pooled one: the probe must see what a new client sees,
        # and the connector fails fast (refused) or within its timeout (unreachable).
        with db.connect(web.url) as conn:
            conn.execute("SELECT 1")
        current = schema.current(web.url)
        head = schema.head()
        checks["database"] = "reachable"
        checks["migrations"] = {"current": current, "head": head}
        if current != head:
            ready = False
            checks["migrations"]["fix"] = "run `renderer db migrate`"
    except RendererError as exc:
        ready = False
        checks["database"] = " ".join(str(exc).split())

    if not ready:
        problem = (checks["database"] if checks["database"] != "reachable"
                   else f"database schema at {checks['migrations']['current']}, code expects "
                        f"{checks['migrations']['head']} (run `renderer db migrate`)")
        return JSONResponse({"error": {"status": 503, "message": f"not ready: {problem}"},
                             "checks": checks}, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})
