"""Faults found by attacking the queue (issue 12): error text that PostgreSQL refuses, enqueues
waiting on a worker's row locks, frozen workers holding their rows, children exiting 0
mid-item. Each test failed before its fix."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from renderer import queue
from renderer.clip import LIMIT
from renderer.pool import run_pool
from renderer.queue import NewItem
from renderer.traffic.histogram import _Files
from renderer.worker import run_worker
from tests.queue_kinds import fresh, outputs, plugin_env, qconn, states
from tests.test_queue_reliability import connect

__all__ = ["fresh", "plugin_env", "qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]


# -- 6: error text PostgreSQL refuses, and unbounded text ------------------------------------

def test_a_nul_in_one_message_fails_only_its_item_and_is_stored_bounded(
        database_url: str, qconn: Conn, plugin_env: None) -> None:
    queue.enqueue_many(qconn, [NewItem("t_nul", f"n{i}", {"fail": i == 3}) for i in range(6)])
    stats = run_worker(database_url, kinds=["t_nul"], until_empty=True)
    assert (stats.done, stats.failed) == (5, 1)
    assert outputs(qconn, "t_nul") == {f"n{i}": 1 for i in range(6) if i != 3}
    assert states(qconn, "t_nul") == {"done": 5, "failed": 1}
    attempt = queue.item_history(qconn, "t_nul", "n3")["attempts"][0]
    assert attempt["message"].startswith("bad\ufffdbyte xxx")
    assert "characters cut" in attempt["message"]
    assert len(attempt["message"]) <= LIMIT and len(attempt["traceback"]) <= LIMIT
    assert "raise ValueError" in attempt["traceback"]


def test_rejected_raw_lines_are_stored_bounded() -> None:
    class Result:
        file_error = None
        rows_read = rows_accepted = observations = 0
        rejects = [(2, "1,2," + "9" * 10_000_000, "too many fields")]

    files = _Files()
    files.add("a.csv", 1, "c", Result())  # type: ignore[arg-type]
    [raw] = files.rejects["raws"]
    assert len(raw) <= LIMIT and raw.startswith("1,2,999") and raw.endswith("999")


# -- 9: a child exiting with status 0 mid-item -----------------------------------------------

@pytest.mark.acceptance
def test_a_child_exiting_0_mid_item_releases_it_and_is_restarted(
        fresh: str, plugin_env: None) -> None:
    with connect(fresh) as conn:
        queue.enqueue(conn, "t_exit0", "quits")
        stats = run_pool(fresh, processes=1, kinds=["t_exit0"], until_empty=True)
        assert stats.restarts >= 1
        assert outputs(conn, "t_exit0") == {"quits": 1}
        assert states(conn) == {"done": 1}
        history = queue.item_history(conn, "t_exit0", "quits")["attempts"]
        assert [a["outcome"] for a in history] == ["crashed"]
