"""The ``callbacks-sweep`` default schedule fires every minute, but while no callback waits
its ticks are skipped: an idle system gains no queue items; a waiting callback is swept."""

from __future__ import annotations

from datetime import timedelta

from renderer import callbacks, pipelines, queue, schedules
from renderer.db import Connection, connect
from renderer.worker import run_worker


def _items(conn: Connection) -> int:
    row = conn.execute("SELECT count(*) AS n FROM work_queue").fetchone()
    return int(row["n"]) if row else 0


def test_an_idle_system_gains_no_sweep_items_and_a_waiting_callback_is_still_swept(
        fresh_database_url: str) -> None:
    pipelines.load_all()  # the ops profile: its sweep kind and the check of its ticks
    with connect(fresh_database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schedules")
        schedules.ensure_defaults(conn)
        conn.execute("DELETE FROM schedules WHERE name <> 'callbacks-sweep'")
        row = conn.execute("SELECT created_at FROM schedules").fetchone()
        assert row is not None
        start = row["created_at"]
        before = _items(conn)
        for minute in range(1, 61):  # an idle hour: 60 ticks, none fired
            assert schedules.fire_due(conn, start + timedelta(minutes=minute)) == []
        assert _items(conn) == before
        set_id = queue.create_set(conn, "a run with a callback")
        queue.enqueue(conn, "callbacks-test-item", "1", set_id=set_id)
        callbacks.register(conn, set_id, "https://ci.example.org/status/1")
        fired = schedules.fire_due(conn, start + timedelta(minutes=61))
        assert [f.schedule for f in fired] == ["callbacks-sweep"]
    run_worker(fresh_database_url, kinds=[schedules.TICK_KIND, callbacks.SWEEP_KIND],
               until_empty=True)
    with connect(fresh_database_url) as conn:
        swept = conn.execute("SELECT state FROM work_queue WHERE kind = %s",
                             (callbacks.SWEEP_KIND,)).fetchall()
        assert swept == [{"state": "done"}]
        # the set has not ended: the callback still waits, and the next tick fires again
        record = callbacks.get(conn, set_id)
        assert record is not None and record["state"] == "waiting"
        assert len(schedules.fire_due(conn, start + timedelta(minutes=62))) == 1
