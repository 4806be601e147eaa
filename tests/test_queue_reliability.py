"""Acceptance: real worker processes on one queue, killed, restarted, racing; every item done
exactly once (each handler commits one output row with its completion)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from renderer import queue, schema
from renderer.localdb import Cluster
from renderer.pool import run_pool
from renderer.queue import NewItem
from renderer.worker import run_worker
from tests.queue_kinds import (
    OUTPUT_DDL,
    PLUGIN,
    fresh,
    item,
    outputs,
    plugin_env,
    qconn,
    states,
)

__all__ = ["fresh", "plugin_env", "qconn"]

Conn = psycopg.Connection[Any]


def connect(url: str) -> Conn:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def wait_for(predicate: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def worker_process(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    full = {**os.environ, "RENDERER_DATABASE_URL": url, "RENDERER_PLUGINS": PLUGIN,
            "RENDERER_POLL_SECONDS": "0.2", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "renderer", *args], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- fan-in races ----------------------------------------------------------------------------

def test_fan_in_fires_once_when_the_last_items_complete_together(
        database_url: str, qconn: Conn) -> None:
    groups = 40
    claimed: dict[str, queue.Item] = {}
    for side in range(2):  # a batch per side: a processing transaction holds its whole batch
        queue.enqueue_many(qconn, [NewItem("t_record", f"g{g}-{side}", group=f"g{g}")
                                   for g in range(groups)])
        claimed |= {i.key: i for i in queue.claim(qconn, "t_record", limit=groups)}
    queue.add_rules(qconn, [("t_record", f"g{g}", "t_sum", f"sum{g}", None, None)
                            for g in range(groups)])
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def complete_side(side: int) -> None:
        try:
            with connect(database_url) as conn:
                for g in range(groups):
                    it = claimed[f"g{g}-{side}"]
                    with conn.transaction():
                        queue.lock(conn, [it])
                        barrier.wait(timeout=30)
                        queue.complete(conn, [it])
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=complete_side, args=(s,)) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert states(qconn, "t_sum") == {"pending": groups}
    fired = qconn.execute("SELECT fired, count(*) AS n FROM queue_rules GROUP BY fired").fetchall()
    assert fired == [{"fired": 1, "n": groups}]


def test_rule_added_while_the_last_item_completes_fires_once(
        database_url: str, qconn: Conn) -> None:
    rounds = 30
    queue.enqueue_many(qconn, [NewItem("t_record", f"r{g}", group=f"r{g}")
                               for g in range(rounds)])
    claimed = {i.key: i for i in queue.claim(qconn, "t_record", limit=rounds)}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def completer() -> None:
        try:
            with connect(database_url) as conn:
                for g in range(rounds):
                    with conn.transaction():
                        queue.lock(conn, [claimed[f"r{g}"]])
                        barrier.wait(timeout=30)
                        queue.complete(conn, [claimed[f"r{g}"]])
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    def ruler() -> None:
        try:
            with connect(database_url) as conn:
                for g in range(rounds):
                    with conn.transaction():
                        barrier.wait(timeout=30)
                        queue.add_rule(conn, "t_record", f"r{g}", "t_sum", f"s{g}")
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=completer), threading.Thread(target=ruler)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert states(qconn, "t_sum") == {"pending": rounds}
    assert qconn.execute("SELECT sum(fired) AS n FROM queue_rules").fetchone()["n"] == rounds


# -- crashes, zombies, limits ----------------------------------------------------------------

@pytest.mark.acceptance
def test_kill_9_mid_item_is_completed_once_by_another_worker_after_the_lease(
        fresh: str, plugin_env: None) -> None:
    with connect(fresh) as conn:
        queue.enqueue(conn, "t_slow_record", "victim", {"seconds": 60, "slow_attempts": 1})
        victim = worker_process(fresh, "work", "--processes", "1", "--kinds", "t_slow_record")
        try:
            wait_for(lambda: item(conn, "t_slow_record", "victim")["state"] == "running",
                     what="the item to be claimed")
            time.sleep(0.3)  # inside the handler, its transaction open
            # kill -9 the supervisor, then every process under it (the fork server and
            # the worker it forked): nobody is left to release the item
            for pid in [victim.pid, *descendants(victim.pid)]:
                os.kill(pid, signal.SIGKILL)
        finally:
            victim.wait(10)
        assert item(conn, "t_slow_record", "victim")["state"] == "running"
        stats = run_worker(fresh, kinds=["t_slow_record"], until_empty=True)
        assert stats.done == 1
        assert outputs(conn, "t_slow_record") == {"victim": 1}
        row = item(conn, "t_slow_record", "victim")
        assert (row["state"], row["attempt"]) == ("done", 2)
        outcomes = [a["outcome"]
                    for a in queue.item_history(conn, "t_slow_record", "victim")["attempts"]]
        assert outcomes == ["expired"]


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (a pool's workers are its fork server's children)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                              text=True).stdout.split()
    return [d for c in map(int, children) for d in (c, *descendants(c))]


def _running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an orphan's reaper may be slow)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.acceptance
def test_workers_stop_when_their_supervisor_is_killed_alone(fresh: str,
                                                            plugin_env: None) -> None:
    """kill -9 of the supervisor only: each worker finishes the item it holds, once, and
    exits, rather than go on working unsupervised (they are forked by a server, not by the
    supervisor, so nothing else would stop them)."""
    with connect(fresh) as conn:
        queue.enqueue_many(conn, [NewItem("t_slow_record", f"k{i}", {"seconds": 3})
                                  for i in range(4)])
        victim = worker_process(fresh, "work", "--processes", "2", "--kinds", "t_slow_record")
        try:
            wait_for(lambda: conn.execute(
                "SELECT count(*) AS n FROM queue_items WHERE state = 'running'").fetchone()["n"]
                == 2, what="two items to be claimed")
            pids = [int(r["pid"]) for r in conn.execute(
                "SELECT info->>'pid' AS pid FROM queue_workers WHERE info ? 'pid'").fetchall()]
            assert len(pids) == 2 and all(_running(p) for p in pids)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            wait_for(lambda: not any(_running(p) for p in pids), timeout=30,
                     what="the workers to exit")
        finally:
            if victim.poll() is None:
                victim.kill()
        rows = conn.execute("SELECT state, attempt, count(*) AS n FROM queue_items "
                            "GROUP BY 1, 2 ORDER BY 1").fetchall()
        assert [(r["state"], r["attempt"], r["n"]) for r in rows] \
            == [("done", 1, 2), ("pending", 0, 2)]
        assert outputs(conn, "t_slow_record").keys() <= {f"k{i}" for i in range(4)}
        assert len(outputs(conn, "t_slow_record")) == 2


@pytest.mark.acceptance
def test_crashed_child_is_replaced_and_its_item_retried(fresh: str, plugin_env: None) -> None:
    with connect(fresh) as conn:
        queue.enqueue(conn, "t_crash", "boom")
        queue.enqueue_many(conn, [NewItem("t_record", f"ok{i}") for i in range(200)])
        stats = run_pool(fresh, processes=2, kinds=["t_crash", "t_record"], until_empty=True)
        assert stats.restarts >= 1
        assert outputs(conn, "t_crash") == {"boom": 1}
        assert len(outputs(conn, "t_record")) == 200
        assert states(conn) == {"done": 201}
        history = queue.item_history(conn, "t_crash", "boom")["attempts"]
        assert [a["outcome"] for a in history] in (["crashed"], ["expired"])


@pytest.mark.acceptance
def test_stuck_handler_is_killed_past_its_time_limit(fresh: str, plugin_env: None) -> None:
    with connect(fresh) as conn:
        queue.enqueue(conn, "t_stubborn", "stuck")
        queue.enqueue(conn, "t_record_one", "fine")
        stats = run_pool(fresh, processes=1, kinds=["t_stubborn", "t_record_one"],
                         until_empty=True)
        assert stats.killed == 1
        row = item(conn, "t_stubborn", "stuck")
        assert row["state"] == "failed" and row["last_error"].startswith("TimeLimitExceeded")
        assert outputs(conn, "t_record_one") == {"fine": 1}


@pytest.mark.acceptance
def test_raising_handler_fails_alone_in_a_pool(fresh: str, plugin_env: None) -> None:
    with connect(fresh) as conn:
        queue.enqueue_many(conn, [NewItem("t_record", f"k{i}") for i in range(500)])
        queue.enqueue_many(conn, [NewItem("t_fail", f"bad{i}") for i in range(5)])
        stats = run_pool(fresh, processes=2, until_empty=True, kinds=["t_record", "t_fail"])
        assert stats.done == 500
        assert set(outputs(conn, "t_record").values()) == {1}
        assert states(conn) == {"done": 500, "failed": 5}
        failed = queue.list_failed(conn, kind="t_fail")
        assert len(failed) == 5 and all("ValueError bad input" in f["last_error"] for f in failed)
        st = queue.status(conn)
        assert st["kinds"]["t_fail"]["failed"] == 5 and st["kinds"]["t_record"]["done"] == 500


@pytest.mark.acceptance
def test_sigterm_stops_the_pool_cleanly(fresh: str, plugin_env: None) -> None:
    with connect(fresh) as conn:
        queue.enqueue_many(conn, [NewItem("t_slow_record", f"s{i}", {"seconds": 0.1})
                                  for i in range(400)])
        pool = worker_process(fresh, "work", "--processes", "2", "--kinds", "t_slow_record")
        try:
            wait_for(lambda: len(outputs(conn, "t_slow_record")) >= 5, what="some items done")
            pool.send_signal(signal.SIGTERM)
            _, err = pool.communicate(timeout=30)
        finally:
            if pool.poll() is None:
                pool.kill()
        assert pool.returncode == 0, err
        counts = states(conn)
        assert "running" not in counts
        done = outputs(conn, "t_slow_record")
        assert set(done.values()) == {1} and counts["done"] == len(done)
        assert counts["pending"] == 400 - len(done)
        assert conn.execute("SELECT count(*) AS n FROM queue_workers").fetchone()["n"] == 0


@pytest.mark.slow
@pytest.mark.acceptance
def test_eight_processes_twenty_thousand_items_each_exactly_once(
        fresh: str, plugin_env: None) -> None:
    total = 8 * 20_000
    with connect(fresh) as conn:
        queue.enqueue_many(conn, (NewItem("t_record", f"k{i}") for i in range(total)))
        stats = run_pool(fresh, processes=8, kinds=["t_record"], until_empty=True)
        assert stats.done == total
        done = outputs(conn, "t_record")
        assert len(done) == total and set(done.values()) == {1}
        assert states(conn) == {"done": total}
        pids = {r["pid"] for r in conn.execute("SELECT DISTINCT pid FROM queue_test_output")}
        assert len(pids) >= 2  # the work was shared


@pytest.mark.slow
@pytest.mark.acceptance
def test_postgres_restart_mid_run(cluster_home: Path, plugin_env: None) -> None:
    cluster = Cluster(cluster_home, extra_settings={"fsync": "off"})
    url = cluster.ensure_started()
    try:
        schema.upgrade(url)
        with connect(url) as conn:
            conn.execute(OUTPUT_DDL)
            queue.enqueue_many(conn, [NewItem("t_slow_record", f"r{i}", {"seconds": 0.01})
                                      for i in range(600)])
        pool = worker_process(url, "work", "--processes", "2", "--until-empty")
        try:
            with connect(url) as conn:
                wait_for(lambda: len(outputs(conn, "t_slow_record")) >= 100,
                         what="a first part of the run")
            cluster.stop()
            time.sleep(1.0)
            cluster.start()
            _, err = pool.communicate(timeout=180)
        finally:
            if pool.poll() is None:
                pool.kill()
        assert pool.returncode == 0, err
        with connect(url) as conn:
            done = outputs(conn, "t_slow_record")
            assert len(done) == 600 and set(done.values()) == {1}
            assert states(conn) == {"done": 600}
    finally:
        cluster.stop()
