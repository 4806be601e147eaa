"""One advisory lock per running batch instead of a row lock per item (issue 16): the
processing transaction writes nothing per item before its completion, and every verb that
must leave a running batch alone (reap, heartbeat, release, enqueue) still does. (The row
locks of queue_lock_v2, two releases back, lock nothing since per-batch leases: its workers
cannot run beside this release, docs/queue-leases.md.)"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from renderer import queue
from renderer.errors import LockNotAvailable
from renderer.queue import NewItem
from tests.queue_kinds import expire_leases, item, qconn, states
from tests.test_queue_reliability import connect, wait_for

__all__ = ["qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]


def _claim(qconn: Conn, keys: list[str], owner: str = "w") -> list[queue.Item]:
    queue.enqueue_many(qconn, [NewItem("t_record", k) for k in keys])
    return queue.claim(qconn, "t_record", owner=owner, limit=len(keys))


def test_a_running_batch_holds_no_row_lock_and_writes_nothing(
        database_url: str, qconn: Conn) -> None:
    batch = _claim(qconn, ["a", "b", "c"])
    with connect(database_url) as worker, worker.transaction():
        assert queue.lock(worker, batch) == {i.id for i in batch}
        wal = worker.execute("SELECT pg_current_xact_id_if_assigned() AS x").fetchone()
        assert wal["x"] is None  # no transaction id: nothing written, no row locked
        with connect(database_url) as other, other.transaction():
            # before: the worker's row locks made this fail
            rows = other.execute("SELECT id FROM work_queue WHERE id = ANY (%s)"
                                 " FOR UPDATE NOWAIT", [[i.id for i in batch]]).fetchall()
            assert len(rows) == 3
        queue.complete(worker, batch)
    assert states(qconn, "t_record") == {"done": 3}


def test_reap_heartbeat_release_leave_a_running_batch_alone(
        database_url: str, qconn: Conn) -> None:
    running = _claim(qconn, ["r1", "r2"], owner="w")
    _claim(qconn, ["i1"], owner="w2")
    expire_leases(qconn)
    with connect(database_url) as worker:
        with worker.transaction():
            locked = queue.lock(worker, running)
            assert locked == {i.id for i in running}
            assert queue.reap(qconn) == 1  # i1 alone
            assert queue.heartbeat(qconn, "w", 60) == 0
            assert queue.release(qconn, "w") == 0
            assert {item(qconn, "t_record", k)["state"] for k in ("r1", "r2")} == {"running"}
        # the processing transaction ended without completing: the batch is free again
        assert queue.heartbeat(qconn, "w", 60) == 2
        assert queue.release(qconn, "w") == 2
    assert states(qconn, "t_record") == {"pending": 3}


def test_an_enqueue_of_a_running_item_never_waits(database_url: str, qconn: Conn) -> None:
    [claimed] = _claim(qconn, ["busy"])
    with connect(database_url) as worker, worker.transaction():
        assert queue.lock(worker, [claimed]) == {claimed.id}
        with connect(database_url) as other:
            other.execute("SET lock_timeout = '5s'")
            assert queue.enqueue(other, "t_record", "busy", force=True) == "rerun"
            assert queue.enqueue_many(other, [NewItem("t_record", "busy", force=True),
                                              NewItem("t_record", "new")]) == 2
        assert item(qconn, "t_record", "busy")["rerun"] is False  # a request, not an update
        queue.complete(worker, [claimed])
    row = item(qconn, "t_record", "busy")
    assert (row["state"], row["attempt"]) == ("pending", 0)  # two requests, one rerun


def test_a_batch_a_reaper_is_taking_is_not_run(database_url: str, qconn: Conn) -> None:
    """The worker's lock waits for a reaper that took the batch first, then sees the rows
    taken (the rows are read after the lock, with a snapshot of their own)."""
    batch = _claim(qconn, ["x"])
    expire_leases(qconn)
    got: list[Any] = []
    with connect(database_url) as reaper:
        with reaper.transaction():
            assert queue.reap(reaper) == 1  # holds the batch's lock until commit

            def lock() -> None:
                try:
                    with connect(database_url) as worker, worker.transaction():
                        got.append(queue.lock(worker, batch))
                except BaseException as exc:
                    got.append(exc)

            thread = threading.Thread(target=lock)
            thread.start()
            wait_for(lambda: qconn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND wait_event = 'advisory'").fetchone()["n"] == 1,
                what="the worker to wait on the batch lock")
        thread.join(60)
    assert got == [set()]
    assert item(qconn, "t_record", "x")["state"] == "pending"


def test_the_batch_lock_is_transaction_scoped(database_url: str, qconn: Conn) -> None:
    """PgBouncer's transaction pooling: nothing of the lock outlives the transaction."""
    batch = _claim(qconn, ["p"])
    with connect(database_url) as worker:
        with worker.transaction():
            queue.lock(worker, batch)
        held = worker.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
                              " AND pid = pg_backend_pid()").fetchone()["n"]
        assert held == 0
        with connect(database_url) as other:
            other.execute("SET lock_timeout = '2s'")
            assert queue.release(other, "w") == 1


def test_a_lock_wait_is_bounded_by_the_callers_timeout(database_url: str, qconn: Conn) -> None:
    batch = _claim(qconn, ["t"])
    with connect(database_url) as first, first.transaction():
        queue.lock(first, batch)
        with connect(database_url) as second:
            second.execute("SET lock_timeout = '100ms'")
            with pytest.raises((LockNotAvailable, psycopg.errors.LockNotAvailable)), \
                    second.transaction():
                queue.lock(second, batch)


def test_a_heartbeat_leaves_a_fresh_lease_alone(qconn: Conn) -> None:
    """Only leases expiring within half a lease are extended: a batch just claimed is not
    rewritten (nor its lock taken) by its worker's heartbeat."""
    queue.enqueue_many(qconn, [NewItem("t_record", k) for k in ("fresh", "old")])
    [fresh] = queue.claim(qconn, "t_record", owner="hb", lease_seconds=60)
    [old] = queue.claim(qconn, "t_record", owner="hb", lease_seconds=20)
    assert queue.heartbeat(qconn, "hb", 60) == 1
    assert item(qconn, "t_record", "old")["lease_expires"] > item(
        qconn, "t_record", "fresh")["lease_expires"]
    queue.complete(qconn, [fresh, old])
