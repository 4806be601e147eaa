"""The autoscaling signal (renderer.autoscale), its /metrics gauge, and `renderer work
--autoscale MIN..MAX`: a burst grows the pool, an idle queue shrinks it back to MIN.

Worker processes import this module (``RENDERER_PLUGINS=tests.test_autoscale``) for the
``t_scale`` kind. No assertion on speed: the pool test waits (bounded) for the counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from renderer import autoscale, queue
from renderer.db import Database
from renderer.queue import Job, NewItem
from renderer.web import metrics
from renderer.web.prom import Snapshot, render

PLUGIN = "tests.test_autoscale"


@queue.register("t_scale", batch_size=1, time_limit=60)
def scale_item(job: Job) -> None:
    time.sleep(float(job.payload.get("sleep", 0.3)))


def _timing(count: int, total: float) -> queue.Timing:
    now = datetime.now(UTC)
    return queue.Timing(count=count, total_seconds=total, max_seconds=total, first_at=now,
                        last_at=now)


def test_desired_workers_drains_the_work_within_the_target() -> None:
    assert autoscale.desired_workers(0, 2.0, 300) == 0
    assert autoscale.desired_workers(3, None, 300) == 1  # no record yet: one to measure
    assert autoscale.desired_workers(600, 2.0, 300) == 1
    assert autoscale.desired_workers(601, 2.0, 300) == 2
    assert autoscale.desired_workers(6000, 2.0, 60) == 50


def test_per_worker_rate_counts_a_batch_once() -> None:
    # 100 items in batches of 10, each batch 2 s: every item is timed 2 s, a worker does 5/s
    assert autoscale.per_worker_rate(_timing(100, 200.0), batch_size=10) == pytest.approx(5.0)
    assert autoscale.per_worker_rate(None) is None
    assert autoscale.per_worker_rate(_timing(3, 0.0)) is None


def test_desired_by_kind_from_counts_and_timings() -> None:
    counts = {"t_scale": {"pending": 95, "running": 5}, "idle": {"pending": 0}}
    timings = {"t_scale": {"run": _timing(10, 5.0)}}  # 0.5 s an item: 2/s per worker
    assert autoscale.desired(counts, timings, 10) == {"idle": 0, "t_scale": 5}


def test_the_gauge_is_in_the_exposition() -> None:
    text = render(Snapshot(desired_workers={"histogram": 4, "coverage": 0}))
    assert 'renderer_queue_desired_workers{kind="histogram"} 4.0' in text
    assert 'renderer_queue_desired_workers{kind="coverage"} 0.0' in text


def test_metrics_snapshot_reads_the_signal_from_the_queue(db: Database) -> None:
    with db.connect() as conn:
        queue.enqueue_many(conn, [NewItem("t_scale", f"m{i}") for i in range(7)])
        snap = metrics.snapshot(conn, time.perf_counter(), 60)
    assert snap.desired_workers["t_scale"] == 1  # pending, never run: one worker to start


def _pool_processes(db: Database) -> int:
    with db.connect() as c:
        workers = queue.status(c)["workers"]
    return sum(1 for w in workers if "t_scale" in (w.get("kinds") or []))


def _wait(predicate: Callable[[], bool], timeout: float, what: str,
          proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the pool exited while waiting for {what}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise AssertionError(f"timed out waiting for {what}: {proc.communicate()[1]}")
        time.sleep(0.2)


@pytest.mark.acceptance
def test_a_burst_grows_the_pool_and_an_idle_queue_shrinks_it_to_min(db: Database) -> None:
    env = {**os.environ, "RENDERER_DATABASE_URL": db.url, "RENDERER_PLUGINS": PLUGIN,
           "RENDERER_POLL_SECONDS": "0.2", "RENDERER_QUEUE_TARGET_DRAIN_SECONDS": "0.05",
           "RENDERER_LEASE_SECONDS": "4"}  # a heartbeat a second: the workers list is fresh
    with db.connect() as conn:  # a record of the kind's speed: 0.3 s an item
        queue.enqueue(conn, "t_scale", "first")
    proc = subprocess.Popen([sys.executable, "-m", "renderer", "work",
                             "--kinds", "t_scale", "--autoscale", "1..3"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with db.connect(autocommit=True) as conn:
            _wait(lambda: queue.status(conn)["kinds"].get("t_scale", {}).get("done") == 1,
                  120, "the first item", proc)
            assert _pool_processes(db) == 1
            queue.enqueue_many(conn, [NewItem("t_scale", f"burst{i}") for i in range(100)])
            _wait(lambda: _pool_processes(db) == 3, 120, "the pool to grow to 3", proc)
            _wait(lambda: queue.remaining(conn, ["t_scale"]) == 0, 300, "the burst", proc)
            _wait(lambda: _pool_processes(db) == 1, 120, "the pool to shrink to 1", proc)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert "autoscale: 1 -> 3 processes" in err, err
    assert "autoscale: 2 -> 1 processes" in err, err
    with db.connect() as conn:
        assert queue.status(conn)["kinds"]["t_scale"]["done"] == 101
