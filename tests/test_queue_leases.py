"""Per-batch leases (issue 16, item 3; docs/queue-leases.md): a claim writes one lease row and
no item, and the completion, the item's one write, is HOT. Shipped in one migration: a
worker of the previous release (its statements, verbatim below) runs beside this release's
on one queue, also across the migration, and every item runs exactly once."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from renderer import queue, schema
from renderer.queue import NewItem
from renderer.worker import run_worker
from tests.queue_kinds import OUTPUT_DDL, fresh, item, outputs, qconn, states

__all__ = ["fresh", "qconn"]  # fixtures used by this module

Conn = psycopg.Connection[Any]

# What a worker of the previous release (migration 0038) runs, from its sql/queue.sql: the
# same functions by name (their bodies are this release's), and two statements straight
# against work_queue.
PREVIOUS = {
    "claim_batch": "SELECT id, kind, key, payload, attempt, set_id, grp, lease_token::text,"
                   " priority, fingerprint FROM renderer.queue_claim_next_v2(%(kinds)s,"
                   " %(limits)s, %(leases)s, %(owner)s, %(batch_turn)s)",
    "lock": "SELECT renderer.queue_lock_v3(%(ids)s, %(token)s, %(idle_seconds)s) AS id",
    "finish": "SELECT renderer.queue_finish_v2(%(token)s, %(ok)s::bigint[],"
              " %(failed)s::bigint[], %(types)s, %(messages)s, %(tracebacks)s,"
              " %(outcomes)s) AS rejected",
    "heartbeat": "SELECT renderer.queue_heartbeat_v2(%(owner)s, %(lease_seconds)s, %(info)s)"
                 " AS n",
    "idle": """
SELECT EXISTS (SELECT 1 FROM work_queue
               WHERE state = 'pending' AND kind = ANY (%(kinds)s) AND run_after <= now())
       OR (EXISTS (SELECT 1 FROM queue_throttles)
           AND renderer.queue_throttle_waiting(%(kinds)s, true))
           AS claimable,
       EXISTS (SELECT 1 FROM work_queue WHERE state = 'pending' AND kind = ANY (%(kinds)s))
       OR EXISTS (SELECT 1 FROM work_queue WHERE state = 'running' AND kind = ANY (%(kinds)s))
       OR (EXISTS (SELECT 1 FROM queue_throttles)
           AND renderer.queue_throttle_waiting(%(kinds)s, false))
       OR EXISTS (SELECT 1 FROM queue_reruns WHERE kind = ANY (%(kinds)s))
           AS busy""",
}


class PreviousWorker:
    """The previous release's worker loop, reduced to its statements: claim a batch in its
    own transaction, then lock, record and finish it in one transaction; when the claim
    is empty, its idle check says whether to stop."""

    def __init__(self, conn: Conn, kind: str, batch: int, owner: str = "previous") -> None:
        self.conn, self.kind, self.batch, self.owner = conn, kind, batch, owner
        self.done = 0

    def claim(self) -> list[dict[str, Any]]:
        return self.conn.execute(PREVIOUS["claim_batch"], {
            "kinds": [self.kind], "limits": [self.batch], "leases": [60.0],
            "owner": self.owner, "batch_turn": False}).fetchall()

    def run(self, batch: list[dict[str, Any]]) -> list[int]:
        """Lock, record and finish a claimed batch; returns the ids refused."""
        token = batch[0]["lease_token"]
        with self.conn.transaction():
            locked = {r["id"] for r in self.conn.execute(PREVIOUS["lock"], {
                "ids": [r["id"] for r in batch], "token": token, "idle_seconds": 60.0})}
            for r in batch:
                if r["id"] in locked:
                    self.conn.execute(
                        "INSERT INTO queue_test_output (kind, key, attempts) VALUES (%s, %s,"
                        " %s) ON CONFLICT (kind, key) DO UPDATE SET n = queue_test_output.n"
                        " + 1, attempts = queue_test_output.attempts || excluded.attempts",
                        [r["kind"], r["key"], [r["attempt"]]])
            rejected = self.conn.execute(PREVIOUS["finish"], {
                "token": token, "ok": sorted(locked), "failed": [], "types": [],
                "messages": [], "tracebacks": [], "outcomes": []}).fetchone()["rejected"]
        self.done += len(locked) - len(rejected)
        return list(rejected)

    def drain(self) -> None:
        while True:
            self.conn.execute(PREVIOUS["heartbeat"], {"owner": self.owner,
                                                      "lease_seconds": 60.0,
                                                      "info": Jsonb({})})
            batch = self.claim()
            if batch:
                assert self.run(batch) == []
                continue
            if not self.conn.execute(PREVIOUS["idle"], {"kinds": [self.kind]}).fetchone()[
                    "busy"]:
                return


def _counts(conn: Conn, kind: str) -> dict[str, int]:
    got = queue.status(conn, sets=[])["kinds"].get(kind, {})
    return {s: got[s] for s in queue.STATES if got.get(s)}


def test_a_previous_release_worker_beside_this_ones_runs_each_item_once(fresh: str) -> None:
    keys = [f"k{i}" for i in range(1500)]
    with psycopg.connect(fresh, autocommit=True, row_factory=dict_row) as conn:
        queue.sync_kinds(conn)
        queue.enqueue_many(conn, [NewItem("t_record", k) for k in keys])
        previous = PreviousWorker(conn, "t_record", batch=20)
        assert previous.run(previous.claim()) == []  # it starts first: both get some
        thread = threading.Thread(target=previous.drain)
        thread.start()
        try:
            stats = run_worker(fresh, kinds=["t_record"], until_empty=True)
        finally:
            thread.join(120)
        assert not thread.is_alive()
        assert previous.done > 0 and stats.done > 0
        assert previous.done + stats.done == len(keys)
        assert outputs(conn, "t_record") == {k: 1 for k in keys}
        assert states(conn, "t_record") == {"done": len(keys)}
        queue.rollup(conn)
        assert _counts(conn, "t_record") == {"done": len(keys)}
        assert conn.execute("SELECT count(*) AS n FROM queue_leases").fetchone()["n"] == 0
        assert conn.execute("SELECT count(*) AS n FROM queue_pending").fetchone()["n"] == 0
        assert {r["attempts"] == [1] for r in conn.execute(
            "SELECT attempts FROM queue_test_output")} == {True}


def test_items_running_when_the_migration_runs_become_leases(fresh: str) -> None:
    """A batch claimed by the previous release's functions (items 'running' in work_queue)
    before 0039 is a lease after it: its worker locks and finishes it with its token, the
    counters see no change, and nothing runs twice."""
    schema.downgrade(fresh, "0038")
    keys = [f"m{i}" for i in range(10)]
    with psycopg.connect(fresh, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(OUTPUT_DDL)
        queue.sync_kinds(conn)
        conn.execute("SELECT renderer.queue_enqueue_many_v4(%s, %s, %s::jsonb[], %s, %s, %s,"
                     " %s, %s, false)", [["t_record"] * 10, keys, [Jsonb({})] * 10,
                                         [None] * 10, [None] * 10, [0] * 10, [None] * 10,
                                         [None] * 10])
        previous = PreviousWorker(conn, "t_record", batch=4)
        batch = previous.claim()
        assert len(batch) == 4
        assert conn.execute("SELECT count(*) AS n FROM work_queue"
                            " WHERE state = 'running'").fetchone()["n"] == 4
    schema.upgrade(fresh)
    with psycopg.connect(fresh, autocommit=True, row_factory=dict_row) as conn:
        previous.conn = conn
        assert states(conn, "t_record") == {"running": 4, "pending": 6}
        assert _counts(conn, "t_record") == {"running": 4, "pending": 6}
        assert queue.claim(conn, "t_record", limit=10, owner="new")[0].key not in {
            r["key"] for r in batch}  # the leased ones are not claimable; six are
        assert previous.run(batch) == []
        queue.release(conn, "new")
        run_worker(fresh, kinds=["t_record"], until_empty=True)
        assert outputs(conn, "t_record") == {k: 1 for k in keys}
        assert states(conn, "t_record") == {"done": 10}
        queue.rollup(conn)
        assert _counts(conn, "t_record") == {"done": 10}
        assert {r["attempt"] for r in conn.execute(
            "SELECT attempt FROM work_queue")} == {1}


def test_a_claim_writes_no_item_and_its_completion_is_a_hot_update(qconn: Conn) -> None:
    queue.enqueue_many(qconn, [NewItem("t_record", f"h{i}") for i in range(10)])

    def updates() -> tuple[int, int]:
        r = qconn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
                          " WHERE relname = 'work_queue'").fetchone()
        return (r["n_tup_upd"], r["n_tup_hot_upd"]) if r else (0, 0)

    with qconn.transaction():
        claimed = queue.claim(qconn, "t_record", limit=10, owner="w")
        assert len(claimed) == 10 and updates() == (0, 0)
        assert states(qconn, "t_record") == {"running": 10}
        assert queue.held_by(qconn, "w") == 10
        queue.complete(qconn, claimed)
        assert updates() == (10, 10)
    assert states(qconn, "t_record") == {"done": 10}
    assert queue.held_by(qconn, "w") == 0


def test_a_new_fingerprint_during_a_claim_that_read_the_old_one_runs_the_item_again(
        database_url: str, qconn: Conn) -> None:
    """The claim does not write the item, so an enqueue can change a pending item's
    fingerprint while a claim is leasing it (the enqueue saw no lease yet): the claim may
    have read the old fingerprint, so the item must run again after, as a running item's
    would. The enqueue waits for the claim's lock on the item's queue_pending row, finds it
    gone, and marks the item for a rerun."""
    queue.enqueue(qconn, "t_record", "x", fingerprint="f1")
    answers: list[str] = []
    with psycopg.connect(database_url, row_factory=dict_row) as claimer:
        [claimed] = queue.claim_batch(claimer, ["t_record"], owner="w", limits=[10],
                                      leases=[60.0])  # not committed yet
        assert claimed.fingerprint == "f1"

        def enqueue() -> None:
            with psycopg.connect(database_url, autocommit=True) as other:
                answers.append(queue.enqueue(other, "t_record", "x", fingerprint="f2"))

        thread = threading.Thread(target=enqueue)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # waits for the claim's row lock
        claimer.commit()
        thread.join(30)
        assert answers == ["updated"]
        with claimer.transaction():
            assert queue.lock(claimer, [claimed]) == {claimed.id}
            queue.complete(claimer, [claimed])
    row = item(qconn, "t_record", "x")
    assert (row["state"], row["fingerprint"], row["rerun"]) == ("pending", "f2", False)
