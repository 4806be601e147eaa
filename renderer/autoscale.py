"""The autoscaling signal: how many workers each kind needs to drain its work in time.

One computation serves both the ``renderer_queue_desired_workers{kind}`` gauge of /metrics
(for a Kubernetes HPA or KEDA, docs/autoscale.md) and ``renderer work --autoscale MIN..MAX``
(:mod:`renderer.pool`), so the fleet and the single machine scale by the same rule:

    desired = ceil((pending + running) / (items per second per worker * target seconds))

The work is the kind's pending and running items (from the queue's counters); a worker's
throughput is observed, from the queue's run-time records of the kind: a worker runs one
batch at a time and every item of a batch is timed from the claim to the batch's commit, so
a worker does ``batch_size * count / total_seconds`` items a second. A kind with work but no
record yet asks for one worker (its first items make the record); no work asks for none.

Example
-------
>>> desired_workers(1200, 2.0, 300)   # 1200 items, 2 items/s per worker, drain in 5 min
2
>>> desired_workers(5, None, 300)     # never run yet: one worker to start measuring
1
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from renderer import queue
from renderer.db import Connection

__all__ = ["desired", "desired_by_kind", "desired_workers", "per_worker_rate"]


def desired_workers(work: int, per_worker_per_s: float | None, target_seconds: float) -> int:
    """Workers that finish ``work`` items within ``target_seconds`` at the given rate."""
    if work <= 0:
        return 0
    if not per_worker_per_s or per_worker_per_s <= 0:
        return 1
    return max(1, math.ceil(work / (per_worker_per_s * max(target_seconds, 1e-9))))


def per_worker_rate(run: queue.Timing | None, batch_size: int = 1) -> float | None:
    """Items a second one worker does, from a kind's run-time record (None: no record)."""
    if run is None or run.count <= 0 or run.total_seconds <= 0:
        return None
    return max(batch_size, 1) * run.count / run.total_seconds


def desired(counts: Mapping[str, Mapping[str, Any]],
            timings: Mapping[str, Mapping[str, queue.Timing]], target_seconds: float,
            kinds: Iterable[str] | None = None) -> dict[str, int]:
    """Per kind (all in ``counts``, or ``kinds``): the workers it needs. ``counts`` are
    :func:`renderer.queue.status` ``["kinds"]``, ``timings`` :func:`renderer.queue.timings`."""
    names = sorted(counts) if kinds is None else list(kinds)
    result: dict[str, int] = {}
    for kind in names:
        c = counts.get(kind, {})
        work = int(c.get("pending", 0)) + int(c.get("running", 0))
        registered = queue.KINDS.get(kind)
        rate = per_worker_rate(timings.get(kind, {}).get("run"),
                               registered.batch_size if registered else 1)
        result[kind] = desired_workers(work, rate, target_seconds)
    return result


def desired_by_kind(conn: Connection, target_seconds: float,
                    kinds: Iterable[str] | None = None) -> dict[str, int]:
    """:func:`desired` read from the database (the counters and the timing records)."""
    return desired(queue.status(conn, sets=[])["kinds"], queue.timings(conn), target_seconds, kinds)
