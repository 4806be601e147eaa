"""Claim waits and run times of the queue, from log-2 bucket histograms (migration 0010).

The claim and completion verbs append one timing per item; the maintenance pass folds them
into buckets per (kind, set). Reading a set's timings is a few rows whatever its size, at the
price of percentiles that are estimates: bucket ``b`` holds times in
(1 ms * 2^(b-1), 1 ms * 2^b], and a percentile is interpolated inside its bucket, as
Prometheus' ``histogram_quantile`` does, so it is off by less than a factor of two.

Example
-------
>>> run = timings(conn, set_id)["histogram"]["run"]
>>> run.count, round(run.mean, 2), run.quantile(0.95)
(672, 0.21, 0.52)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from renderer.db import Connection
from renderer.queue._verbs import _rows

BASE_SECONDS = 0.001  # upper bound of bucket 0
MAX_BUCKET = 40  # 2^40 ms, about 35 years: everything longer lands here too


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The (lower, upper] seconds of a bucket; bucket 0 starts at 0."""
    upper = BASE_SECONDS * 2.0 ** bucket
    return (0.0 if bucket == 0 else upper / 2, upper)


def bucket_of(seconds: float) -> int:
    """The bucket of a time: the twin of ``renderer.queue_timing_bucket``, with the same
    float arithmetic (both call the C library's log10), so both agree on every value."""
    if seconds <= BASE_SECONDS:
        return 0
    return min(MAX_BUCKET, math.ceil(math.log10(seconds / BASE_SECONDS) / math.log10(2)))


def quantile(buckets: Mapping[int, int], q: float, maximum: float | None = None) -> float | None:
    """Estimate the ``q`` quantile (0..1) of the times counted in ``buckets``: linear inside
    the bucket where the rank falls, never above ``maximum`` (the largest time seen)."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = min(max(q, 0.0), 1.0) * total
    seen = 0
    for bucket in sorted(b for b, n in buckets.items() if n > 0):
        n = buckets[bucket]
        if seen + n >= rank:
            lower, upper = bucket_bounds(bucket)
            value = lower + (upper - lower) * ((rank - seen) / n)
            return value if maximum is None else min(value, maximum)
        seen += n
    raise AssertionError("unreachable: the ranks add up to the total")


@dataclass(frozen=True)
class Timing:
    """One kind of timing (``claim_wait`` or ``run``) of one kind of item."""

    count: int
    total_seconds: float
    max_seconds: float
    first_at: datetime  # earliest start of a measured interval
    last_at: datetime  # latest end
    buckets: dict[int, int] = field(default_factory=dict)

    @property
    def mean_seconds(self) -> float:
        return self.total_seconds / self.count

    def quantile(self, q: float) -> float | None:
        return quantile(self.buckets, q, self.max_seconds)


def timings(conn: Connection,
            set_id: str | None = None) -> dict[str, dict[str, Timing]]:
    """Per item kind, its ``claim_wait`` and ``run`` timings, of one set or of everything."""
    parts: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in _rows(conn, "queue.timings", {"set_id": set_id}):
        parts.setdefault((row["kind"], row["what"]), []).append(row)
    result: dict[str, dict[str, Timing]] = {}
    for (kind, what), rows in parts.items():
        result.setdefault(kind, {})[what] = Timing(
            count=sum(int(r["n"]) for r in rows),
            total_seconds=sum(float(r["sum"]) for r in rows),
            max_seconds=max(float(r["max"]) for r in rows),
            first_at=min(r["first_at"] for r in rows),
            last_at=max(r["last_at"] for r in rows),
            buckets={int(r["bucket"]): int(r["n"]) for r in rows})
    return result
