"""The Prometheus exposition of /metrics, through the official client: a custom collector
on a registry of its own (made per scrape, nothing global), beside the client's process
collector (CPU, memory, open files, start time of the service process).

The collector turns one snapshot (read from the database by ``renderer.web.metrics``) into
metric families; the client writes the text format, escaping and all.

Example
-------
>>> text = render(Snapshot(workers_alive=3))
>>> "renderer_workers_alive 3.0" in text
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from renderer import queue

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HISTOGRAM_BUCKETS = 25  # le = 1 ms .. 2^24 ms (4.7 h), then +Inf: the same series every scrape


@dataclass(frozen=True)
class Snapshot:
    """What one scrape read: counts by kind and state, oldest pending age by kind, timings
    by kind (``claim_wait``, ``run``), attempt outcomes by kind, workers alive."""

    items: dict[str, dict[str, int]] = field(default_factory=dict)
    oldest_pending: dict[str, float] = field(default_factory=dict)
    timings: dict[str, dict[str, queue.Timing]] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    workers_alive: int = 0
    pending: int = 0
    scrape_seconds: float = 0.0
    desired_workers: dict[str, int] = field(default_factory=dict)


def le(bucket: int) -> str:
    return repr(float(queue.bucket_bounds(bucket)[1]))


def histogram(name: str, help: str, by_kind: dict[str, queue.Timing]) -> HistogramMetricFamily:
    """A histogram per kind from the queue's log-2 buckets (made cumulative here)."""
    family = HistogramMetricFamily(name, help, labels=["kind"])
    for kind, timing in sorted(by_kind.items()):
        seen, buckets = 0, []
        for bucket in range(HISTOGRAM_BUCKETS):
            seen += timing.buckets.get(bucket, 0)
            buckets.append((le(bucket), seen))
        buckets.append(("+Inf", timing.count))
        family.add_metric([kind], buckets, round(timing.total_seconds, 6))
    return family


class QueueCollector(Collector):
    """The queue's metrics from one :class:`Snapshot`."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        items = GaugeMetricFamily("renderer_queue_items", "Work items by kind and state.",
                                  labels=["kind", "state"])
        for kind, counts in sorted(s.items.items()):
            for state in queue.STATES:
                items.add_metric([kind, state], counts.get(state, 0))
        yield items
        oldest = GaugeMetricFamily(
            "renderer_queue_oldest_pending_seconds",
            "Age of the oldest claimable item of each kind (0 when none is pending).",
            labels=["kind"])
        for kind, age in sorted(s.oldest_pending.items()):
            oldest.add_metric([kind], age)
        yield oldest
        yield GaugeMetricFamily("renderer_queue_pending", "Pending items of every kind.",
                                value=s.pending)
        desired = GaugeMetricFamily(
            "renderer_queue_desired_workers",
            "Workers each kind needs to drain its pending and running items within "
            "[queue] target_drain_seconds at the observed per-worker throughput.",
            labels=["kind"])
        for kind, n in sorted(s.desired_workers.items()):
            desired.add_metric([kind], n)
        yield desired
        yield GaugeMetricFamily("renderer_workers_alive",
                                "Workers that heartbeated in the last minute.",
                                value=s.workers_alive)
        # Counters that survive pruning: completions from the run timings, which pruning
        # leaves alone; failed attempts from queue_outcome_totals. Rates are the scraper's
        # work (rate(renderer_queue_completed_total[5m])), not a precomputed gauge.
        completed = CounterMetricFamily("renderer_queue_completed",
                                        "Items completed, by kind (monotonic).",
                                        labels=["kind"])
        for kind, by_what in sorted(s.timings.items()):
            if "run" in by_what:
                completed.add_metric([kind], by_what["run"].count)
        yield completed
        failed = CounterMetricFamily(
            "renderer_queue_attempts_failed",
            "Attempts that did not complete, by kind and outcome (failed, timeout, "
            "rejected, ...; monotonic).", labels=["kind", "outcome"])
        for (kind, outcome), n in sorted(s.outcomes.items()):
            failed.add_metric([kind, outcome], n)
        yield failed
        yield histogram("renderer_queue_claim_wait_seconds",
                        "How long items waited between becoming claimable and their claim "
                        "(claim latency), by kind.",
                        {k: t["claim_wait"] for k, t in s.timings.items() if "claim_wait" in t})
        yield histogram("renderer_queue_run_seconds",
                        "How long items ran, from claim to completion, by kind.",
                        {k: t["run"] for k, t in s.timings.items() if "run" in t})
        yield GaugeMetricFamily("renderer_scrape_duration_seconds", "Time this scrape took.",
                                value=round(s.scrape_seconds, 6))


def registry(snapshot: Snapshot) -> CollectorRegistry:
    """A registry of its own: the queue collector and the process collector."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(QueueCollector(snapshot))
    ProcessCollector(registry=reg)
    return reg


def render(snapshot: Snapshot) -> str:
    return generate_latest(registry(snapshot)).decode()
