"""/metrics as Prometheus reads it (renderer/web/metrics.py, prom.py): counters of completed
items and failed attempts that survive pruning, gauges without a counter's suffix, no NaN,
the process metrics."""

from __future__ import annotations

import time
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from renderer import queue
from renderer.db import Database
from renderer.web import metrics, prom
from tests.factories import backdate


def _families(db: Database) -> dict[str, object]:
    with db.connect() as conn:
        text = prom.render(metrics.snapshot(conn, time.perf_counter()))
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict[str, object], name: str, **labels: str) -> float:
    family = families[name]
    for sample in family.samples:  # type: ignore[attr-defined]
        if sample.name == name + ("_total" if family.type == "counter" else "")  \
                and sample.labels == labels:  # type: ignore[attr-defined]
            return float(sample.value)
    raise AssertionError(f"no {name} {labels}")


def test_counters_survive_pruning_and_gauges_are_not_totals(db: Database) -> None:
    with db.connect() as conn:
        conn.autocommit = True
        for key in ("a", "b", "c"):
            queue.enqueue(conn, "m_kind", key)
        done, failing = queue.claim(conn, "m_kind", limit=2)
        queue.complete(conn, [done])
        queue.fail(conn, failing, RuntimeError("boom"))
        queue.rollup(conn)
    before = _families(db)
    assert _value(before, "renderer_queue_completed", kind="m_kind") == 1
    assert _value(before, "renderer_queue_attempts_failed", kind="m_kind", outcome="failed") == 1
    with db.connect() as conn:
        conn.autocommit = True
        backdate(conn, kind="m_kind", finished_at=timedelta(days=30))
        conn.execute("UPDATE queue_attempts SET at = now() - interval '30 days'")
        assert queue.prune(conn, timedelta(days=1)) == 1  # the done item and its attempts go
        assert conn.execute("SELECT count(*) AS n FROM queue_attempts").fetchone()["n"] == 0
        queue.rollup(conn)
    after = _families(db)
    assert _value(after, "renderer_queue_items", kind="m_kind", state="done") == 0
    assert _value(after, "renderer_queue_completed", kind="m_kind") == 1  # still counted
    assert _value(after, "renderer_queue_attempts_failed", kind="m_kind", outcome="failed") == 1

    for name, family in after.items():
        kind = family.type  # type: ignore[attr-defined]
        assert not (kind == "gauge" and name.endswith("_total")), name
        for sample in family.samples:  # type: ignore[attr-defined]
            assert sample.value == sample.value, sample  # no NaN
    assert after["renderer_queue_completed"].type == "counter"  # type: ignore[attr-defined]
    assert after["renderer_queue_run_seconds"].type == "histogram"  # type: ignore[attr-defined]
    assert "process_cpu_seconds" in after and "process_resident_memory_bytes" in after
    assert "renderer_queue_throughput_per_second" not in after  # rate() is the scraper's
