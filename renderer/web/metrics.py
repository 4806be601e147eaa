"""``/metrics`` (Prometheus text); ``/healthz`` and ``/readyz`` are in :mod:`.health`.

A scrape reads the queue's counters through :func:`renderer.queue.status` (no COUNT(*) over
``work_queue``), its timing histograms through :func:`renderer.queue.timings` and the attempt
outcomes from ``queue_outcome_totals``; ``renderer.web.prom`` exposes them with the official
client: gauges (items by kind and state, oldest pending age, pending, workers alive),
counters that only go up (completed items, failed attempts, by kind), histograms (claim
wait, run time), the workers each kind needs (:mod:`renderer.autoscale`) and the service's
process metrics.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from renderer import autoscale, db, queue
from renderer.web.deps import state
from renderer.web.prom import CONTENT_TYPE, Snapshot, render

router = APIRouter()


def snapshot(conn: db.Connection, started: float, target_drain_seconds: float = 300.0
             ) -> Snapshot:
    status = queue.status(conn, sets=[])  # kinds and totals: no set rows to compute
    timings = queue.timings(conn)
    outcomes = {(r["kind"], r["outcome"]): int(r["n"])
                for r in conn.execute(db.query("web.outcome_totals")).fetchall()}
    kinds = status["kinds"]
    return Snapshot(
        items={k: {s: int(c.get(s, 0)) for s in queue.STATES} for k, c in kinds.items()},
        oldest_pending={k: float(c.get("oldest_pending_s") or 0.0) for k, c in kinds.items()},
        timings=timings, outcomes=outcomes, workers_alive=int(status["workers_alive"]),
        pending=int(status["total"].get("pending", 0)),
        desired_workers=autoscale.desired(kinds, timings, target_drain_seconds),
        scrape_seconds=time.perf_counter() - started)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    started = time.perf_counter()
    web = state(request)
    with web.connection() as conn:
        snap = snapshot(conn, started, web.settings.queue_target_drain_seconds)
    return Response(render(snap), media_type=CONTENT_TYPE)
