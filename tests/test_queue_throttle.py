"""Dribbled batches (issue 18): per-set limits on items in flight and per hour, enforced by
the claim, with on-demand work going first."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg.rows import tuple_row

from renderer import config, queue
from renderer.errors import InputError
from renderer.queue import Job, NewItem
from renderer.web import pages, runs
from renderer.worker import BATCH_TURN_EVERY, Worker, resolve_kinds
from tests.queue_kinds import fresh, item, plugin_env, qconn, record, states

__all__ = ["fresh", "plugin_env", "qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]
BIG = 1_000_000  # items in the throttled set of the on-demand test (set-based insert: ~10 s)
DRIBBLE_SECONDS = 0.05
URGENT = 10


@queue.register("t_dribble", batch_size=50, lease_seconds=30)
def dribble(job: Job) -> None:
    """A slow batch item: records how many of its kind were in flight when it started."""
    with job.conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("INSERT INTO queue_test_output (kind, key, n)"
                    " SELECT 'in_flight', %s, count(*) FROM queue_items"
                    " WHERE state = 'running' AND kind = 't_dribble'"
                    " ON CONFLICT (kind, key) DO NOTHING", [job.item.key])
    time.sleep(float(job.payload.get("seconds", DRIBBLE_SECONDS)))


@queue.register("t_urgent", batch_size=1)
def urgent(job: Job) -> None:
    time.sleep(0.02)
    record(job)


def scalar(conn: Conn, sql: str, params: Any = None) -> Any:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(sql, params).fetchone()
    return row[0] if row else None


def keys(items: list[queue.Item]) -> list[str]:
    return sorted(i.key for i in items)


# -- the limits, verb by verb ----------------------------------------------------------------

def test_in_flight_limit_holds_the_rest_back(qconn: Conn) -> None:
    assert queue.throttle(qconn, "weekly", in_flight=3) == 0
    queue.enqueue_many(qconn, [NewItem("t_record", f"w{i}", set_id="weekly")
                               for i in range(10)])
    queue.enqueue(qconn, "t_record", "free", set_id="other")
    assert states(qconn) == {"held": 10, "pending": 1}  # out of the claim index

    first = queue.claim(qconn, "t_record", limit=20)
    assert len(first) == 4 and "free" in keys(first)  # 3 of the set, and the free item
    assert queue.claim(qconn, "t_record", limit=20) == []  # 3 in flight: nothing more
    queue.complete(qconn, [i for i in first if i.key != "free"][:2])
    assert len(queue.claim(qconn, "t_record", limit=20)) == 2
    assert scalar(qconn, "SELECT count(*) FROM queue_items WHERE set_id = 'weekly'"
                         " AND state IN ('pending', 'running')") == 3

    # A failed attempt goes back held, not pending (the claim index stays throttle-free).
    running = queue.claim(qconn, "t_record", limit=20)
    assert running == []
    [one] = [i for i in first if i.key != "free"][2:]
    assert queue.fail(qconn, one, "boom") == "held"

    # Pause stops the feed; resume keeps the items held for it; clear releases them.
    queue.pause_set(qconn, "weekly")
    assert queue.resume_set(qconn, "weekly") == 0
    assert states(qconn)["held"] == 6
    assert queue.throttle(qconn, "weekly") == 6
    assert states(qconn).get("held") is None


def test_throttle_later_holds_pending_items(qconn: Conn) -> None:
    queue.enqueue_many(qconn, [NewItem("t_record", f"w{i}", set_id="late") for i in range(5)])
    assert queue.throttle(qconn, "late", in_flight=1, per_hour=100) == 5
    assert queue.throttle(qconn, "late", in_flight=2) == 0  # new limits, nothing moves
    assert queue.list_sets(qconn, set_id="late")[0]["in_flight"] == 2
    assert queue.list_sets(qconn, set_id="late")[0]["per_hour"] is None
    assert pages.set_data(qconn, "late")["set"]["throttle"] == {"in_flight": 2}  # set page
    assert len(queue.claim(qconn, "t_record", limit=5)) == 2
    with pytest.raises(InputError, match="in-flight must be a positive"):
        queue.throttle(qconn, "late", in_flight=0)


def test_per_hour_limit_over_a_moving_clock(qconn: Conn) -> None:
    """At most per_hour items let through in any hour: the clock is moved by ageing the log
    of what was let through (as the hours pass), never by sleeping."""
    queue.throttle(qconn, "hourly", per_hour=5)
    queue.enqueue_many(qconn, [NewItem("t_record", f"h{i:02}", set_id="hourly")
                               for i in range(12)])

    def claim_all() -> int:
        got = queue.claim(qconn, "t_record", limit=50)
        queue.complete(qconn, got)
        return len(got)

    def age(minutes: float) -> None:
        qconn.execute("UPDATE queue_throttle_log SET at = at - make_interval(mins => %s)",
                      [minutes])

    assert claim_all() == 5
    assert claim_all() == 0  # the same hour, all done: still nothing
    age(59)
    assert claim_all() == 0  # 59 minutes later: the hour is not over
    age(2)
    assert claim_all() == 5  # 61 minutes later
    age(30)
    assert claim_all() == 0  # only 30 minutes since the second five
    age(31)
    assert claim_all() == 2  # the last two
    assert states(qconn) == {"done": 12}


# -- with workers ----------------------------------------------------------------------------

def _start(n: int, url: str, kinds: list[str], **options: Any
           ) -> tuple[list[Worker], list[threading.Thread]]:
    """n workers in threads (made there: a worker made in the main thread sets signals)."""
    workers: list[Worker] = []
    made = threading.Barrier(n + 1)

    def run() -> None:
        worker = Worker(url, resolve_kinds(kinds), **options)
        workers.append(worker)
        made.wait()
        worker.run()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    made.wait()
    return workers, threads


def _wait(conn: Conn, sql: str, params: Any = None, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not scalar(conn, sql, params):
        assert time.monotonic() < deadline, f"timed out waiting for: {sql}"
        time.sleep(0.02)


def test_on_demand_run_in_the_middle_of_a_throttled_million(fresh: str, plugin_env: None,
                                                             capsys: Any) -> None:
    """A million-item set throttled to 2 in flight runs slow items; an on-demand run
    submitted in its middle is claimed at each worker's next claim (one claim interval: the
    end of the throttled item it runs), not behind the set, and the set keeps going."""
    with psycopg.connect(fresh, autocommit=True) as conn:
        queue.throttle(conn, "weekly", in_flight=2)
        started = time.monotonic()
        # A set-based enqueue of the million (enqueue_many would send 20 chunks of arrays):
        # what enqueue does for a new item of a throttled set, the item held.
        conn.execute("INSERT INTO work_queue (kind, key, set_id, state)"
                     " SELECT 't_dribble', 'w' || g, 'weekly', 'held'"
                     " FROM generate_series(1, %s) g", [BIG])
        conn.execute("ANALYZE work_queue")
        insert_s = time.monotonic() - started
        workers, threads = _start(2, fresh, ["t_dribble", "t_urgent"], poll_seconds=0.2,
                                  lease_seconds=30)
        try:
            _wait(conn, "SELECT count(*) >= 6 FROM queue_items"
                        " WHERE kind = 't_dribble' AND state = 'done'")
            submitted = scalar(conn, "SELECT clock_timestamp()")
            queue.enqueue_many(conn, [NewItem("t_urgent", f"u{i}", set_id="on demand",
                                              priority=queue.PRIORITY_ON_DEMAND)
                                      for i in range(URGENT)])
            _wait(conn, "SELECT count(*) = %s FROM queue_items"
                        " WHERE kind = 't_urgent' AND state = 'done'", [URGENT])
            finished, first_start, last_start = conn.execute(
                "SELECT max(finished_at), min(started_at), max(started_at) FROM queue_items"
                " WHERE kind = 't_urgent'").fetchone()
            # Throttled items started while the on-demand run was being claimed: only the
            # batch turns (every BATCH_TURN_EVERY-th claim of a worker serves batch priority
            # first, so on-demand work never starves it) plus one claim already under way
            # per worker: b <= (u + b) / E + 1 for a worker that claimed u urgent items,
            # so b <= (u + E) / (E - 1), and summed over the workers the bound below.
            between = scalar(conn, "SELECT count(*) FROM queue_items WHERE kind = 't_dribble'"
                                   " AND started_at > %s AND started_at < %s",
                             [submitted, last_start])
            done_then = scalar(conn, "SELECT count(*) FROM queue_items"
                                     " WHERE kind = 't_dribble' AND state = 'done'")
            _wait(conn, "SELECT count(*) >= %s FROM queue_items"
                        " WHERE kind = 't_dribble' AND state = 'done'", [done_then + 4])
        finally:
            for w in workers:
                w.stopping = True
            for t in threads:
                t.join(timeout=30)
        turns = BATCH_TURN_EVERY
        assert between <= (URGENT + turns * len(workers)) // (turns - 1), between
        # The throttle held: never more than 2 of the set running at a start.
        assert scalar(conn, "SELECT max(n) FROM queue_test_output"
                            " WHERE kind = 'in_flight'") <= 2
        assert states(conn, "t_urgent") == {"done": URGENT}
        counts = states(conn, "t_dribble")
        assert counts["held"] + counts.get("pending", 0) + counts.get("running", 0) \
            + counts["done"] == BIG
        with capsys.disabled():
            print(f"\n  throttled set of {BIG} inserted in {insert_s:.1f}s; on-demand run of "
                  f"{URGENT} x 0.02 s on 2 workers: first claim "
                  f"{(first_start - submitted).total_seconds():.3f}s after submission, "
                  f"done {(finished - submitted).total_seconds():.3f}s after "
                  f"(throttled items take {DRIBBLE_SECONDS}s); {between} throttled item(s) "
                  "started in between")


def test_throttled_set_finishes(fresh: str, plugin_env: None) -> None:
    with psycopg.connect(fresh, autocommit=True) as conn:
        queue.enqueue_many(conn, [NewItem("t_dribble", f"s{i}", {"seconds": 0.002},
                                          set_id="small") for i in range(150)])
        queue.throttle(conn, "small", in_flight=3)
        _, threads = _start(2, fresh, ["t_dribble"], until_empty=True, poll_seconds=0.05)
        for t in threads:
            t.join(timeout=120)
        assert states(conn) == {"done": 150}
        assert scalar(conn, "SELECT max(n) FROM queue_test_output"
                            " WHERE kind = 'in_flight'") <= 3
        assert item(conn, "t_dribble", "s0")["attempt"] == 1


@pytest.mark.acceptance
def test_throttle_from_the_command_line(renderer_env: dict[str, str]) -> None:
    from tests.test_queue_cli import one_line_error, run  # the CLI tests' subprocess helpers

    result = run(["queue", "enqueue", "t_record", "a", "b", "c", "--set", "weekly",
                  "--in-flight", "2", "--per-hour", "100"])
    assert result.returncode == 0, result.stderr
    with psycopg.connect(renderer_env["RENDERER_DATABASE_URL"], autocommit=True) as conn:
        assert states(conn) == {"held": 3}
        [row] = queue.list_sets(conn, set_id="weekly")
        assert (row["in_flight"], row["per_hour"]) == (2, 100)
    result = run(["queue", "throttle", "weekly", "--per-hour", "10"])
    assert result.stdout.strip() == "set 'weekly' throttled to 10 per hour: 0 item(s) held"
    one_line_error(run(["queue", "throttle", "weekly"]), "--clear", code=2)
    one_line_error(run(["queue", "enqueue", "t_record", "x", "--in-flight", "2"]), "--set",
                   code=2)
    result = run(["queue", "throttle", "weekly", "--clear", "--json"])
    assert '"items": 3' in result.stdout, result.stdout
    with psycopg.connect(renderer_env["RENDERER_DATABASE_URL"], autocommit=True) as conn:
        assert states(conn) == {"pending": 3}


def test_a_run_body_may_throttle_its_set(qconn: Conn) -> None:
    """``POST /api/runs`` takes ``in_flight`` and ``per_hour`` beside the offer's fields."""
    context = runs.Context(config.load(), None)
    spec = {"pipeline": "traffic", "stage": "speedtiles", "week": "2026-W47",
            "bbox": [5.0, 45.0, 10.0, 50.0], "level": 0, "in_flight": 2, "per_hour": 50}
    set_id = runs.start(qconn, spec, context)["set_id"]
    [row] = queue.list_sets(qconn, set_id=set_id)
    assert (row["in_flight"], row["per_hour"]) == (2, 50)
    with pytest.raises(InputError, match="in-flight must be a positive"):
        runs.start(qconn, {**spec, "week": "2026-W48", "in_flight": "lots"}, context)
