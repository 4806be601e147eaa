"""Faults found by attacking the queue (issue 12): error text that PostgreSQL refuses, enqueues
waiting on a worker's row locks, frozen workers holding their rows, children exiting 0
mid-item. Each test failed before its fix."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import psycopg
import pytest

from renderer import queue
from renderer.clip import LIMIT
from renderer.pool import run_pool
from renderer.queue import NewItem
from renderer.traffic.histogram_write import Pending
from renderer.traffic.layout import Prefix
from renderer.worker import Worker, run_worker
from tests.factories import backdate
from tests.queue_kinds import fresh, item, outputs, plugin_env, qconn, states
from tests.test_queue_reliability import connect, descendants, wait_for, worker_process

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

    files = Pending(Prefix(0, 3105, 410562))
    files.add("a.csv", 1, "c", Result())  # type: ignore[arg-type]
    [raw] = files.rejects["raws"]
    assert len(raw) <= LIMIT and raw.startswith("1,2,999") and raw.endswith("999")


# -- 7: enqueue never waits on a worker's row lock ------------------------------------------

def _enqueue_within(url: str, out: list[Any], **kwargs: Any) -> threading.Thread:
    """Enqueue in a thread whose connection gives up waiting on a lock after 5 s: an
    enqueue that waits on the worker fails with LockNotAvailable (no timing asserts)."""
    def run() -> None:
        try:
            with connect(url) as conn:
                conn.execute("SET lock_timeout = '5s'")
                conn.execute("SET statement_timeout = '10s'")
                out.append(queue.enqueue(conn, "t_record_one", "busy", **kwargs))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _run_as_a_worker(url: str, claimed: queue.Item, during: Any) -> None:
    """Lock the claimed item, write its output, call ``during()``, complete and commit: what
    a worker does with a batch (``complete`` as given, so old verbs can be tried too)."""
    with connect(url) as worker, worker.transaction():
        assert queue.lock(worker, [claimed]) == {claimed.id}
        worker.execute("INSERT INTO queue_test_output (kind, key) VALUES (%s, %s)",
                       [claimed.kind, claimed.key])
        during(worker)


def test_forced_enqueue_of_a_running_item_returns_at_once_and_reruns_it_once(
        database_url: str, qconn: Conn, plugin_env: None) -> None:
    queue.enqueue(qconn, "t_record_one", "busy")
    [claimed] = queue.claim(qconn, "t_record_one", owner="w")
    actions: list[Any] = []

    def force_twice(worker: Conn) -> None:
        for _ in range(2):
            _enqueue_within(database_url, actions, force=True).join(60)
        queue.complete(worker, [claimed])

    _run_as_a_worker(database_url, claimed, force_twice)
    assert actions == ["rerun", "rerun"]  # neither waited, both answered what they did
    assert item(qconn, "t_record_one", "busy")["state"] == "pending"  # two forces, one rerun
    run_worker(database_url, kinds=["t_record_one"], until_empty=True)
    assert outputs(qconn, "t_record_one") == {"busy": 2}
    queue.maintain(qconn)
    assert states(qconn, "t_record_one") == {"done": 1}
    assert qconn.execute("SELECT count(*) AS n FROM queue_reruns").fetchone()["n"] == 0


def test_a_rerun_asked_while_the_completion_commits_is_applied_once(
        database_url: str, qconn: Conn) -> None:
    queue.enqueue(qconn, "t_record_one", "busy")
    [claimed] = queue.claim(qconn, "t_record_one", owner="w")
    actions: list[Any] = []

    def complete_unaware(worker: Conn) -> None:
        # a completion that does not see the request (it committed in between)
        _enqueue_within(database_url, actions, force=True).join(60)
        worker.execute("SELECT renderer.queue_complete(%s::bigint[], %s)",
                       [[claimed.id], claimed.token])

    _run_as_a_worker(database_url, claimed, complete_unaware)
    assert actions == ["rerun"]
    assert item(qconn, "t_record_one", "busy")["state"] == "done"
    queue.maintain(qconn)
    assert item(qconn, "t_record_one", "busy")["state"] == "pending"
    queue.maintain(qconn)  # settled: no second rerun
    assert item(qconn, "t_record_one", "busy")["attempt"] == 0
    assert qconn.execute("SELECT count(*) AS n FROM queue_reruns").fetchone()["n"] == 0


# -- 8: a frozen worker, and late completions ------------------------------------------------

@pytest.mark.acceptance
def test_a_frozen_worker_loses_its_items_within_about_a_lease(
        fresh: str, plugin_env: None) -> None:
    with connect(fresh) as conn:
        queue.enqueue(conn, "t_slow_record", "frozen", {"seconds": 5, "slow_attempts": 1})
        victim = worker_process(fresh, "work", "--processes", "1", "--kinds", "t_slow_record")
        taker = None
        try:
            wait_for(lambda: item(conn, "t_slow_record", "frozen")["state"] == "running",
                     what="the item to be claimed")
            time.sleep(0.5)  # inside the handler, its transaction open
            frozen = [victim.pid, *descendants(victim.pid)]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            # its lease is 2 s; before, its rows stayed locked for time_limit + 60 s
            taker = worker_process(fresh, "work", "--processes", "1", "--kinds",
                                   "t_slow_record", "--until-empty")
            wait_for(lambda: outputs(conn, "t_slow_record") == {"frozen": 1}, timeout=45,
                     what="another worker to take the frozen worker's item over")
            _, err = taker.communicate(timeout=60)
            assert taker.returncode == 0, err
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            victim.terminate()
            victim.communicate(timeout=60)
            if taker is not None and taker.poll() is None:
                taker.kill()
        # the frozen handler woke up and finished: its session was ended, nothing committed
        assert outputs(conn, "t_slow_record") == {"frozen": 1}
        row = item(conn, "t_slow_record", "frozen")
        assert (row["state"], row["attempt"]) == ("done", 2)


def test_a_refused_completion_rolls_back_and_counts_as_rejected(
        database_url: str, qconn: Conn, plugin_env: None) -> None:
    queue.enqueue_many(qconn, [NewItem("t_usurp", f"u{i}", {"usurp": i == 4})
                               for i in range(6)])
    worker = Worker(database_url, [queue.get_kind("t_usurp")])
    worker._connect(first=True)
    try:
        assert worker._step()
    finally:
        worker._close()
    assert (worker.stats.done, worker.stats.rejected) == (5, 1)
    # the handler's writes of the refused item did not commit (before: they did)
    assert outputs(qconn, "t_usurp") == {f"u{i}": 1 for i in range(6) if i != 4}


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


def test_a_reaper_that_may_not_end_a_frozen_session_still_reaps_the_rest(
        database_url: str, qconn: Conn) -> None:
    """queue_reap_v2 run by a role that may not end the frozen worker's session (here: the
    session is a superuser's) warns and reaps the items no transaction holds, instead of
    failing the whole reap with insufficient_privilege."""
    queue.enqueue_many(qconn, [NewItem("t_record_one", k) for k in ("frozen", "free")])
    # two batches: a processing transaction holds its whole batch (one lock per batch)
    frozen = [*queue.claim(qconn, "t_record_one", owner="ice"),
              *queue.claim(qconn, "t_record_one", owner="ice")]
    queue.heartbeat(qconn, "ice", 60)
    role = f"reaper_{os.getpid()}"
    qconn.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        qconn.execute(f"GRANT USAGE ON SCHEMA renderer TO {role};"
                      f" GRANT ALL ON ALL TABLES IN SCHEMA renderer TO {role};"
                      f" GRANT ALL ON ALL SEQUENCES IN SCHEMA renderer TO {role}")
        backdate(qconn, state="running", lease_expires=1)
        qconn.execute("UPDATE queue_workers SET seen_at = now() - interval '1 hour'")
        with connect(database_url) as worker, worker.transaction():
            [held] = [i for i in frozen if i.key == "frozen"]
            assert queue.lock(worker, [held]) == {held.id}  # the frozen worker's session
            with connect(database_url) as reaper:
                reaper.execute(f"SET ROLE {role}; SET search_path = renderer, public")
                assert queue.reap(reaper) == 1  # "free"; "frozen" stays with its session
        assert item(qconn, "t_record_one", "free")["state"] == "pending"
    finally:
        qconn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_a_worker_is_known_to_the_reaper_before_its_first_claim(
        database_url: str, qconn: Conn, plugin_env: None) -> None:
    """A worker whose link is cut before its heartbeat thread got through must still be
    reapable: the reaper ends the sessions only of the workers it finds in queue_workers."""
    worker = Worker(database_url, [queue.get_kind("t_usurp")])
    worker._connect(first=True)  # what run() does before the heartbeat thread and any claim
    try:
        row = qconn.execute("SELECT owner FROM queue_workers WHERE owner = %s",
                            (worker.owner,)).fetchone()
    finally:
        worker._close()
    assert row is not None


@pytest.mark.acceptance
def test_until_empty_waits_for_a_rerun_request_that_came_after_the_completion(
        fresh: str, plugin_env: None) -> None:
    """A request to run a running item again can commit just after that item's completion
    read the requests (the two transactions overlap): the item ends done with the request
    left over, for maintenance to apply. ``--until-empty`` must not stop before it does
    (before: it stopped, and the item never ran again; a three-host run lost a coverage
    rebuild that way)."""
    with connect(fresh) as conn:
        queue.enqueue(conn, "t_record", "late")
        assert run_pool(fresh, processes=1, kinds=["t_record"], until_empty=True).done == 1
        conn.execute("INSERT INTO queue_reruns (kind, key, requested_at) "
                     "SELECT kind, key, started_at + interval '1 ms' FROM queue_items "
                     "WHERE kind = 't_record' AND key = 'late'")
        run_pool(fresh, processes=1, kinds=["t_record"], until_empty=True)
        assert outputs(conn, "t_record") == {"late": 2}
        assert conn.execute("SELECT count(*) AS n FROM queue_reruns").fetchone()["n"] == 0
