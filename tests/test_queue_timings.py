"""The queue's timing histograms: claim waits and run times per (kind, set), as the set page
and ``/metrics`` read them, and the bucket arithmetic behind their percentiles."""

from __future__ import annotations

import math
import time
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderer import queue
from renderer.errors import LeaseLost
from renderer.queue._timings import bucket_of, quantile
from tests.factories import backdate
from tests.queue_kinds import fresh, plugin_env, qconn, take_over

__all__ = ["fresh", "plugin_env", "qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]
durations = st.lists(st.floats(min_value=1e-5, max_value=1e5, allow_nan=False), min_size=1,
                     max_size=200)


def _buckets(values: list[float]) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in values:
        out[bucket_of(v)] = out.get(bucket_of(v), 0) + 1
    return out


@given(durations, st.floats(min_value=0.01, max_value=1.0))
def test_a_quantile_estimate_lies_in_the_bucket_of_the_true_quantile(
        values: list[float], q: float) -> None:
    true = sorted(values)[math.ceil(q * len(values)) - 1]  # nearest rank
    lower, upper = queue.bucket_bounds(bucket_of(true))
    estimate = quantile(_buckets(values), q, max(values))
    assert estimate is not None
    assert lower <= estimate <= upper and estimate <= max(values)
    assert true / 2 <= estimate <= true * 2 or true <= 0.001  # off by less than a factor 2


@given(durations, st.floats(0, 1), st.floats(0, 1))
def test_quantiles_grow_with_q(values: list[float], a: float, b: float) -> None:
    buckets = _buckets(values)
    low, high = sorted((a, b))
    assert quantile(buckets, low) <= quantile(buckets, high)  # type: ignore[operator]


@given(st.floats(min_value=0, max_value=1e9))
def test_a_time_is_inside_its_bucket(seconds: float) -> None:
    lower, upper = queue.bucket_bounds(bucket_of(seconds))
    assert (lower < seconds <= upper) or bucket_of(seconds) in (0, 40)


def test_sql_buckets_agree_with_python(qconn: Conn) -> None:
    values = [0.0, 0.0005, 0.001, 0.0015, 0.002, 0.0031, 0.75, 1.0, 3.3, 59.9, 3600.0, 1.7e6]
    rows = qconn.execute("SELECT renderer.queue_timing_bucket(x) AS b FROM unnest(%s::float8[]) x",
                         (values,)).fetchall()
    assert [r["b"] for r in rows] == [bucket_of(v) for v in values]


def test_a_set_records_its_claim_waits_and_run_times(qconn: Conn) -> None:
    for key in ("a", "b"):
        queue.enqueue(qconn, "t_record", key, set_id="timed")
    queue.enqueue(qconn, "t_noop", "other")  # no set: counted for the kind, not for "timed"
    backdate(qconn, kind="t_record", enqueued_at=3, run_after=3)
    claimed = queue.claim(qconn, "t_record", limit=2)
    backdate(qconn, kind="t_record", started_at=10)
    queue.complete(qconn, claimed)

    def check() -> None:
        mine = queue.timings(qconn, "timed")
        assert set(mine) == {"t_record"}
        wait, run = mine["t_record"]["claim_wait"], mine["t_record"]["run"]
        assert wait.count == 2 and 3 <= wait.mean_seconds < 4
        assert run.count == 2 and 10 <= run.mean_seconds < 11 and run.max_seconds < 11
        assert 8.192 <= run.quantile(0.5) <= run.max_seconds  # type: ignore[operator]
        assert run.last_at >= run.first_at

    check()
    queue.maintain(qconn)  # folds the deltas into the histograms: the same answers
    assert qconn.execute("SELECT count(*) AS n FROM queue_timing_deltas").fetchone()["n"] == 0
    check()
    assert "t_record" in queue.timings(qconn)  # every set together


def test_a_refused_completion_records_no_run(qconn: Conn) -> None:
    queue.enqueue(qconn, "t_record", "z", set_id="fenced")
    [claimed] = queue.claim(qconn, "t_record")
    take_over(qconn, claimed.id)
    with pytest.raises(LeaseLost):
        queue.complete(qconn, [claimed])
    assert "run" not in queue.timings(qconn, "fenced")["t_record"]


def test_a_run_time_includes_the_handler_time(qconn: Conn) -> None:
    """finished_at is the moment of completion, not the start of the transaction the
    handler ran in (now()): else every run time leaves out the handler's own work."""
    for key in ("ok", "bad"):
        queue.enqueue(qconn, "t_record", key, set_id="slow")
    claimed = {item.key: item for item in queue.claim(qconn, "t_record", limit=2)}
    with qconn.transaction():  # as a worker: one transaction around the handler and finish
        time.sleep(0.3)
        queue.finish(qconn, claimed["ok"].token, [claimed["ok"].id],
                     [(claimed["bad"].id, "boom", None, "failed")])
    rows = qconn.execute("SELECT key, extract(epoch FROM finished_at - started_at) AS s "
                         "FROM queue_items WHERE set_id = 'slow' ORDER BY key").fetchall()
    assert [r["key"] for r in rows] == ["bad", "ok"]
    assert all(r["s"] >= 0.3 for r in rows), rows
    assert queue.timings(qconn, "slow")["t_record"]["run"].mean_seconds >= 0.3
