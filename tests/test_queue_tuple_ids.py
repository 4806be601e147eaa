"""The processing transaction finds its batch's rows at the tuple ids the claim returned
(issue 16, item 3: no primary-key descent an item in the lock and the completion). A row
that moved since the claim is still found (by its id), a tuple id is never taken for
another item's, and a lease taken over is still refused."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from renderer import queue
from renderer.errors import LeaseLost
from renderer.queue import NewItem
from tests.queue_kinds import qconn, states

__all__ = ["qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]


def _claim(qconn: Conn, keys: list[str]) -> list[queue.Item]:
    queue.enqueue_many(qconn, [NewItem("t_record", k) for k in keys])
    items = queue.claim_batch(qconn, ["t_record"], owner="w", limits=[len(keys)], leases=[60])
    assert len(items) == len(keys)
    return items


def _move(qconn: Conn, items: list[queue.Item]) -> None:
    """A new version of each row, as a heartbeat's lease extension makes: new tuple ids."""
    qconn.execute("UPDATE work_queue SET lease_expires = lease_expires + interval '1 s'"
                  " WHERE id = ANY (%s)", [[i.id for i in items]])


def test_the_worker_claim_returns_each_rows_tuple_id(qconn: Conn) -> None:
    items = _claim(qconn, ["a", "b", "c"])
    rows = qconn.execute("SELECT id, ctid::text AS tid FROM work_queue WHERE id = ANY (%s)",
                         [[i.id for i in items]]).fetchall()
    assert {i.id: i.tid for i in items} == {r["id"]: r["tid"] for r in rows}


def test_rows_that_moved_since_the_claim_are_locked_and_completed(qconn: Conn) -> None:
    items = _claim(qconn, ["a", "b", "c"])
    _move(qconn, items[:2])
    with qconn.transaction():
        assert queue.lock(qconn, items) == {i.id for i in items}
        queue.finish(qconn, items[0].token, [i.id for i in items], [],
                     tids=[i.tid for i in items])
    assert states(qconn, "t_record") == {"done": 3}


def test_another_items_tuple_id_is_not_taken_for_an_item(qconn: Conn) -> None:
    a, b = _claim(qconn, ["a", "b"])
    swapped = [queue.Item(**{**vars(a), "tid": b.tid})]
    with qconn.transaction():
        assert queue.lock(qconn, swapped) == {a.id}
        queue.finish(qconn, a.token, [a.id], [], tids=[b.tid])
    assert states(qconn, "t_record") == {"done": 1, "running": 1}
    assert qconn.execute("SELECT state FROM work_queue WHERE id = %s",
                         [b.id]).fetchone()["state"] == "running"


@pytest.mark.parametrize("moved", [False, True])
def test_a_lease_taken_over_is_refused_by_tuple_id_too(qconn: Conn, moved: bool) -> None:
    items = _claim(qconn, ["a", "b"])
    if moved:
        _move(qconn, items)
    # another worker took item a over (a new lease token), b is still ours
    qconn.execute("UPDATE work_queue SET lease_token = gen_random_uuid() WHERE id = %s",
                  [items[0].id])
    with qconn.transaction():
        assert queue.lock(qconn, items) == {items[1].id}
    with pytest.raises(LeaseLost) as lost, qconn.transaction():
        queue.finish(qconn, items[0].token, [i.id for i in items], [],
                     tids=[i.tid for i in items])
    assert lost.value.ids == [items[0].id]
    assert states(qconn, "t_record") == {"running": 2}


def test_items_without_tuple_ids_are_found_by_id(qconn: Conn) -> None:
    queue.enqueue_many(qconn, [NewItem("t_record", k) for k in ["a", "b"]])
    items = queue.claim(qconn, "t_record", owner="w", limit=2)  # the psql verb: no tuple ids
    assert all(i.tid is None for i in items)
    with qconn.transaction():
        assert queue.lock(qconn, items) == {i.id for i in items}
        queue.finish(qconn, items[0].token, [i.id for i in items], [])
    assert states(qconn, "t_record") == {"done": 2}
