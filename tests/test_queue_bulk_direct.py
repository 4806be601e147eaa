"""The bulk enqueue's straight copy (renderer/queue/_bulk.py): chunks of keys new to the
queue go straight into work_queue, anything else the staged way, with one outcome."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from renderer import db, queue
from renderer.errors import DatabaseUnavailable
from renderer.queue import NewItem
from tests.queue_kinds import item, qconn, states

__all__ = ["qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]


def _rows(conn: Conn, kind: str) -> dict[str, tuple[Any, ...]]:
    return {r["key"]: (r["state"], r["priority"], r["payload"], r["set_id"], r["grp"])
            for r in conn.execute("SELECT * FROM work_queue WHERE kind = %s", [kind])}


def _totals(conn: Conn, kind: str) -> dict[str, int]:
    got = queue.status(conn)["kinds"].get(kind, {})
    return {s: got[s] for s in queue.STATES if got.get(s)}


def _both(conn: Conn, make: Any, chunk: int = 1000,
          recounted: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outcome of enqueue_many and of enqueue_bulk over the same items (two kinds);
    ``recounted``: keys the bulk counts again in a later chunk that changed them."""
    n_many = queue.enqueue_many(conn, make("t_record"))
    n_bulk = queue.enqueue_bulk(conn, make("t_noop"), small=0, chunk=chunk)
    assert n_bulk == n_many + recounted
    many, got = _rows(conn, "t_record"), _rows(conn, "t_noop")
    assert _totals(conn, "t_noop") == _totals(conn, "t_record") == states(conn, "t_noop")
    return many, got


def test_duplicates_in_a_chunk_of_new_keys_keep_the_highest_priority(qconn: Conn) -> None:
    """A key twice in a chunk: the copy is refused and the chunk goes staged (one row, the
    highest priority's payload), as enqueue_many does."""
    def make(kind: str) -> list[NewItem]:
        return [NewItem(kind, "a", {"p": 1}, priority=1), NewItem(kind, "b"),
                NewItem(kind, "a", {"p": 7}, priority=7), NewItem(kind, "c", group="g")]

    many, got = _both(qconn, make)
    assert got == many
    assert got["a"][1:3] == (7, {"p": 7}) and len(got) == 3


def test_a_key_of_an_earlier_chunk_again_in_a_later_one(qconn: Conn) -> None:
    """Chunk 1 goes straight in; chunk 2 repeats one of its keys with a higher priority
    and is refused, so it and the rest go staged: the pending item's priority rises."""
    def make(kind: str) -> list[NewItem]:
        return [*(NewItem(kind, f"k{i}") for i in range(4)), NewItem(kind, "k1", priority=9),
                *(NewItem(kind, f"n{i}") for i in range(5))]

    many, got = _both(qconn, make, chunk=4, recounted=1)  # k1's priority
    assert got == many
    assert got["k1"][1] == 9 and len(got) == 9


def test_new_keys_into_paused_cancelled_and_throttled_sets(qconn: Conn) -> None:
    queue.create_set(qconn, "paused")
    queue.pause_set(qconn, "paused")
    queue.enqueue(qconn, "t_noop", "old", set_id="cancelled")
    queue.enqueue(qconn, "t_record", "old", set_id="cancelled")
    queue.cancel_set(qconn, "cancelled")
    queue.throttle(qconn, "slow", per_hour=3)

    def make(kind: str) -> Iterator[NewItem]:
        for s in ("paused", "cancelled", "slow", None, "fresh"):
            yield from (NewItem(kind, f"{s}-{i}", set_id=s) for i in range(3))

    many, got = _both(qconn, make)
    assert got == many
    assert {k: v[0] for k, v in got.items() if k.endswith("-0")} == {
        "paused-0": "held", "cancelled-0": "cancelled", "slow-0": "held",
        "None-0": "pending", "fresh-0": "pending"}
    assert len(queue.claim(qconn, "t_noop", limit=100)) == 3 + 3 + 3  # slow: its 3 an hour


def test_a_retry_after_a_crash_mid_enqueue_enqueues_each_item_once(
        qconn: Conn, database_url: str) -> None:
    """The backend dies while the second chunk is read (the first copied straight in, not
    committed): nothing stays; the retry enqueues every item once and the counters agree.
    Then a caller that committed the first half before crashing retries the whole set."""
    with psycopg.connect(database_url) as killer, db.connect(database_url) as conn:
        pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]

        def dying() -> Iterator[str]:
            for i in range(30):
                if i == 15:
                    killer.execute("SELECT pg_terminate_backend(%s)", [pid])
                yield f"k{i}"

        with pytest.raises(DatabaseUnavailable):
            queue.enqueue_keys(conn, "t_noop", dying(), set_id="census", chunk=10)
    assert states(qconn) == {} and _totals(qconn, "t_noop") == {}
    assert qconn.execute("SELECT count(*) AS n FROM queue_sets").fetchone()["n"] == 0

    assert queue.enqueue_keys(qconn, "t_noop", (f"k{i}" for i in range(15)),
                              set_id="census", chunk=10) == 15  # committed, then a crash
    assert queue.enqueue_keys(qconn, "t_noop", (f"k{i}" for i in range(30)),
                              set_id="census", chunk=10) == 15
    assert states(qconn) == {"pending": 30} == _totals(qconn, "t_noop")
    assert queue.status(qconn)["sets"]["census"]["pending"] == 30
    assert item(qconn, "t_noop", "k29")["set_id"] == "census"


def test_two_sessions_copying_the_same_keys_enqueue_each_once(
        qconn: Conn, database_url: str) -> None:
    """The second session's copy waits on the first's uncommitted keys, is refused when the
    first commits, and goes staged: each key once, no error, the counters agree."""
    got: list[Any] = []
    with db.connect(database_url) as first:
        first.execute("SELECT 1")  # a transaction of the caller's, open until it commits
        assert queue.enqueue_keys(first, "t_noop", (f"k{i}" for i in range(100))) == 100

        def second() -> None:
            try:
                with db.connect(database_url) as conn:
                    got.append(queue.enqueue_keys(conn, "t_noop",
                                                  (f"k{i}" for i in range(50, 150))))
                    conn.commit()
            except Exception as exc:  # shown by the assertion below
                got.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)  # it waits on the first's uncommitted keys
        assert thread.is_alive(), got
        first.commit()
    thread.join(30)
    assert got == [50]
    assert states(qconn) == {"pending": 150} == _totals(qconn, "t_noop")
