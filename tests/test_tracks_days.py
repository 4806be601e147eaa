"""Day partitions on ingest: a day's first load goes into a bare table that is attached after
(its indexes built then); later files of the day go through the parent's live indexes. Either
way exact duplicates are dropped, late reports accepted and the counts add up; and the
queries' bounding-box function is inlined (the GiST still serves it)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from renderer.db import Database
from renderer.tracks import sample
from renderer.tracks.formats import Report
from renderer.tracks.ingest import ingest
from renderer.tracks.query import Query, run

DAY = date(2031, 3, 4)
START = datetime(2031, 3, 4, tzinfo=UTC)


def _report(mmsi: int, t: datetime, lat: float, lon: float) -> Report:
    return Report(ids=(("mmsi", str(mmsi)),), time_ms=int(t.timestamp() * 1000), lat=lat,
                  lon=lon, sog=10.0)


def _write(tmp_path: Path, name: str, reports: list[Report]) -> str:
    path = tmp_path / f"{name}.ndjson"
    sample.write_ndjson(reports, path)
    return str(path)


def _rows(db: Database, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
    with db.connect() as conn:
        return conn.execute(statement, params or {}).fetchall()


def _indexes(db: Database, day: date) -> list[str]:
    """The parent's indexes that the day's partition has an attached index of."""
    part = f"tracks_reports_{day:%Y%m%d}"
    return [r["parent"] for r in _rows(db, """
        SELECT p.relname AS parent
        FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indexrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE x.indrelid = %(part)s::regclass ORDER BY 1""", {"part": part})]


def _day_checks(db: Database, day: date) -> int:
    part = f"tracks_reports_{day:%Y%m%d}"
    return int(_rows(db, "SELECT count(*) AS n FROM pg_constraint WHERE conrelid ="
                     " %(part)s::regclass AND contype = 'c'", {"part": part})[0]["n"])


def test_a_new_day_is_loaded_bare_then_attached_with_the_parents_indexes(
        fresh_database_url: str, tmp_path: Path) -> None:
    db = Database(fresh_database_url)
    reports = [_report(503000001 + i % 3, START + timedelta(minutes=i), -30 + i / 100, 150.0)
               for i in range(60)]
    twice = reports + reports[:7]  # exact duplicates inside the file
    [result] = ingest(db, [_write(tmp_path, "first", twice)]).files
    assert (result.rows_read, result.rows_accepted, result.rows_duplicate) == (67, 67, 7)
    assert _rows(db, "SELECT count(*) AS n FROM tracks_reports")[0]["n"] == 60
    assert [r["d"] for r in _rows(db, "SELECT d FROM renderer.tracks_days() d")] == [DAY]
    assert _indexes(db, DAY) == ["tracks_reports_key", "tracks_reports_position",
                                 "tracks_reports_time"]
    assert _day_checks(db, DAY) == 1  # made by tracks_bulk_day, not PARTITION OF


def test_late_reports_into_an_open_day_pass_the_live_key(fresh_database_url: str,
                                                         tmp_path: Path) -> None:
    db = Database(fresh_database_url)
    first = [_report(503000001, START + timedelta(minutes=i), -30.0, 150 + i / 100)
             for i in range(0, 40, 2)]
    ingest(db, [_write(tmp_path, "first", first)])
    late = [_report(503000001, START + timedelta(minutes=i), -30.0, 150 + i / 100)
            for i in range(1, 40, 2)]
    next_day = [_report(503000002, START + timedelta(days=1, minutes=i), -31.0, 151.0)
                for i in range(5)]
    [result] = ingest(db, [_write(tmp_path, "late", first[:5] + late + next_day)]).files
    assert (result.rows_accepted, result.rows_duplicate) == (5 + 20 + 5, 5)
    counts = _rows(db, "SELECT t::date AS d, count(*) AS n FROM tracks_reports"
                   " GROUP BY 1 ORDER BY 1")
    assert [(r["d"], r["n"]) for r in counts] == [(DAY, 40), (DAY + timedelta(days=1), 5)]
    assert len(_indexes(db, DAY + timedelta(days=1))) == 3
    with db.connect() as conn:
        got = list(run(conn, Query.parse(ids=["mmsi=503000001"], bbox="-31,149,-29,151")).rows)
    assert len(got) == 40


def test_a_second_load_of_a_new_day_waits_then_finds_the_partition(
        fresh_database_url: str) -> None:
    db = Database(fresh_database_url)
    second: list[Any] = []
    with db.connect() as first:
        with first.transaction():
            part = first.execute("SELECT renderer.tracks_bulk_day(%(d)s) AS p",
                                 {"d": DAY}).fetchone()
            assert part is not None and part["p"] == "tracks_reports_20310304"

            def load() -> None:
                with db.connect() as conn:
                    second.append(conn.execute("SELECT renderer.tracks_bulk_day(%(d)s) AS p",
                                               {"d": DAY}).fetchone())

            waiter = threading.Thread(target=load)
            waiter.start()
            waiter.join(0.5)
            assert waiter.is_alive()  # held by the day's lock
            first.execute("SELECT renderer.tracks_attach_day(%(d)s)", {"d": DAY})
        waiter.join(30)
    assert second == [{"p": None}]  # the day has its partition now: the live path


def test_the_box_condition_is_inlined(db: Database) -> None:
    """The box is one SQL function for the three statements; inlined, the planner still
    sees point(lon, lat) <@ box(..) and can use the GiST."""
    with db.connect() as conn:
        conn.execute("SELECT renderer.tracks_partition(%(d)s)", {"d": date(2026, 12, 1)})
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
            "EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM tracks_reports r WHERE"
            " renderer.tracks_in_box(r.lon, r.lat, %(a)s::float8, %(b)s::float8,"
            " %(c)s::float8, %(d)s::float8, NULL::float8, NULL::float8)",
            {"a": -40, "b": 140, "c": -30, "d": 150}).fetchall())
    assert "tracks_in_box" not in plan
    # r, or r_1, r_2 ... when other tests left more day partitions behind
    assert re.search(r"Index Cond: \(point\((r[_0-9]*)\.lon, \1\.lat\) <@ ", plan), plan
