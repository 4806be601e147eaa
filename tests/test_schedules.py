"""Cron schedules: tick arithmetic, firing through the queue, exactly once per tick however
many schedulers run, the default schedules and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from croniter import croniter
from hypothesis import given
from hypothesis import strategies as st

from renderer import pipelines, queue, schedules
from renderer.db import Database, connect
from renderer.errors import InputError
from renderer.queue import Job
from renderer.worker import run_worker
from tests.factories import add_schedule
from tests.test_cli import run

RUNS: list[str] = []
T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # a Monday


@queue.register("sched_test", max_attempts=1)
def sched_test(job: Job) -> None:
    RUNS.append(job.item.key)


@pytest.fixture(autouse=True)
def _clear_runs() -> Iterator[None]:
    RUNS.clear()
    yield
    RUNS.clear()


CRONS = ["*/5 * * * *", "0 2 * * 1", "30 3 * * *", "0 */6 * * *", "15 10 1 * *", "@hourly"]


@given(cron=st.sampled_from(CRONS),
       now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1),
                        timezones=st.just(UTC)))
def test_latest_and_next_tick_bracket_now(cron: str, now: datetime) -> None:
    latest, following = schedules.latest_tick(cron, now), schedules.next_tick(cron, now)
    assert latest <= now < following
    assert croniter.match(cron, latest) and croniter.match(cron, following)
    assert schedules.next_tick(cron, latest) == following  # no tick in between


def test_a_tick_at_now_is_due_now() -> None:
    assert schedules.latest_tick("0 2 * * 1", T0) == T0
    assert schedules.tick_key("x", T0) == "x/2026-01-05T02:00Z"


@pytest.mark.parametrize("cron", ["* * * *", "61 * * * *", "* * * * * *", "every day", ""])
def test_invalid_cron_expressions_are_refused(cron: str) -> None:
    with pytest.raises(InputError, match="invalid cron expression"):
        schedules.check_cron(cron)


def _add(db: Database, name: str, cron: str, *, created: datetime, key: str = "k",
         **kwargs: Any) -> None:
    with db.connect() as conn:
        add_schedule(conn, name, cron, "sched_test", key, created=created, **kwargs)
        conn.commit()


def _ticks(db: Database) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute("SELECT key FROM work_queue WHERE kind = %s ORDER BY key",
                            [schedules.TICK_KIND]).fetchall()
    return [r["key"] for r in rows]


def test_due_ticks_fire_once_and_missed_ones_coalesce(db: Database) -> None:
    _add(db, "every5", "*/5 * * * *", created=T0 - timedelta(minutes=1))
    with db.connect() as conn:
        assert [f.key for f in schedules.fire_due(conn, T0 + timedelta(seconds=30))] == [
            "every5/2026-01-05T02:00Z"]
        assert schedules.fire_due(conn, T0 + timedelta(minutes=4)) == []
        # Scheduler down for an hour: one catch-up tick, the latest, not twelve.
        fired = schedules.fire_due(conn, T0 + timedelta(hours=1, minutes=2))
        assert [f.key for f in fired] == ["every5/2026-01-05T03:00Z"]
    assert _ticks(db) == ["every5/2026-01-05T02:00Z", "every5/2026-01-05T03:00Z"]


def test_a_new_schedule_waits_for_its_first_tick(db: Database) -> None:
    _add(db, "weekly", "0 2 * * 1", created=T0 + timedelta(minutes=1))
    with db.connect() as conn:
        assert schedules.fire_due(conn, T0 + timedelta(days=6)) == []
        assert len(schedules.fire_due(conn, T0 + timedelta(days=7))) == 1


def test_disabled_schedules_do_not_fire(db: Database) -> None:
    _add(db, "off", "* * * * *", created=T0 - timedelta(hours=1), enabled=False)
    with db.connect() as conn:
        assert schedules.fire_due(conn, T0) == []


def test_a_tick_runs_the_schedules_item_each_time(db: Database) -> None:
    _add(db, "job", "*/5 * * * *", created=T0 - timedelta(minutes=1), key="target/1",
         payload={"a": 1})
    for minutes in (0, 5, 10):
        with db.connect() as conn:
            assert len(schedules.fire_due(conn, T0 + timedelta(minutes=minutes))) == 1
        run_worker(db.url, kinds=[schedules.TICK_KIND, "sched_test"], until_empty=True)
    # The target is one (kind, key) item, forced back to pending by each tick.
    assert RUNS == ["target/1"] * 3
    with db.connect() as conn:
        item = queue.item_history(conn, "sched_test", "target/1")
    assert item is not None and item["state"] == "done" and item["payload"] == {"a": 1}


def test_several_schedulers_fire_each_tick_exactly_once(fresh_database_url: str) -> None:
    """Eight schedulers, each on its own connection, race through the same 30 ticks of three
    schedules: every tick is fired by exactly one of them and enqueued once."""
    db = Database(fresh_database_url)
    with db.connect() as conn:
        conn.execute("DELETE FROM schedules")
        conn.commit()
    for name, cron in (("a", "* * * * *"), ("b", "*/2 * * * *"), ("c", "*/3 * * * *")):
        _add(db, name, cron, created=T0 - timedelta(seconds=1))
    schedulers, rounds = 8, 30
    barrier = threading.Barrier(schedulers)
    fired: list[list[str]] = [[] for _ in range(schedulers)]
    errors: list[BaseException] = []

    def scheduler(n: int) -> None:
        try:
            with connect(fresh_database_url) as conn:
                for minute in range(rounds):
                    barrier.wait(timeout=60)
                    now = T0 + timedelta(minutes=minute, seconds=1)
                    fired[n].extend(f.key for f in schedules.fire_due(conn, now))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=scheduler, args=(n,)) for n in range(schedulers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    everything = [key for keys in fired for key in keys]
    expected = sorted(schedules.tick_key(name, T0 + timedelta(minutes=m))
                      for m in range(rounds)
                      for name, every in (("a", 1), ("b", 2), ("c", 3)) if m % every == 0)
    assert sorted(everything) == expected  # each tick fired once, none missing
    assert sum(1 for keys in fired if keys) > 1  # the work really was shared
    assert _ticks(db) == expected


@pytest.mark.acceptance
def test_concurrent_scheduler_processes_fire_one_tick(fresh_database_url: str,
                                                      tmp_path: Any) -> None:
    db = Database(fresh_database_url)
    with db.connect() as conn:
        conn.execute("DELETE FROM schedules")
        conn.commit()
    _add(db, "minutely", "* * * * *", created=datetime.now(UTC) - timedelta(minutes=2))
    env = {**os.environ, "RENDERER_DATABASE_URL": fresh_database_url,
           "RENDERER_HOME": str(tmp_path), "RENDERER_PLUGINS": "tests.test_schedules"}
    procs = [subprocess.Popen([sys.executable, "-m", "renderer", "scheduler", "--once"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    fired = [line for out, _ in outputs for line in out.splitlines() if line.startswith("fired")]
    ticks = _ticks(db)
    # Normally one tick; two only if the minute turned while the processes started.
    assert len(fired) == len(ticks) and 1 <= len(ticks) <= 2
    # and each process printed the ticks it enqueued (a key is unique in the queue anyway)
    assert sorted("/".join(line.split()[1::2]) for line in fired) == ticks


def test_the_scheduler_loop_fires_and_stops(db: Database) -> None:
    _add(db, "loop", "* * * * *", created=datetime.now(UTC) - timedelta(minutes=2))
    stop = threading.Event()
    seen: list[schedules.Fired] = []
    thread = threading.Thread(target=schedules.run_scheduler, args=(db.url,),
                              kwargs={"stop": stop, "on_fire": seen.extend})
    thread.start()
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [f.schedule for f in seen] == ["loop"]


def _defaults() -> list[tuple[str, str, str, str]]:
    return sorted((d.name, d.cron, d.kind, d.key) for d in pipelines.default_schedules())


def test_the_profiles_defaults_are_added_once_and_stay_removed(fresh_database_url: str) -> None:
    with connect(fresh_database_url) as conn:
        conn.execute("DELETE FROM schedules")  # a database made without them
        assert sorted(s.name for s in schedules.ensure_defaults(conn)) == [
            "callbacks-sweep", "extracts-nightly", "queue-prune", "traffic-speedtiles",
            "traffic-submit"]
        found = [(s.name, s.cron, s.kind, s.key) for s in schedules.list_schedules(conn)]
        assert sorted(found) == _defaults()
        assert schedules.ensure_defaults(conn) == []
        assert schedules.restore_defaults(conn) == []
        schedules.remove(conn, "queue-prune")
        # a removed default is not added back when a scheduler starts ...
        assert schedules.ensure_defaults(conn) == []
        assert "queue-prune" not in [s.name for s in schedules.list_schedules(conn)]
        assert [f.schedule for f in schedules.fire_due(conn, T0 + timedelta(days=400))
                if f.schedule == "queue-prune"] == []
        with pytest.raises(InputError, match="no schedule named"):
            schedules.remove(conn, "queue-prune")
        # ... only by restore_defaults (or by adding it again)
        assert [s.name for s in schedules.restore_defaults(conn)] == ["queue-prune"]
        restored = {s.name: s for s in schedules.list_schedules(conn)}["queue-prune"]
        assert restored.enabled and restored.payload == {} and restored.cron == "30 3 * * *"
        schedules.remove(conn, "traffic-submit")
        again = schedules.add(conn, "traffic-submit", "* * * * *", "traffic-submit", "mine")
        assert again.key == "mine" and again.enabled


def test_default_handlers_run(db: Database, tmp_path: Any,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from renderer.traffic.sample import generate

    monkeypatch.delenv("RENDERER_TRAFFIC_SOURCE", raising=False)
    source = tmp_path / "source"
    generate(source, tiles=1, days=1, seed=5)
    with db.connect() as conn:
        queue.enqueue(conn, "traffic-submit", "no-source")
        queue.enqueue(conn, "traffic-submit", "with-source", {"source": source.as_uri(),
                                                              "after": "keep"})
        queue.enqueue(conn, "traffic-schedule", "weekly")
        queue.enqueue(conn, "queue-prune", "nightly", {"days": 1})
        conn.commit()
    stats = run_worker(db.url, kinds=["traffic-submit", "traffic-schedule", "queue-prune"],
                       until_empty=True)
    assert stats.failed == 0 and stats.done == 4
    with db.connect() as conn:
        st = queue.status(conn)
    assert st["kinds"]["histogram"]["pending"] == 24  # one per hour of the sample day


def test_schedule_cli(renderer_env: dict[str, str]) -> None:
    env = {"RENDERER_PLUGINS": "tests.test_schedules"}
    added = run(["schedule", "add", "nightly-test", "--cron", "0 4 * * *", "--kind", "sched_test",
                 "--key", "k/1", "--payload", '{"x": 1}'], env)
    assert added.returncode == 0, added.stderr
    assert "next tick" in added.stdout
    listed = json.loads(run(["schedule", "list", "--json"], env).stdout)
    [mine] = [s for s in listed if s["name"] == "nightly-test"]
    assert mine["payload"] == {"x": 1} and mine["next_tick"].endswith("04:00:00+00:00")
    for args, message in [
        (["--cron", "61 * * * *", "--kind", "sched_test", "--key", "k"], "invalid cron"),
        (["--cron", "* * * * *", "--kind", "nope", "--key", "k"], "unknown queue kind"),
        (["--cron", "* * * * *", "--kind", "sched_test", "--key", "k", "--payload", "[1]"],
         "JSON object"),
        (["--cron", "* * * * *"], "missing: --kind, --key"),
    ]:
        result = run(["schedule", "add", "other", *args], env)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    again = run(["schedule", "add", "nightly-test", "--cron", "0 5 * * *", "--kind",
                 "sched_test", "--key", "k/1"], env)
    assert again.returncode == 2 and "--replace" in again.stderr
    assert run(["schedule", "remove", "nightly-test"], env).returncode == 0
    gone = run(["schedule", "remove", "nightly-test"], env)
    assert gone.returncode == 2 and "no schedule named" in gone.stderr
    restored = run(["schedule", "add", "--defaults"], env)
    assert restored.returncode == 0, restored.stderr
