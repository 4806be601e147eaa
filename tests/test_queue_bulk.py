"""Set-based enqueue (renderer.queue.enqueue_bulk): the same outcome as enqueue_many."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psycopg
import pytest

from renderer import queue
from renderer.queue import NewItem
from tests.queue_kinds import item, qconn, states

__all__ = ["qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]
Enqueue = Callable[[Conn, Iterable[NewItem]], int]
FIELDS = ("state", "priority", "payload", "fingerprint", "grp", "rerun", "attempt")


def _bulk(conn: Conn, items: Iterable[NewItem]) -> int:
    return queue.enqueue_bulk(conn, items, small=0)  # staged, however few


def _bulk_small_chunks(conn: Conn, items: Iterable[NewItem]) -> int:
    return queue.enqueue_bulk(conn, items, chunk=3, small=0)  # every chunk boundary exercised


def _scenario(conn: Conn, database_url: str, kind: str, enqueue: Enqueue) -> int:
    """Items in every state, then one enqueue call over them; returns what it returned."""
    s = f"{kind}-"
    queue.enqueue_many(conn, [NewItem(kind, k, fingerprint="f1") for k in
                              ("p", "d_same", "d_new", "d_force", "f", "r", "rl")])
    queue.enqueue(conn, kind, "c", set_id=s + "cancelled")
    queue.cancel_set(conn, s + "cancelled")
    queue.create_set(conn, s + "paused")
    queue.pause_set(conn, s + "paused")
    # "rl" (the last key) in a batch of its own: a worker's lock holds its whole batch
    done = queue.claim(conn, kind, limit=6) + queue.claim(conn, kind)
    by_key = {i.key: i for i in done}
    queue.complete(conn, [by_key[k] for k in ("d_same", "d_new", "d_force")])
    queue.fail(conn, by_key["f"], "boom", final=True)
    queue.release(conn, "python", [by_key["p"].id])
    with psycopg.connect(database_url) as worker:  # a worker holds "rl" for its batch
        assert queue.lock(worker, [by_key["rl"]]) == {by_key["rl"].id}
        n = enqueue(conn, [
            NewItem(kind, "n1", {"a": 1}, priority=1), NewItem(kind, "n1", {"a": 2}, priority=5),
            NewItem(kind, "n2", group="g"), NewItem(kind, "n2", group="g", priority=2),
            NewItem(kind, "p", priority=3, fingerprint="f2"),
            NewItem(kind, "d_same", {"again": True}, fingerprint="f1"),
            NewItem(kind, "d_new", {"new": True}, fingerprint="f2"),
            NewItem(kind, "d_force", force=True),
            NewItem(kind, "f", fingerprint="f9"),
            NewItem(kind, "r", fingerprint="f2"),
            NewItem(kind, "rl", fingerprint="f3"),
            NewItem(kind, "c", set_id=s + "cancelled"),
            NewItem(kind, "h", set_id=s + "paused"),
            *(NewItem(kind, f"m{i % 7}", priority=i % 4) for i in range(20)),
        ])
        worker.rollback()
    return n


def _outcome(conn: Conn, kind: str) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT key, state, priority, payload, fingerprint, grp, rerun, attempt,"
        " replace(set_id, %(p)s, '') AS set_id FROM queue_items WHERE kind = %(k)s",
        {"k": kind, "p": f"{kind}-"}).fetchall()
    reruns = conn.execute("SELECT key, fingerprint FROM queue_reruns WHERE kind = %s",
                          [kind]).fetchall()
    groups = conn.execute("SELECT grp, open FROM queue_groups WHERE kind = %s",
                          [kind]).fetchall()
    st = queue.status(conn)["kinds"].get(kind, {})
    return {"items": {r["key"]: r for r in rows}, "reruns": reruns, "groups": groups,
            "counts": {s: st.get(s, 0) for s in queue.STATES if st.get(s, 0)}}


def test_bulk_enqueue_has_the_outcome_of_enqueue_many(qconn: Conn, database_url: str) -> None:
    n_many = _scenario(qconn, database_url, "t_record", queue.enqueue_many)
    n_bulk = _scenario(qconn, database_url, "t_noop", _bulk)
    _scenario(qconn, database_url, "t_record_one", _bulk_small_chunks)
    many, bulk = _outcome(qconn, "t_record"), _outcome(qconn, "t_noop")
    assert bulk == many
    assert _outcome(qconn, "t_record_one") == many
    # one chunk: the same count; small chunks count a key again in each chunk that changed it
    assert n_bulk == n_many
    # the rules themselves, spelled out once (the comparison above holds bulk to them)
    got = bulk["items"]
    assert (got["n1"]["priority"], got["n1"]["payload"]) == (5, {"a": 2})
    assert got["p"]["state"] == "pending" and got["p"]["priority"] == 3
    assert got["d_same"]["state"] == "done"
    assert got["d_new"]["state"] == "pending" and got["d_new"]["payload"] == {"new": True}
    assert got["d_force"]["state"] == "pending" and got["f"]["state"] == "pending"
    assert got["r"]["state"] == "running" and got["r"]["rerun"]
    assert bulk["reruns"] == [{"key": "rl", "fingerprint": "f3"}]
    assert got["c"]["state"] == "cancelled" and got["h"]["state"] == "held"
    assert bulk["counts"] == states(qconn, "t_noop")


def test_bulk_counts_add_up_over_many_chunks(qconn: Conn) -> None:
    keys = (f"k{i}" for i in range(25_000))
    assert queue.enqueue_keys(qconn, "t_noop", keys, payload={"z": 1}, set_id="census",
                              chunk=4_000) == 25_000
    assert states(qconn) == {"pending": 25_000}
    st = queue.status(qconn)
    assert st["sets"]["census"]["pending"] == 25_000 == st["total"]["pending"]
    assert item(qconn, "t_noop", "k24999")["payload"] == {"z": 1}
    # again: nothing changes; then a forced re-run of a few done ones
    assert queue.enqueue_keys(qconn, "t_noop", (f"k{i}" for i in range(25_000))) == 0
    queue.complete(qconn, queue.claim(qconn, "t_noop", limit=10))
    assert queue.enqueue_keys(qconn, "t_noop", (f"k{i}" for i in range(25_000)),
                              force=True) == 10
    assert states(qconn) == {"pending": 25_000}
    assert queue.status(qconn)["total"]["pending"] == 25_000


def test_bulk_enqueue_is_all_or_nothing(qconn: Conn) -> None:
    def broken() -> Iterator[NewItem]:
        for i in range(10):
            yield NewItem("t_noop", f"x{i}")
        raise OSError("the source went away")

    with pytest.raises(OSError):
        queue.enqueue_bulk(qconn, broken(), chunk=4, small=0)
    assert states(qconn) == {}
    with pytest.raises(ValueError, match="chunk"):
        queue.enqueue_keys(qconn, "t_noop", ["a"], chunk=0)
    assert queue.enqueue_bulk(qconn, []) == 0
    assert queue.enqueue_bulk(qconn, [NewItem("t_noop", "few")]) == 1  # by enqueue_many


def test_bulk_enqueue_into_a_throttled_set_holds_the_items_as_enqueue_many(
        qconn: Conn) -> None:
    """Items of a throttled set wait held for the claim to let them through (issue 18);
    the staged insert of new keys made them pending, past the limits (before the fix)."""
    queue.throttle(qconn, "slow", in_flight=2)
    queue.enqueue_keys(qconn, "t_noop", (f"b{i}" for i in range(5)), set_id="slow")
    queue.enqueue_many(qconn, [NewItem("t_record", f"m{i}", set_id="slow") for i in range(5)])
    assert states(qconn, "t_noop") == states(qconn, "t_record") == {"held": 5}
    assert len(queue.claim(qconn, "t_noop", limit=10)) == 2
