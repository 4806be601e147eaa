"""What the pages say about a set and the queue (renderer/web/pages.py): a finished set is
"done" with its duration, not "active" with an ETA of 0 ms; work pending with no worker alive
is said on the home page."""

from __future__ import annotations

from renderer import queue
from renderer.db import Database
from renderer.web import pages


def test_a_finished_set_is_done_with_its_duration(db: Database) -> None:
    with db.connect() as conn:
        conn.autocommit = True
        sid = queue.create_set(conn, "finished set")
        for key in ("a", "b"):
            queue.enqueue(conn, "set_state", key, set_id=sid)
        running = pages.set_data(conn, sid)["set"]
        assert running["status"] == "active"
        queue.complete(conn, queue.claim(conn, "set_state", limit=2))
        queue.rollup(conn)
        done = pages.set_data(conn, sid)["set"]
        listed = pages.sets_data(conn)["sets"]
    assert done["status"] == "done" and done["state"] == "active"
    assert done["eta_s"] is None and done["elapsed_seconds"] is not None
    assert [s["status"] for s in listed if s["id"] == sid] == ["done"]


def test_pending_work_without_a_worker_is_said(db: Database) -> None:
    with db.connect() as conn:
        conn.autocommit = True
        assert pages.home_data(conn)["nothing_working"] is False  # nothing pending
        queue.enqueue(conn, "set_state", "waiting")
        queue.rollup(conn)
        assert pages.home_data(conn)["nothing_working"] is True
