"""The bulk enqueue's straight copy sends only the columns a chunk needs
(renderer/queue/_bulk.py, ``_new_columns``): a column every row leaves at its default is
left to it; one that some rows give is sent, filled in for the others as the default would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from renderer import queue
from renderer.queue import NewItem
from renderer.queue._bulk import _new_columns, _row
from tests.queue_kinds import qconn

__all__ = ["qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]
LATER = datetime(2100, 1, 1, tzinfo=UTC)


def _sent(items: list[NewItem], state: dict[str, str] | None = None) -> list[str]:
    return _new_columns([_row(i) for i in items], state or {}, None)[0]


def test_a_chunk_at_the_defaults_sends_kind_and_key_only() -> None:
    assert _sent([NewItem("k", "a"), NewItem("k", "b")]) == ["kind", "key"]
    assert _sent([NewItem("k", "a", set_id="s")], {"s": "pending"}) == ["kind", "key", "set_id"]


def test_a_column_one_row_gives_is_sent_for_all() -> None:
    items = [NewItem("k", "a", {"x": 1}, priority=5, fingerprint="", group="",
                     run_after=LATER, set_id="s"), NewItem("k", "b")]
    names, rows = _new_columns([_row(i) for i in items], {"s": "held"}, "NOW")
    assert names == ["kind", "key", "fingerprint", "set_id", "priority", "grp", "payload",
                     "run_after", "state"]
    assert list(rows) == [("k", "a", "", "s", 5, "", b'\x01{"x": 1}', LATER, "held"),
                          ("k", "b", None, None, 0, None, b"\x01{}", "NOW", "pending")]


def _columns(conn: Conn, kind: str) -> dict[str, tuple[Any, ...]]:
    return {r["key"]: (r["state"], r["priority"], r["payload"], r["fingerprint"], r["set_id"],
                       r["grp"], r["run_after"] if r["run_after"] != r["enqueued_at"] else "now")
            for r in conn.execute("SELECT * FROM work_queue WHERE kind = %s", [kind])}


def test_chunks_of_mixed_columns_enqueue_as_enqueue_many_does(qconn: Conn) -> None:
    """Chunks of 3 whose rows give different columns (empty strings are not NULL, a payload
    or run_after on one row only): every column of every row as enqueue_many gives it."""
    queue.create_set(qconn, "paused")
    queue.pause_set(qconn, "paused")
    soon = datetime.now(UTC) + timedelta(hours=1)

    def make(kind: str) -> list[NewItem]:
        return [NewItem(kind, "a"), NewItem(kind, "b"), NewItem(kind, "c"),
                NewItem(kind, "d", {"p": 1}), NewItem(kind, "e", run_after=soon),
                NewItem(kind, "f", fingerprint="", group=""),
                NewItem(kind, "g", set_id=""), NewItem(kind, "h", set_id="paused"),
                NewItem(kind, "i", priority=-3),
                NewItem(kind, "j", {"q": 2}, fingerprint="fp", set_id="s", priority=4,
                        group="g", run_after=soon),
                NewItem(kind, "k", {"q": 3}, fingerprint="fp2", set_id="s", priority=4,
                        group="g", run_after=LATER),
                NewItem(kind, "l", {"q": 4}, fingerprint="fp3", set_id="paused", priority=1,
                        group="g2", run_after=soon)]

    assert queue.enqueue_bulk(qconn, make("t_noop"), small=0, chunk=3) == \
        queue.enqueue_many(qconn, make("t_record")) == 12
    got, many = _columns(qconn, "t_noop"), _columns(qconn, "t_record")
    assert got == many
    assert got["a"] == ("pending", 0, {}, None, None, None, "now")
    assert got["f"][3:6] == ("", None, "") and got["g"][4] == ""
    assert got["h"][0] == got["l"][0] == "held"
