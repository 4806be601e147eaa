"""The work queue's verbs and state transitions, against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from renderer import queue
from renderer.errors import LeaseLost, QueueError
from renderer.queue import NewItem
from renderer.worker import run_worker
from tests.factories import backdate
from tests.queue_kinds import expire_leases, fresh, item, outputs, plugin_env, qconn, states

__all__ = ["fresh", "plugin_env", "qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]


def counters(conn: Conn, scope: str = "total", name: str = "") -> dict[str, int]:
    st = queue.status(conn)
    entry = st["total"] if scope == "total" else st[f"{scope}s"].get(name, {})
    return {k: entry.get(k, 0) for k in queue._status.COUNT_FIELDS if entry.get(k, 0)}


# -- enqueue ---------------------------------------------------------------------------------

def test_enqueue_upsert_actions(qconn: Conn) -> None:
    assert queue.enqueue(qconn, "t_record", "a", {"x": 1}, fingerprint="f1") == "inserted"
    assert queue.enqueue(qconn, "t_record", "a", {"x": 2}, fingerprint="f1") == "unchanged"
    assert queue.enqueue(qconn, "t_record", "a", priority=5, fingerprint="f1") == "updated"
    row = item(qconn, "t_record", "a")
    assert (row["state"], row["priority"], row["payload"]) == ("pending", 5, {"x": 1})
    # priority never drops for a pending item
    queue.enqueue(qconn, "t_record", "a", priority=1, fingerprint="f1")
    assert item(qconn, "t_record", "a")["priority"] == 5

    [claimed] = queue.claim(qconn, "t_record")
    assert queue.enqueue(qconn, "t_record", "a", fingerprint="f1") == "unchanged"  # same inputs
    assert queue.enqueue(qconn, "t_record", "a", fingerprint="f2") == "rerun"
    assert queue.enqueue(qconn, "t_record", "a", fingerprint="f3") == "rerun"  # newest inputs
    assert queue.enqueue(qconn, "t_record", "a", fingerprint="f3") == "unchanged"
    queue.complete(qconn, [claimed])
    row = item(qconn, "t_record", "a")
    assert (row["state"], row["attempt"], row["rerun"], row["fingerprint"]) == (
        "pending", 0, False, "f3")

    [claimed] = queue.claim(qconn, "t_record")
    queue.complete(qconn, [claimed])
    assert item(qconn, "t_record", "a")["state"] == "done"
    assert queue.enqueue(qconn, "t_record", "a", fingerprint="f3") == "unchanged"
    assert queue.enqueue(qconn, "t_record", "a") == "unchanged"  # no fingerprint: not a change
    assert queue.enqueue(qconn, "t_record", "a", {"y": 1}, fingerprint="f4") == "requeued"
    row = item(qconn, "t_record", "a")
    assert (row["state"], row["payload"], row["attempt"]) == ("pending", {"y": 1}, 0)
    [claimed] = queue.claim(qconn, "t_record")
    queue.complete(qconn, [claimed])
    assert queue.enqueue(qconn, "t_record", "a", force=True) == "requeued"


def test_enqueue_joins_the_callers_transaction(database_url: str, qconn: Conn) -> None:
    with psycopg.connect(database_url) as conn:
        queue.enqueue(conn, "t_record", "rolled-back")
        conn.rollback()
        queue.enqueue(conn, "t_record", "kept")
        conn.commit()
    assert states(qconn) == {"pending": 1}
    item(qconn, "t_record", "kept")


def test_enqueue_many_dedupes_and_counts(qconn: Conn) -> None:
    items = [NewItem("t_noop", f"k{i}", {"i": i}, set_id="bulk") for i in range(20_000)]
    items.append(NewItem("t_noop", "k1", priority=7, set_id="bulk"))  # a duplicate key
    assert queue.enqueue_many(qconn, items) == 20_000
    assert states(qconn) == {"pending": 20_000}
    assert item(qconn, "t_noop", "k1")["priority"] == 7
    assert counters(qconn) == {"pending": 20_000}
    assert counters(qconn, "set", "bulk") == {"pending": 20_000}
    # again: nothing changes (pending items are left as they are)
    assert queue.enqueue_many(qconn, items) == 0
    forced = [NewItem("t_noop", "k5", force=True), NewItem("t_noop", "new")]
    assert queue.enqueue_many(qconn, forced) == 1


# -- claims ----------------------------------------------------------------------------------

def test_claim_order_batches_and_run_after(qconn: Conn) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    queue.enqueue(qconn, "t_record", "late", run_after=later)
    for i in range(5):
        queue.enqueue(qconn, "t_record", f"b{i}")
    queue.enqueue(qconn, "t_record", "urgent", priority=queue.PRIORITY_ON_DEMAND)
    first = queue.claim(qconn, "t_record", limit=3, owner="w1")
    assert [i.key for i in sorted(first, key=lambda i: (-i.priority, i.id))] == [
        "urgent", "b0", "b1"]
    assert len({i.token for i in first}) == 1
    rest = queue.claim(qconn, "t_record", limit=10, owner="w2")
    assert sorted(i.key for i in rest) == ["b2", "b3", "b4"]  # never the delayed one
    assert queue.claim(qconn, "t_record", limit=10) == []
    assert all(i.attempt == 1 for i in first + rest)
    row = item(qconn, "t_record", "b0")
    assert row["state"] == "running" and row["lease_owner"] == "w1"
    assert row["lease_expires"] > datetime.now(UTC)


def test_on_demand_does_not_starve_batch(qconn: Conn) -> None:
    queue.enqueue_many(qconn, [NewItem("t_record", f"batch{i}") for i in range(10)])
    queue.enqueue_many(qconn, [NewItem("t_record", f"now{i}", priority=queue.PRIORITY_ON_DEMAND)
                               for i in range(50)])
    # a reserved share of every claim batch goes to batch priority
    got = queue.claim(qconn, "t_record", limit=10, reserve=2)
    assert sum(i.key.startswith("batch") for i in got) == 2
    # and every 5th claim of a worker serves batch priority first (batch_turn)
    turn = queue.claim_batch(qconn, ["t_record"], owner="w", limits=[1], leases=[60],
                             batch_turn=True)
    assert [i.key for i in turn] == ["batch2"]
    normal = queue.claim_batch(qconn, ["t_record"], owner="w", limits=[1], leases=[60])
    assert normal[0].key.startswith("now")


def test_claim_batch_picks_the_head_kind(qconn: Conn) -> None:
    queue.enqueue(qconn, "t_noop", "n1")
    queue.enqueue(qconn, "t_record", "r1", priority=10)
    got = queue.claim_batch(qconn, ["t_noop", "t_record"], owner="w", limits=[100, 50],
                            leases=[60, 60])
    assert [(i.kind, i.key) for i in got] == [("t_record", "r1")]
    got = queue.claim_batch(qconn, ["t_noop", "t_record"], owner="w", limits=[100, 50],
                            leases=[60, 60])
    assert [(i.kind, i.key) for i in got] == [("t_noop", "n1")]


# -- fencing ---------------------------------------------------------------------------------

def test_zombie_completion_is_rejected_and_logged(qconn: Conn, caplog: Any) -> None:
    queue.enqueue(qconn, "t_record", "z")
    [zombie] = queue.claim(qconn, "t_record", owner="zombie", lease_seconds=30)
    expire_leases(qconn)
    assert queue.reap(qconn) == 1
    row = item(qconn, "t_record", "z")
    assert row["state"] == "pending" and row["attempt"] == 1
    backdate(qconn, run_after=0)  # skip the backoff
    [fresh_claim] = queue.claim(qconn, "t_record", owner="successor")
    assert fresh_claim.attempt == 2 and fresh_claim.token != zombie.token

    with pytest.raises(LeaseLost, match="taken over") as lost:
        queue.complete(qconn, [zombie])
    assert lost.value.ids == [zombie.id]
    assert queue.fail(qconn, zombie, ValueError("late")) == "rejected"
    assert item(qconn, "t_record", "z")["state"] == "running"  # untouched
    queue.complete(qconn, [fresh_claim])
    assert item(qconn, "t_record", "z")["state"] == "done"
    outcomes = [a["outcome"] for a in queue.item_history(qconn, "t_record", "z")["attempts"]]
    assert outcomes == ["expired", "rejected", "rejected"]


def test_lock_skips_items_taken_over(qconn: Conn) -> None:
    queue.enqueue(qconn, "t_record", "x")
    [old] = queue.claim(qconn, "t_record", owner="old")
    expire_leases(qconn)
    queue.reap(qconn)
    backdate(qconn, run_after=0)
    [new] = queue.claim(qconn, "t_record", owner="new")
    with qconn.transaction():
        assert queue.lock(qconn, [old]) == set()
        assert queue.lock(qconn, [new]) == {new.id}


def test_heartbeat_extends_leases_and_shows_workers(qconn: Conn) -> None:
    queue.enqueue(qconn, "t_record", "h")
    [claimed] = queue.claim(qconn, "t_record", owner="hb", lease_seconds=1)
    before = item(qconn, "t_record", "h")["lease_expires"]
    assert queue.heartbeat(qconn, "hb", 120, {"host": "here", "pid": 1, "kinds": ["t_record"]}) == 1
    assert item(qconn, "t_record", "h")["lease_expires"] > before + timedelta(seconds=60)
    st = queue.status(qconn)
    assert st["workers_alive"] == 1 and st["workers"][0]["owner"] == "hb"
    queue.complete(qconn, [claimed])


# -- failures --------------------------------------------------------------------------------

def test_failures_back_off_then_fail_and_retry(qconn: Conn) -> None:
    queue.enqueue(qconn, "t_fail", "f", set_id="s")  # max_attempts 2
    [first] = queue.claim(qconn, "t_fail")
    try:
        raise ValueError("broken input")
    except ValueError as exc:
        import traceback

        assert queue.fail(qconn, first, exc, traceback=traceback.format_exc()) == "pending"
    row = item(qconn, "t_fail", "f")
    assert row["run_after"] > datetime.now(UTC) - timedelta(seconds=1)
    assert row["last_error"] == "ValueError broken input"
    backdate(qconn, run_after=0)
    [second] = queue.claim(qconn, "t_fail")
    assert queue.fail(qconn, second, "still broken") == "failed"
    failed = queue.list_failed(qconn)
    assert [(f["kind"], f["key"], f["attempt"]) for f in failed] == [("t_fail", "f", 2)]
    assert queue.list_failed(qconn, kind="t_record") == []
    history = queue.item_history(qconn, "t_fail", "f")
    assert [(a["attempt"], a["error_type"]) for a in history["attempts"]] == [
        (1, "ValueError"), (2, "Error")]
    assert "Traceback" in history["attempts"][0]["traceback"]
    assert queue.retry_failed(qconn, kind="t_fail", set_id="other") == 0
    assert queue.retry_failed(qconn, set_id="s") == 1
    row = item(qconn, "t_fail", "f")
    assert (row["state"], row["attempt"]) == ("pending", 0)


def test_backoff_grows_exponentially_with_jitter(qconn: Conn) -> None:
    with qconn.cursor() as cur:
        delays = [cur.execute("SELECT extract(epoch FROM renderer.queue_backoff(10, %s)) AS s",
                              [a]).fetchone()["s"] for a in (1, 2, 3, 4) for _ in range(20)]
    for attempt, chunk in enumerate([delays[i:i + 20] for i in range(0, 80, 20)], start=1):
        base = 10 * 2 ** (attempt - 1)
        assert all(0.5 * base <= float(d) <= 1.5 * base for d in chunk)
        assert len(set(chunk)) > 1  # jitter


def test_expired_lease_at_last_attempt_fails(qconn: Conn) -> None:
    queue.enqueue(qconn, "t_slow", "s")  # max_attempts 1
    queue.claim(qconn, "t_slow", owner="gone")
    expire_leases(qconn)
    assert queue.maintain(qconn) == 1
    row = item(qconn, "t_slow", "s")
    assert row["state"] == "failed" and row["last_error"].startswith("LeaseExpired")


def test_release_gives_the_attempt_back(qconn: Conn) -> None:
    queue.enqueue(qconn, "t_record", "r")
    queue.claim(qconn, "t_record", owner="leaving")
    assert queue.release(qconn, "leaving") == 1
    row = item(qconn, "t_record", "r")
    assert (row["state"], row["attempt"], row["lease_owner"]) == ("pending", 0, None)


# -- sets ------------------------------------------------------------------------------------

def test_sets_pause_resume_cancel(qconn: Conn) -> None:
    sid = queue.create_set(qconn, "speedtiles 2026-W47", {"by": "test"})
    assert sid == "speedtiles 2026-W47"
    assert queue.create_set(qconn, sid) == sid  # idempotent
    queue.enqueue_many(qconn, [NewItem("t_record", f"s{i}", set_id=sid) for i in range(4)])
    queue.enqueue(qconn, "t_record", "other")
    assert queue.pause_set(qconn, sid) == 4
    other = queue.claim(qconn, "t_record", limit=10)
    assert [i.key for i in other] == ["other"]
    assert queue.enqueue(qconn, "t_record", "s9", set_id=sid) == "inserted"
    assert item(qconn, "t_record", "s9")["state"] == "held"
    assert counters(qconn, "set", sid) == {"held": 5}
    assert queue.status(qconn)["sets"][sid]["state"] == "paused"
    assert queue.resume_set(qconn, sid) == 5
    running = queue.claim(qconn, "t_record", limit=2)
    assert queue.cancel_set(qconn, sid) == 3
    assert queue.enqueue(qconn, "t_record", "s10", set_id=sid) == "cancelled"
    queue.complete(qconn, running + other)
    assert states(qconn) == {"done": 3, "cancelled": 4}
    with pytest.raises(QueueError, match="no set"):
        queue.pause_set(qconn, "nope")
    with pytest.raises(QueueError, match="cancelled"):
        queue.resume_set(qconn, sid)


# -- counters --------------------------------------------------------------------------------

def test_counters_match_the_table_through_every_transition(qconn: Conn) -> None:
    queue.enqueue_many(qconn, [NewItem("t_record", f"c{i}", set_id=f"set{i % 3}")
                               for i in range(300)])
    batch = queue.claim(qconn, "t_record", limit=120, owner="w")
    queue.complete(qconn, batch[:100])
    for it in batch[100:110]:
        queue.fail(qconn, it, "x", final=True)
    queue.release(qconn, "w")
    queue.pause_set(qconn, "set1")
    queue.cancel_set(qconn, "set2")
    queue.enqueue(qconn, "t_record", "c3", force=True)
    qconn.execute("DELETE FROM work_queue WHERE key = 'c0'")
    truth = states(qconn)
    assert counters(qconn) == truth
    queue.rollup(qconn)
    assert counters(qconn) == truth
    st = queue.status(qconn)
    per_set = {s: v["done"] for s, v in st["sets"].items()}
    assert sum(per_set.values()) == truth["done"]
    assert st["kinds"]["t_record"]["throughput_per_s"] > 0
    assert st["kinds"]["t_record"]["oldest_pending_s"] is not None


# -- fan-in ----------------------------------------------------------------------------------

def test_fan_in_rule_fires_when_the_group_is_done_and_again_after_a_rerun(qconn: Conn) -> None:
    queue.enqueue_many(qconn, [NewItem("t_record", f"h{i}", group="tile-7") for i in range(3)])
    queue.add_rule(qconn, "t_record", "tile-7", "t_sum", "week-7", {"w": 7})
    queue.add_rule(qconn, "t_record", "tile-7", "t_sum", "week-7")  # deduplicated
    batch = queue.claim(qconn, "t_record", limit=3)
    queue.complete(qconn, batch[:2])
    assert states(qconn, "t_sum") == {}
    queue.complete(qconn, batch[2:])
    assert states(qconn, "t_sum") == {"pending": 1}
    [s] = queue.claim(qconn, "t_sum")
    assert s.payload == {"w": 7}
    queue.complete(qconn, [s])
    # late data: one item re-runs, the group opens again and its completion fires again
    queue.enqueue(qconn, "t_record", "h1", fingerprint="late")
    [again] = queue.claim(qconn, "t_record")
    assert states(qconn, "t_sum") == {"done": 1}
    queue.complete(qconn, [again])
    assert states(qconn, "t_sum") == {"pending": 1}
    assert qconn.execute("SELECT fired FROM queue_rules").fetchone()["fired"] == 2


def test_rule_on_a_group_already_done_fires_at_once(qconn: Conn) -> None:
    queue.enqueue(qconn, "t_record", "only", group="g")
    queue.complete(qconn, queue.claim(qconn, "t_record"))
    queue.add_rule(qconn, "t_record", "g", "t_sum", "g-sum")
    assert states(qconn, "t_sum") == {"pending": 1}
    queue.add_rule(qconn, "t_record", "no-such-group", "t_sum", "x")  # no items yet: waits
    assert states(qconn, "t_sum") == {"pending": 1}


def test_a_failed_item_keeps_its_group_open(qconn: Conn) -> None:
    queue.enqueue_many(qconn, [NewItem("t_fail", f"f{i}", group="g") for i in range(2)])
    queue.add_rule(qconn, "t_fail", "g", "t_sum", "never")
    a, b = queue.claim(qconn, "t_fail", limit=2)
    queue.complete(qconn, [a])
    queue.fail(qconn, b, "no", final=True)
    assert states(qconn, "t_sum") == {}


# -- prune -----------------------------------------------------------------------------------

def test_prune_deletes_old_done_items_only(qconn: Conn) -> None:
    queue.enqueue_many(qconn, [NewItem("t_record", f"p{i}") for i in range(5)])
    queue.complete(qconn, queue.claim(qconn, "t_record", limit=3))
    backdate(qconn, finished_at=timedelta(days=10), keys=["p0", "p1"])
    assert queue.prune(qconn, timedelta(days=7)) == 2
    assert states(qconn) == {"done": 1, "pending": 2}
    assert counters(qconn) == {"done": 1, "pending": 2}
    with pytest.raises(QueueError):
        queue.prune(qconn, timedelta(days=-1))


# -- psql ------------------------------------------------------------------------------------

def test_the_verbs_work_from_plain_sql(qconn: Conn) -> None:
    ex = qconn.execute
    assert ex("SELECT renderer.queue_enqueue('t_record', 'sql-1') AS a").fetchone()["a"] == (
        "inserted")
    ex("SELECT renderer.queue_enqueue('t_record', 'sql-2', '{\"n\": 2}', NULL, 'psql-set')")
    rows = ex("SELECT * FROM renderer.queue_claim('t_record', 2, 'operator')").fetchall()
    assert len(rows) == 2
    by_key = {r["key"]: r for r in rows}
    assert ex("SELECT renderer.queue_complete(%s::bigint, %s) AS ok",
              [by_key["sql-1"]["id"], by_key["sql-1"]["lease_token"]]).fetchone()["ok"]
    assert ex("SELECT renderer.queue_fail(%s::bigint, %s, 'disk full', 'OSError') AS s",
              [by_key["sql-2"]["id"], by_key["sql-2"]["lease_token"]]).fetchone()["s"] == "pending"
    status = {r["scope"] + ":" + r["name"]: r
              for r in ex("SELECT * FROM renderer.queue_status()").fetchall()}
    assert status["total:"]["done"] == 1 and status["set:psql-set"]["pending"] == 1


# -- the worker loop, in this process --------------------------------------------------------

def test_worker_commits_output_with_completion_and_isolates_failures(
        database_url: str, qconn: Conn, plugin_env: None) -> None:
    queue.enqueue_many(qconn, [NewItem("t_record", f"ok{i}") for i in range(120)])
    queue.enqueue_many(qconn, [NewItem("t_fail", f"bad{i}") for i in range(3)])
    queue.enqueue(qconn, "t_parent", "p")
    queue.enqueue(qconn, "t_flaky", "fl")
    stats = run_worker(database_url, kinds=["t_record", "t_fail", "t_parent", "t_flaky"],
                       until_empty=True, poll_seconds=0.05)
    assert outputs(qconn, "t_record") == {**{f"ok{i}": 1 for i in range(120)}, "child-of-p": 1}
    assert outputs(qconn, "t_fail") == {}  # a failed attempt's writes are rolled back
    assert outputs(qconn, "t_flaky") == {"fl": 1}
    assert states(qconn) == {"done": 123, "failed": 3}
    assert stats.done == 123 and stats.failed == 3 + 3 * 1 + 1  # 2 attempts each, flaky once
    history = queue.item_history(qconn, "t_fail", "bad0")
    assert [a["error_type"] for a in history["attempts"]] == ["ValueError", "ValueError"]
    assert "bad input bad0" in history["attempts"][0]["message"]
    assert "raise ValueError" in history["attempts"][0]["traceback"]


def test_a_failing_handler_in_a_batch_loses_only_its_own_writes(
        database_url: str, qconn: Conn, plugin_env: None) -> None:
    queue.enqueue_many(qconn, [NewItem("t_mixed", f"m{i}", {"fail": i in (2, 7)})
                               for i in range(10)])
    stats = run_worker(database_url, kinds=["t_mixed"], until_empty=True)
    assert (stats.done, stats.failed) == (8, 2)
    assert outputs(qconn, "t_mixed") == {f"m{i}": 1 for i in range(10) if i not in (2, 7)}
    assert states(qconn) == {"done": 8, "failed": 2}
    assert item(qconn, "t_mixed", "m7")["last_error"] == "ValueError m7 fails after writing"


def test_worker_time_limit_kills_the_attempt(database_url: str, qconn: Conn,
                                             plugin_env: None) -> None:
    queue.enqueue(qconn, "t_slow", "forever")
    queue.enqueue(qconn, "t_record_one", "fine")
    stats = run_worker(database_url, kinds=["t_slow", "t_record_one"], until_empty=True)
    assert stats.failed == 1
    row = item(qconn, "t_slow", "forever")
    assert row["state"] == "failed" and row["last_error"].startswith("TimeLimitExceeded")
    attempt = queue.item_history(qconn, "t_slow", "forever")["attempts"][0]
    assert attempt["outcome"] == "timeout"
    assert outputs(qconn, "t_record_one") == {"fine": 1}


def test_worker_max_items_and_fan_in_through_handlers(database_url: str, qconn: Conn,
                                                      plugin_env: None) -> None:
    queue.enqueue_many(qconn, [NewItem("t_leaf", f"l{i}", group=f"g{i % 4}") for i in range(40)])
    stats = run_worker(database_url, kinds=["t_leaf"], max_items=15)
    assert stats.done == 15
    run_worker(database_url, kinds=["t_leaf", "t_sum"], until_empty=True)
    assert outputs(qconn, "t_sum") == {f"sum-g{g}": 1 for g in range(4)}
    assert qconn.execute("SELECT count(*) AS n FROM queue_rules").fetchone()["n"] == 4


def test_unknown_kind_is_a_user_error(database_url: str) -> None:
    with pytest.raises(QueueError, match="unknown work-queue kind"):
        run_worker(database_url, kinds=["no_such_kind"])


def test_migration_downgrades_and_upgrades_again(server_url: str) -> None:
    from renderer import schema
    from tests.conftest import _admin, with_database

    name = "renderer_queue_migration"
    with _admin(server_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    try:
        schema.upgrade(url, "0010")
        schema.downgrade(url, "base")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('work_queue')").fetchone()[0] is None
            assert conn.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n"
                                " ON n.oid = p.pronamespace WHERE n.nspname = 'renderer'"
                                " AND p.proname LIKE 'queue%'").fetchone()[0] == 0
        schema.upgrade(url, "0010")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT renderer.queue_enqueue('k', 'v')").fetchone()[0] == (
                "inserted")
    finally:
        with _admin(server_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
