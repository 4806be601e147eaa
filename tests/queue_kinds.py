"""Work-queue kinds and fixtures for the queue tests.

Worker processes import this module through ``RENDERER_PLUGINS=tests.queue_kinds``. Handlers
that produce output write one row per run into ``queue_test_output`` with the item's
transaction, so ``n == 1`` for every key proves "done exactly once".
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row, tuple_row

from renderer import queue
from renderer.queue import Job
from tests.factories import backdate

PLUGIN = "tests.queue_kinds"

OUTPUT_DDL = """
CREATE TABLE IF NOT EXISTS queue_test_output (
    kind text NOT NULL,
    key text NOT NULL,
    n integer NOT NULL DEFAULT 1,
    attempts integer[] NOT NULL DEFAULT '{}',
    pid integer,
    PRIMARY KEY (kind, key)
)
"""


def record(job: Job) -> None:
    job.conn.execute(
        "INSERT INTO queue_test_output (kind, key, attempts, pid) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (kind, key) DO UPDATE SET n = queue_test_output.n + 1,"
        " attempts = queue_test_output.attempts || excluded.attempts",
        [job.item.kind, job.item.key, [job.item.attempt], os.getpid()])


@queue.register("t_noop", batch_size=100)
def noop(job: Job) -> None:
    """Nothing at all."""


@queue.register("t_record", batch_size=200)
def record_kind(job: Job) -> None:
    record(job)


@queue.register("t_mixed", batch_size=10, max_attempts=1)
def mixed(job: Job) -> None:
    """Records, then fails when payload['fail']: its write must vanish, the others' stay."""
    record(job)
    if job.payload.get("fail"):
        raise ValueError(f"{job.item.key} fails after writing")


@queue.register("t_record_one")
def record_one(job: Job) -> None:
    record(job)


@queue.register("t_slow_record", lease_seconds=2, batch_size=1, backoff_seconds=0.05)
def slow_record(job: Job) -> None:
    """Sleeps payload['seconds'] (default 0.05) in its first payload['slow_attempts']
    attempts (default all), then records."""
    if job.item.attempt <= int(job.payload.get("slow_attempts", 1_000)):
        time.sleep(float(job.payload.get("seconds", 0.05)))
    record(job)


@queue.register("t_fail", max_attempts=2, backoff_seconds=0.01)
def always_fails(job: Job) -> None:
    record(job)  # rolled back with the failure: never visible
    raise ValueError(f"bad input {job.item.key}")


@queue.register("t_flaky", max_attempts=3, backoff_seconds=0.01)
def flaky(job: Job) -> None:
    """Fails its first payload['fail'] attempts, then records."""
    if job.item.attempt <= int(job.payload.get("fail", 1)):
        raise RuntimeError(f"flaky attempt {job.item.attempt}")
    record(job)


@queue.register("t_slow", time_limit=0.5, max_attempts=1)
def too_slow(job: Job) -> None:
    job.conn.execute("SELECT 1")
    time.sleep(30)
    record(job)


@queue.register("t_stubborn", time_limit=0.5, max_attempts=1)
def stubborn(job: Job) -> None:
    """Ignores the soft time limit (SIGALRM blocked): only a kill stops it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(30)


@queue.register("t_crash", max_attempts=3, backoff_seconds=0.01)
def crash(job: Job) -> None:
    """The process dies on the first attempt (as a segfault in a C extension would)."""
    if job.item.attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    record(job)


@queue.register("t_leaf", batch_size=10)
def leaf(job: Job) -> None:
    record(job)
    job.when_group_done("t_sum", f"sum-{job.item.group}", {"group": job.item.group})


@queue.register("t_sum")
def total(job: Job) -> None:
    record(job)


@queue.register("t_parent")
def parent(job: Job) -> None:
    record(job)
    job.enqueue("t_record", f"child-of-{job.item.key}")


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes (spawned) import these kinds."""
    monkeypatch.setenv("RENDERER_PLUGINS", PLUGIN)
    monkeypatch.setenv("RENDERER_POLL_SECONDS", "0.2")


@pytest.fixture
def qconn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection on the session database; queue tables emptied after."""
    from tests.conftest import truncate_all

    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(OUTPUT_DDL)
        queue.sync_kinds(conn)
        yield conn
    truncate_all(database_url)


@pytest.fixture
def fresh(fresh_database_url: str) -> Iterator[str]:
    """A database of its own (for several processes), with the output table."""
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute(OUTPUT_DDL)
    yield fresh_database_url


def outputs(conn: psycopg.Connection[Any], kind: str) -> dict[str, int]:
    """key -> how many times its output was committed."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT key, n FROM queue_test_output WHERE kind = %s", [kind])
        return {key: n for key, n in cur.fetchall()}


def states(conn: psycopg.Connection[Any], kind: str | None = None) -> dict[str, int]:
    """state -> number of items (COUNT(*): the ground truth the counters must match; a leased
    item is running, as queue_items shows it)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT state, count(*) FROM queue_items"
                    " WHERE %(kind)s::text IS NULL OR kind = %(kind)s GROUP BY state",
                    {"kind": kind})
        return {state: n for state, n in cur.fetchall()}


def item(conn: psycopg.Connection[Any], kind: str, key: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM queue_items WHERE kind = %s AND key = %s",
                          [kind, key]).fetchone()
    assert row is not None, f"no item {kind}/{key}"
    return row


def take_over(conn: psycopg.Connection[Any], item_id: int) -> None:
    """The item's lease is taken over: it moves to a lease of another token, as if reaped
    and claimed again (its completion with the old token is refused)."""
    conn.execute(
        "WITH o AS (UPDATE queue_leases SET ids = array_remove(ids, %(id)s)"
        "           WHERE %(id)s = ANY (ids) RETURNING owner, kind, expires, started_at)"
        " INSERT INTO queue_leases SELECT gen_random_uuid(), owner, kind, expires,"
        "                                 started_at, ARRAY[%(id)s::bigint] FROM o",
        {"id": item_id})


def expire_leases(conn: psycopg.Connection[Any]) -> None:
    backdate(conn, state="running", lease_expires=1)


@queue.register("t_nul", batch_size=10, max_attempts=1)
def nul_message(job: Job) -> None:
    """Records; fails when payload['fail'] with a NUL in a 5 MB message (nothing written)."""
    if job.payload.get("fail"):
        raise ValueError("bad\x00byte " + "x" * 5_000_000)
    record(job)


@queue.register("t_exit0", max_attempts=3, backoff_seconds=0.01)
def exit_zero(job: Job) -> None:
    """The process exits with status 0 in the middle of the first attempt."""
    if job.item.attempt == 1:
        os._exit(0)
    record(job)


@queue.register("t_usurp", batch_size=10, max_attempts=1, lease_seconds=2)
def usurp(job: Job) -> None:
    """Records; with payload['usurp'], its lease is taken over before the batch completes."""
    record(job)
    if job.payload.get("usurp"):
        take_over(job.conn, job.item.id)
