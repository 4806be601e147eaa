"""``/metrics`` (Prometheus text); ``/healthz`` and ``/readyz`` are in :mod:`.health`.

A scrape reads the queue's counters through :func:`renderer.queue.status` (no COUNT(*) over
``work_queue``) and its timing histograms through :func:`renderer.queue.timings`: what an
autoscaler needs (items by kind and state, oldest pending age, throughput, ETA, how long
items wait to be claimed and how long they run, workers alive).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from renderer import queue
from renderer.web.deps import state
from renderer.web.prom import CONTENT_TYPE, Family, format_value, render

router = APIRouter()

STATES = queue.STATES


HISTOGRAM_BUCKETS = 25  # le = 1 ms .. 2^24 ms (4.7 h), then +Inf: the same series every scrape


def histogram(name: str, help: str, by_kind: dict[str, queue.Timing]) -> Family:
    """A Prometheus histogram per kind, from the queue's log-2 buckets (cumulative counts)."""
    samples: list[tuple[dict[str, object], float | int | None]] = []
    for kind, timing in sorted(by_kind.items()):
        seen = 0
        for bucket in range(HISTOGRAM_BUCKETS):
            seen += timing.buckets.get(bucket, 0)
            samples.append(({"__name__": f"{name}_bucket", "kind": kind,
                             "le": format_value(queue.bucket_bounds(bucket)[1])}, seen))
        samples.append(({"__name__": f"{name}_bucket", "kind": kind, "le": "+Inf"},
                        timing.count))
        samples.append(({"__name__": f"{name}_sum", "kind": kind},
                        round(timing.total_seconds, 6)))
        samples.append(({"__name__": f"{name}_count", "kind": kind}, timing.count))
    return Family(name, "histogram", help, samples)


def families(status: dict[str, Any], timings: dict[str, dict[str, queue.Timing]],
             scrape_seconds: float) -> list[Family]:
    kinds = sorted(status["kinds"].items())
    waits = {k: t["claim_wait"] for k, t in timings.items() if "claim_wait" in t}
    runs = {k: t["run"] for k, t in timings.items() if "run" in t}
    return [
        Family("renderer_queue_items", "gauge", "Work items by kind and state.",
               [({"kind": k, "state": s}, int(c.get(s, 0))) for k, c in kinds for s in STATES]),
        Family("renderer_queue_oldest_pending_seconds", "gauge",
               "Age of the oldest claimable item of each kind (0 when none is pending).",
               [({"kind": k}, c.get("oldest_pending_s") or 0.0) for k, c in kinds]),
        Family("renderer_queue_throughput_per_second", "gauge",
               "Items done per second over the last 5 minutes, by kind.",
               [({"kind": k}, c.get("throughput_per_s") or 0.0) for k, c in kinds]),
        Family("renderer_queue_eta_seconds", "gauge",
               "Estimated seconds until pending and running items of a kind are done "
               "(NaN when nothing completes).",
               [({"kind": k}, c.get("eta_s")) for k, c in kinds]),
        histogram("renderer_queue_claim_wait_seconds",
                  "How long items waited between becoming claimable and their claim (claim "
                  "latency), by kind.", waits),
        histogram("renderer_queue_run_seconds",
                  "How long items ran, from claim to completion, by kind.", runs),
        Family("renderer_workers_alive", "gauge", "Workers that heartbeated in the last minute.",
               [({}, int(status["workers_alive"]))]),
        Family("renderer_queue_pending_total", "gauge", "Pending items of every kind.",
               [({}, int(status["total"].get("pending", 0)))]),
        Family("renderer_scrape_duration_seconds", "gauge", "Time this scrape took.",
               [({}, round(scrape_seconds, 6))]),
    ]


@router.get("/metrics")
def metrics(request: Request) -> Response:
    started = time.perf_counter()
    with state(request).connection() as conn:
        status = queue.status(conn)
        timings = queue.timings(conn)
    text = render(families(status, timings, time.perf_counter() - started))
    return Response(text, media_type=CONTENT_TYPE)
