"""The read side as history grows: set lists paged by keyset, status of some sets, and the
prune verb forgetting the sets it emptied (issue 17)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from typing import Any

import psycopg
import pytest

from renderer import queue
from renderer.db import Database
from renderer.queue import NewItem
from tests.factories import backdate
from tests.queue_kinds import qconn, states
from tests.test_web_server import Live, live

__all__ = ["live", "qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]


def _sets(conn: Conn, n: int) -> None:
    """n sets; every pair shares its created_at (ties broken by id)."""
    for i in range(n):
        queue.create_set(conn, f"s{i:02d}")
    conn.execute("UPDATE queue_sets SET created_at = now() - make_interval(mins => "
                 "(substr(id, 2)::int / 2))")


def test_set_list_pages_by_keyset_without_gaps_or_repeats(qconn: Conn) -> None:
    _sets(qconn, 7)
    everything = [s["id"] for s in queue.list_sets(qconn)]
    assert len(everything) == 7
    seen: list[str] = []
    before = None
    while True:
        page = queue.list_sets(qconn, limit=3, before=before)
        if not page:
            break
        seen += [s["id"] for s in page]
        before = (page[-1]["created_at"], page[-1]["id"])
    assert seen == everything  # ties in created_at included: ordered by (created_at, id)
    created = [s["created_at"] for s in queue.list_sets(qconn)]
    assert created == sorted(created, reverse=True)
    assert [s["id"] for s in queue.list_sets(qconn, set_id="s03")] == ["s03"]


def test_status_of_some_sets_only(qconn: Conn) -> None:
    queue.enqueue_many(qconn, [NewItem("t_noop", f"k{i}", set_id=f"set{i % 3}")
                               for i in range(30)])
    everything, some, none = (_timeless(queue.status(qconn, sets=s))
                              for s in (None, ["set1"], []))
    assert set(everything["sets"]) == {"set0", "set1", "set2"}
    assert some["sets"] == {"set1": everything["sets"]["set1"]}
    assert none["sets"] == {}
    for st in (some, none):
        assert st["kinds"] == everything["kinds"] and st["total"] == everything["total"]


def _timeless(st: dict[str, Any]) -> dict[str, Any]:
    """A status without the ages that move between two calls."""
    def clean(entry: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in entry.items() if k != "oldest_pending_s"}

    return {"total": clean(st["total"]),
            **{scope: {name: clean(e) for name, e in st[scope].items()}
               for scope in ("kinds", "sets")}}


def test_prune_forgets_the_sets_it_emptied(qconn: Conn) -> None:
    old, recent, busy = "old", "recent", "busy"
    queue.enqueue_many(qconn, [
        *(NewItem("t_noop", f"o{i}", set_id=old, group="g-old") for i in range(3)),
        *(NewItem("t_noop", f"r{i}", set_id=recent, group="g-recent") for i in range(2)),
        NewItem("t_noop", "b0", set_id=busy), NewItem("t_noop", "b1", set_id=busy)])
    queue.add_rule(qconn, "t_noop", "g-old", "t_sum", "sum-old", set_id=old)
    queue.add_rule(qconn, "t_noop", "g-recent", "t_sum", "sum-recent", set_id=recent)
    queue.complete(qconn, [i for i in queue.claim(qconn, "t_noop", limit=10)
                           if i.key != "b1"])
    queue.complete(qconn, queue.claim(qconn, "t_sum", limit=10))  # what the rules fired
    queue.maintain(qconn)
    queue.rollup(qconn)
    qconn.execute("SELECT renderer.queue_rollup_timings()")
    runs_before = _runs(qconn)
    backdate(qconn, finished_at=timedelta(days=10), keys=["o0", "o1", "o2", "b0", "sum-old"])
    qconn.execute("UPDATE queue_sets SET created_at = now() - interval '11 days',"
                  " changed_at = now() - interval '11 days' WHERE id IN ('old', 'busy')")
    qconn.execute("UPDATE queue_groups SET closed_at = now() - interval '10 days'"
                  " WHERE grp = 'g-old'")

    assert queue.prune(qconn, timedelta(days=7)) == 5  # o0..o2, sum-old and b0
    assert {s["id"] for s in queue.list_sets(qconn)} >= {recent, busy}
    assert not queue.list_sets(qconn, set_id=old)  # empty and old: forgotten
    assert queue.list_sets(qconn, set_id=busy)  # one item left (b1 running): kept
    rules = qconn.execute("SELECT grp FROM queue_rules").fetchall()
    assert [r["grp"] for r in rules] == ["g-recent"]
    groups = {r["grp"] for r in qconn.execute("SELECT grp FROM queue_groups").fetchall()}
    assert "g-old" not in groups and "g-recent" in groups
    timing_sets = {r["set_id"] for r in qconn.execute(
        "SELECT DISTINCT set_id FROM queue_timings").fetchall()}
    assert old not in timing_sets and recent in timing_sets
    assert _runs(qconn) == runs_before  # /metrics' completions never go down
    assert states(qconn, "t_noop") == {"done": 2, "running": 1}
    assert states(qconn, "t_sum") == {"done": 1}
    assert queue.status(qconn)["total"]["done"] == 3


def _runs(conn: Conn) -> dict[str, int]:
    return {k: t["run"].count for k, t in queue.timings(conn).items() if "run" in t}


def test_sets_pages_follow_the_cursor(live: Callable[..., Live], db: Database) -> None:
    server = live()
    with db.connect() as conn:
        for i in range(53):
            queue.create_set(conn, f"page-{i:02d}")
        conn.commit()
    first = server.get("/api/sets").json()
    assert len(first["sets"]) == 50 and first["next"]
    second = server.get("/api/sets", params={"before": first["next"]}).json()
    assert len(second["sets"]) == 3 and second["next"] is None
    ids = [s["id"] for s in first["sets"] + second["sets"]]
    assert sorted(ids) == [f"page-{i:02d}" for i in range(53)] and len(set(ids)) == 53
    html = server.get("/sets", headers={"accept": "text/html"}).text
    link = re.search(r'class="next-page" href="([^"]+)"', html)
    assert link is not None
    older = server.get(unescape(link.group(1)), headers={"accept": "text/html"}).text
    assert all(s["id"] in older for s in second["sets"]) and "next-page" not in older
    bad = server.get("/api/sets", params={"before": "yesterday"})
    assert bad.status_code == 400 and "cursor" in bad.json()["error"]["message"]


@pytest.mark.parametrize("cursor", ["2026-01-01T00:00:00|x", "|x", "no-bar"])
def test_a_bad_cursor_is_a_400(live: Callable[..., Live], cursor: str) -> None:
    assert live().get("/api/sets", params={"before": cursor}).status_code == 400
