"""The queue's per-kind rows (migration 0027): the totals of /metrics, the autoscaling signal
and `queue status` read O(kinds) rows, and those rows always equal the per-set sums, through
completions, failures, reruns and the prune that forgets sets (issue 17)."""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta
from itertools import pairwise
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from renderer import queue, schema
from renderer.queue import NewItem
from renderer.web import metrics
from tests.factories import backdate
from tests.queue_kinds import OUTPUT_DDL, qconn, states
from tests.test_queue_cli import run

__all__ = ["qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]


def _per_set_counts(conn: Conn) -> dict[tuple[str, str], int]:
    rows = conn.execute("SELECT kind, state, sum(n)::bigint AS n FROM queue_counts"
                        " GROUP BY 1, 2 HAVING sum(n) <> 0").fetchall()
    return {(r["kind"], r["state"]): int(r["n"]) for r in rows}


def _kind_counts(conn: Conn) -> dict[tuple[str, str], int]:
    rows = conn.execute("SELECT kind, state, n FROM queue_kind_counts WHERE n <> 0").fetchall()
    return {(r["kind"], r["state"]): int(r["n"]) for r in rows}


def _per_set_timings(conn: Conn) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT kind, what, bucket, sum(n)::bigint AS n, sum(sum) AS sum, max(max) AS max,"
        " min(first_at) AS first_at, max(last_at) AS last_at FROM queue_timings"
        " GROUP BY 1, 2, 3").fetchall()
    return {(r["kind"], r["what"], r["bucket"]):
            (r["n"], r["sum"], r["max"], r["first_at"], r["last_at"]) for r in rows}


def _kind_timings(conn: Conn) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    rows = conn.execute("SELECT * FROM queue_kind_timings WHERE n <> 0").fetchall()
    return {(r["kind"], r["what"], r["bucket"]):
            (r["n"], r["sum"], r["max"], r["first_at"], r["last_at"]) for r in rows}


def _assert_equal_to_per_set_sums(conn: Conn) -> None:
    queue.rollup(conn)
    conn.execute("SELECT renderer.queue_rollup_timings()")
    assert _kind_counts(conn) == _per_set_counts(conn)
    per_set, per_kind = _per_set_timings(conn), _kind_timings(conn)
    assert per_kind.keys() == per_set.keys()
    for key, (n, total, top, first, last) in per_set.items():
        kn, ktotal, ktop, kfirst, klast = per_kind[key]
        assert (kn, ktop, kfirst, klast) == (n, top, first, last), key
        assert math.isclose(ktotal, total, rel_tol=1e-9, abs_tol=1e-12), key  # float sums


def _completed(conn: Conn) -> dict[str, int]:
    return {k: t["run"].count for k, t in queue.timings(conn).items() if "run" in t}


def _run_some(conn: Conn, prefix: str, sets: int) -> None:
    """Items in ``sets`` sets of two kinds: most completed, one failed, one left running."""
    queue.enqueue_many(conn, [NewItem("t_noop", f"{prefix}{i}", set_id=f"{prefix}-{i % sets}")
                              for i in range(4 * sets)]
                       + [NewItem("t_record", f"{prefix}r{i}", set_id=f"{prefix}-{i}")
                          for i in range(sets)])
    items = queue.claim(conn, "t_noop", limit=100)
    queue.complete(conn, items[:-2])
    queue.fail(conn, items[-2], RuntimeError("boom"), final=True)
    queue.complete(conn, queue.claim(conn, "t_record", limit=100))


def test_per_kind_rows_equal_the_per_set_sums_through_reruns_and_prune(qconn: Conn) -> None:
    _run_some(qconn, "a", 5)
    _assert_equal_to_per_set_sums(qconn)
    assert queue.status(qconn, sets=[])["kinds"]["t_noop"]["running"] == 1
    seen = [_completed(qconn)]

    # reruns: done items forced again, one of them run twice
    for key in ("a0", "a1", "ar0"):
        queue.enqueue(qconn, "t_record" if key == "ar0" else "t_noop", key, force=True)
    queue.complete(qconn, queue.claim(qconn, "t_noop", limit=10))
    queue.complete(qconn, queue.claim(qconn, "t_record", limit=10))
    queue.retry_failed(qconn, "t_noop")
    queue.complete(qconn, queue.claim(qconn, "t_noop", limit=10))
    _assert_equal_to_per_set_sums(qconn)
    seen.append(_completed(qconn))

    # prune: the old sets are forgotten, their timing rows folded into the kind's
    backdate(qconn, finished_at=timedelta(days=10), state="done")
    qconn.execute("UPDATE queue_sets SET created_at = now() - interval '11 days',"
                  " changed_at = now() - interval '11 days'")
    _run_some(qconn, "b", 3)  # recent sets, kept
    assert queue.prune(qconn, timedelta(days=7)) > 0
    kept = {s["id"] for s in queue.list_sets(qconn) if s["id"].startswith("a-")}
    assert len(kept) == 1  # the set of the running item; the other four were forgotten
    timed = {r["set_id"] for r in qconn.execute(
        "SELECT DISTINCT set_id FROM queue_timings WHERE set_id LIKE 'a-%'").fetchall()}
    assert timed <= kept  # the forgotten sets' timing rows went, folded into ''
    _assert_equal_to_per_set_sums(qconn)
    seen.append(_completed(qconn))

    # a rerun after the prune, and a recount (the repair that rewrites every counter row)
    queue.enqueue(qconn, "t_noop", "b0", force=True)
    queue.complete(qconn, queue.claim(qconn, "t_noop", limit=10))
    qconn.execute("SELECT renderer.queue_recount()")
    _assert_equal_to_per_set_sums(qconn)
    seen.append(_completed(qconn))

    for before, after in pairwise(seen):  # completions never go down
        assert all(after.get(k, 0) >= n for k, n in before.items()), (before, after)
    assert seen[-1]["t_noop"] > seen[0]["t_noop"]
    st = queue.status(qconn, sets=[])
    for kind in ("t_noop", "t_record"):  # the status' kinds are what the table holds
        assert {s: st["kinds"][kind][s] for s in queue.STATES if st["kinds"][kind][s]} \
            == states(qconn, kind)


def _tuples_read(conn: Conn, tables: tuple[str, ...]) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0) AS n"
        " FROM pg_stat_xact_user_tables WHERE relname = ANY (%s)", [list(tables)]).fetchone()
    return int(row["n"])


def test_the_totals_read_no_per_set_row(qconn: Conn) -> None:
    """/metrics and the autoscaling signal: kinds, total and timings from the per-kind rows,
    however many sets are kept (before 0027 they summed every set's rows)."""
    _run_some(qconn, "c", 12)
    _assert_equal_to_per_set_sums(qconn)
    per_set = ("queue_counts", "queue_timings")
    with qconn.transaction():
        before = _tuples_read(qconn, per_set)
        snap = metrics.snapshot(qconn, time.perf_counter())
        # At most one: a hash join of the asked sets (none) with queue_counts fetches its
        # first outer row before it finds the hash side empty, whatever the sets kept; the
        # planner picks it or a nested loop (none) by the statistics of the moment.
        assert _tuples_read(qconn, per_set) - before <= 1
    assert snap.items["t_noop"]["done"] == 46 and snap.items["t_record"]["done"] == 12
    assert snap.timings["t_noop"]["run"].count == 46


def test_a_page_of_sets_reads_its_own_rows(qconn: Conn) -> None:
    """Set rows by index, one probe per set asked for (the plan a big table gets)."""
    _run_some(qconn, "d", 40)
    _assert_equal_to_per_set_sums(qconn)
    qconn.execute("ANALYZE queue_counts")
    with qconn.transaction():
        qconn.execute("SET LOCAL enable_seqscan = off")
        before = _tuples_read(qconn, ("queue_counts",))
        st = queue.status(qconn, sets=["d-1", "d-2"])
        read = _tuples_read(qconn, ("queue_counts",)) - before
    assert set(st["sets"]) == {"d-1", "d-2"}
    every = queue.status(qconn)["sets"]  # all 40: what a page's rows must agree with
    for set_id in ("d-1", "d-2"):
        assert {s: st["sets"][set_id][s] for s in queue.STATES} \
            == {s: every[set_id][s] for s in queue.STATES}
    assert len(every) == 40
    own, rows = (int(qconn.execute(sql).fetchone()["n"]) for sql in (
        "SELECT count(*) AS n FROM queue_counts WHERE set_id IN ('d-1', 'd-2')",
        "SELECT count(*) AS n FROM queue_counts"))
    assert read <= own < rows / 10, (read, own, rows)  # their own rows, not every set's


def test_status_shows_the_open_sets_then_the_newest(qconn: Conn) -> None:
    for i in range(6):
        queue.create_set(qconn, f"e-{i}")
    qconn.execute("UPDATE queue_sets SET created_at = now() - make_interval(mins => 10 - "
                  "substr(id, 3)::int)")  # e-5 newest
    queue.enqueue_many(qconn, [NewItem("t_noop", f"e{i}", set_id=f"e-{i}") for i in range(6)])
    queue.complete(qconn, [i for i in queue.claim(qconn, "t_noop", limit=10)
                           if i.key not in ("e0", "e2")])  # e-0, e-2 are still open
    queue.enqueue(qconn, "t_noop", "e2b", set_id="e-2")  # pending beside the running one
    queue.rollup(qconn)
    assert queue.open_sets(qconn, 10) == ["e-2", "e-0"]
    assert queue.shown_sets(qconn, 4) == (["e-2", "e-0", "e-5", "e-4"], False)
    assert queue.shown_sets(qconn, 1) == (["e-2"], True)  # an open set left out
    queue.enqueue(qconn, "t_noop", "e3b", set_id="e-3")  # not folded in yet: still found
    assert queue.open_sets(qconn, 10) == ["e-3", "e-2", "e-0"]


def test_the_migration_fills_the_per_kind_rows_from_the_per_set_ones(
        fresh_database_url: str) -> None:
    """A database at 0026 (the revision before 0027) with history: 0027 sums what the per-set
    rows hold. Today's verbs write that history, so it must be a revision they run on."""
    url = fresh_database_url
    schema.downgrade(url, "0026")
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        queue.sync_kinds(conn)
        _run_some(conn, "m", 4)
        queue.rollup(conn)
        conn.execute("SELECT renderer.queue_rollup_timings()")
        _run_some(conn, "n", 2)  # deltas not folded yet: the first rollup after folds them
    schema.upgrade(url)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        _assert_equal_to_per_set_sums(conn)
        assert _kind_counts(conn)[("t_noop", "done")] == (4 * 4 - 2) + (4 * 2 - 2)


@pytest.mark.acceptance
def test_queue_status_command_shows_open_and_newest_sets(
        renderer_env: dict[str, str]) -> None:
    with psycopg.connect(renderer_env["RENDERER_DATABASE_URL"], autocommit=True,
                         row_factory=dict_row) as conn:
        queue.sync_kinds(conn)
        for i in range(5):
            queue.create_set(conn, f"cli-{i}")
        conn.execute("UPDATE queue_sets SET created_at = now() - make_interval(mins => 10 - "
                     "substr(id, 5)::int)")  # cli-4 newest
        queue.enqueue_many(conn, [NewItem("t_noop", f"k{i}", set_id=f"cli-{i}")
                                  for i in range(5)])
        queue.complete(conn, [i for i in queue.claim(conn, "t_noop", limit=10)
                              if i.key != "k1"])  # cli-1 open
    shown = json.loads(run(["queue", "status", "--json", "--sets", "2"]).stdout)
    assert list(shown["sets"]) == ["cli-1", "cli-4"] and not shown["more_open_sets"]
    assert shown["kinds"]["t_noop"]["done"] == 4
    every = json.loads(run(["queue", "status", "--json", "--all-sets"]).stdout)
    assert sorted(every["sets"]) == [f"cli-{i}" for i in range(5)]
    assert {s: every["kinds"]["t_noop"][s] for s in queue.STATES} \
        == {s: shown["kinds"]["t_noop"][s] for s in queue.STATES}
    text = run(["queue", "status", "--sets", "0"])
    assert text.returncode == 0 and "cli-" not in text.stdout
    assert "more sets have work left" in text.stdout


def test_maintenance_beside_a_prune_skips_its_rollup_instead_of_waiting(
        qconn: Conn, database_url: str) -> None:
    """A prune holds the per-kind rows it rolled up into until it commits; a maintenance
    rollup beside it would wait on them holding counter rows the prune may delete next (a
    deadlock). With prune v3 maintenance reaps, leaves the deltas, and does not wait."""
    _run_some(qconn, "p", 3)
    queue.rollup(qconn)
    backdate(qconn, finished_at=timedelta(days=10), state="done")
    with psycopg.connect(database_url, row_factory=dict_row) as pruning:
        assert queue.prune(pruning, timedelta(days=7)) > 0  # its transaction stays open
        # a completion in a set the prune never saw: its delta meets prune only at the
        # kind's row of done items
        queue.enqueue(qconn, "t_noop", "late", set_id="fresh")
        queue.complete(qconn, queue.claim(qconn, "t_noop", limit=5))
        qconn.execute("SET lock_timeout = '2s'")
        try:
            queue.maintain(qconn)  # on main's prune: waits on the kind rows, then times out
        finally:
            qconn.execute("RESET lock_timeout")
        left = qconn.execute("SELECT count(*) AS n FROM queue_count_deltas").fetchone()["n"]
        assert left > 0  # not folded: maintenance skipped its rollup
        assert queue.status(qconn, sets=["fresh"])["sets"]["fresh"]["done"] == 1  # counted
        pruning.commit()
    queue.maintain(qconn)
    _assert_equal_to_per_set_sums(qconn)


def test_queue_status_beside_a_prune_does_not_wait_on_it(
        renderer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`renderer queue status` folds the deltas before it reads; beside an open prune it
    skips the fold (as maintenance does) and shows the counts, instead of waiting on the
    rows the prune holds (a lock timeout here, a possible deadlock without one)."""
    url = renderer_env["RENDERER_DATABASE_URL"]
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(OUTPUT_DDL)
        queue.sync_kinds(conn)
        _run_some(conn, "s", 3)
        queue.rollup(conn)
        backdate(conn, finished_at=timedelta(days=10), state="done")
        with psycopg.connect(url, row_factory=dict_row) as pruning:
            assert queue.prune(pruning, timedelta(days=7)) > 0  # its transaction stays open
            queue.enqueue(conn, "t_noop", "late", set_id="fresh")
            queue.complete(conn, queue.claim(conn, "t_noop", limit=5))
            monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=2s")  # the command's session
            result = run(["queue", "status", "--json", "--all-sets"])
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["sets"]["fresh"]["done"] == 1
            pruning.commit()
