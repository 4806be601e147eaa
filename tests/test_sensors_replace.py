"""How a day replaces its partition (migration 0009) and how a run is planned: days compute in
parallel and queue only for their last instants, reruns never deadlock nor duplicate, readers
see the old day or the new one; plan_etl commits nothing; the default export target."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from renderer.config import Settings
from renderer.db import Database
from renderer.errors import DatabaseError
from renderer.sensors.day import ExportSpec, default_export, plan_etl
from renderer.sensors.enrich import enrich_day
from renderer.web import runs
from tests.factories import add_sensor_days
from tests.test_sensors_enrich import put
from tests.test_sensors_fixtures import at, enrich, epoch, sql

DAY = date(2026, 1, 5)
NEXT = DAY + timedelta(days=1)


def _first_run(db: Database) -> None:
    """No enriched partition of the two days (other tests leave them, emptied)."""
    sql(db, "DROP TABLE IF EXISTS sensors_enriched_20260105, sensors_enriched_20260106")


def _two_days(db: Database, speed: int) -> None:
    t = epoch(at(DAY, 12))
    put(db, [(d, t + 86400 * k + 60 * m, speed) for d in (1, 2) for k in (0, 1)
             for m in range(5)])


class _InThread:
    """``enrich_day`` of one day on a connection of its own, committed, in a thread."""

    def __init__(self, db: Database, day: date) -> None:
        self.conn = db.connect()
        self.pid = self.conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        self.result: Any = None
        self.thread = threading.Thread(target=self._run, args=(day,))
        self.thread.start()

    def _run(self, day: date) -> None:
        try:
            self.result = enrich_day(self.conn, day)
            self.conn.commit()
        except DatabaseError as exc:
            self.result = exc
        finally:
            self.conn.close()

    def join(self) -> Any:
        self.thread.join(30)
        return self.result


def _parent_locks(conn: psycopg.Connection[Any], pid: int) -> list[tuple[str, bool]]:
    rows = conn.execute("""
        SELECT mode, granted FROM pg_locks
        WHERE pid = %(pid)s AND relation = 'sensors_enriched'::regclass
    """, {"pid": pid}).fetchall()
    return sorted((r["mode"], r["granted"]) for r in rows)


def _wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _day_rows(conn: psycopg.Connection[Any], day: date) -> list[tuple[int, int]]:
    rows = conn.execute("""
        SELECT uniqueid, currentspeed FROM sensors_enriched
        WHERE recordtimestamp >= %(lo)s AND recordtimestamp < %(lo)s + interval '1 day'
        ORDER BY uniqueid, recordtimestamp
    """, {"lo": at(day)}).fetchall()
    return [(r["uniqueid"], r["currentspeed"]) for r in rows]


@pytest.mark.parametrize("rerun", [False, True])
def test_days_compute_in_parallel_and_queue_only_to_swap_in(db: Database, rerun: bool) -> None:
    """The second day computes while the first one's transaction is open and then waits for
    the lock on the parent only, holding none on it: two days can never deadlock."""
    _first_run(db)
    _two_days(db, 50)
    if rerun:
        enrich(db, DAY, NEXT)
        _two_days(db, 70)
    with db.connect() as first, db.connect() as watcher:
        assert enrich_day(first, DAY) == 10  # its transaction stays open, holding the parent
        held = "AccessExclusiveLock" if rerun else "ShareUpdateExclusiveLock"
        first_pid = first.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        assert (held, True) in _parent_locks(watcher, first_pid)
        second = _InThread(db, NEXT)
        _wait_for(lambda: _parent_locks(watcher, second.pid) != [])
        # computed; waits for the parent, and holds nothing on it that the first could want
        assert all(not granted for _, granted in _parent_locks(watcher, second.pid))
        assert second.thread.is_alive()
        first.commit()
        assert second.join() == 10
    with db.connect() as conn:
        speed = 70 if rerun else 50
        assert _day_rows(conn, DAY) == _day_rows(conn, NEXT) == [(1, speed)] * 5 + [(2, speed)] * 5
        assert conn.execute("""
            SELECT count(*) AS n FROM pg_inherits
            WHERE inhparent = 'sensors_enriched'::regclass AND inhrelid::regclass::text
                  IN ('sensors_enriched_20260105', 'sensors_enriched_20260106')
        """).fetchone()["n"] == 2
        assert conn.execute("SELECT count(*) AS n FROM pg_class"
                            " WHERE relname LIKE 'sensors_enriched%%new'").fetchone()["n"] == 0


def test_readers_of_other_days_are_not_blocked_by_a_first_run(db: Database) -> None:
    _first_run(db)
    _two_days(db, 50)
    enrich(db, NEXT)
    with db.connect() as writer, db.connect() as reader:
        enrich_day(writer, DAY)
        reader.execute("SET lock_timeout = '3s'")
        assert _day_rows(reader, NEXT) == [(1, 50)] * 5 + [(2, 50)] * 5
        assert _day_rows(reader, DAY) == []  # not committed yet: nothing of it
        reader.commit()
        writer.commit()
        assert len(_day_rows(reader, DAY)) == 10


def test_a_reader_sees_the_old_day_or_the_new_one_never_a_part(db: Database) -> None:
    _two_days(db, 50)
    enrich(db, DAY)
    _two_days(db, 70)
    seen: list[Any] = []
    with db.connect() as writer, db.connect() as reader:
        assert _day_rows(reader, DAY) == [(1, 50)] * 5 + [(2, 50)] * 5
        reader.commit()
        enrich_day(writer, DAY)  # the rerun holds the parent until it commits
        reader_pid = reader.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        thread = threading.Thread(target=lambda: seen.append(_day_rows(reader, DAY)))
        thread.start()
        _wait_for(lambda: _parent_locks(writer, reader_pid) == [("AccessShareLock", False)])
        writer.commit()
        thread.join(30)
    assert seen == [[(1, 70)] * 5 + [(2, 70)] * 5]


def test_a_day_rolled_back_leaves_the_old_one(db: Database) -> None:
    _two_days(db, 50)
    enrich(db, DAY)
    _two_days(db, 70)
    with db.connect() as conn:
        enrich_day(conn, DAY)
        conn.rollback()
        assert _day_rows(conn, DAY) == [(1, 50)] * 5 + [(2, 50)] * 5
        assert conn.execute("SELECT to_regclass('sensors_enriched_20260105_new') AS t"
                            ).fetchone()["t"] is None


def test_plan_etl_commits_nothing(db: Database, tmp_path: Path) -> None:
    """Planning is one transaction of the caller: a crash before its commit (here a rollback)
    leaves no run, no item and no partition; after it, all of them are there."""
    _first_run(db)
    with db.connect() as conn:
        run = plan_etl(conn, [(DAY, 1), (NEXT, 1)], export=ExportSpec(str(tmp_path)))
        assert run.enqueued == 2
        conn.rollback()
    assert sql(db, "SELECT count(*) AS n FROM sensors_runs") == [{"n": 0}]
    assert sql(db, "SELECT count(*) AS n FROM work_queue") == [{"n": 0}]
    assert sql(db, "SELECT count(*) AS n FROM pg_class WHERE relname IN"
                   " ('sensors_enriched_20260105', 'sensors_enriched_20260106')") == [{"n": 0}]
    with db.connect() as conn:
        plan_etl(conn, [(DAY, 1), (NEXT, 1)], export=ExportSpec(str(tmp_path)))
        conn.commit()
    assert sql(db, "SELECT count(*) AS n FROM work_queue WHERE kind = 'sensors-day'") == [{"n": 2}]


def test_default_export_is_the_setting_else_the_store(tmp_path: Path) -> None:
    store = Settings(home=tmp_path)
    assert default_export(store) == ExportSpec(store.store_url, "parquet", "sensors")
    lake = Settings(home=tmp_path, sensors_export="s3://lake/loops")
    assert default_export(lake, "csv") == ExportSpec("s3://lake/loops", "csv", "")


def test_the_web_run_and_the_cli_export_to_the_setting(db: Database, tmp_path: Path,
                                                       renderer_env: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from renderer.cli import main

    with db.connect() as conn:
        add_sensor_days(conn, {DAY: 1})
        conn.commit()
    lake = str(tmp_path / "lake")
    ctx = runs.Context(Settings(home=tmp_path, sensors_export=lake), None)
    with db.connect() as conn:
        runs.start(conn, {"pipeline": "sensors", "stage": "etl", "format": "csv"}, ctx)
        conn.commit()
    monkeypatch.setenv("RENDERER_SENSORS_EXPORT", lake + "-cli")
    result = CliRunner().invoke(main, ["sensors", "etl", "--from", str(DAY), "--json"])
    assert result.exit_code == 0, result.output
    targets = sql(db, "SELECT export_out, export_format, export_prefix FROM sensors_runs"
                      " ORDER BY created_at")
    assert [tuple(t.values()) for t in targets] == [(lake, "csv", ""),
                                                    (lake + "-cli", "parquet", "")]
