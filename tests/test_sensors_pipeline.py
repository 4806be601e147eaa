"""The sensor pipeline end to end on the work queue: files -> day items -> export fan-in,
late files, reruns; exports read back with pyarrow.dataset and DuckDB; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from renderer.db import Database
from renderer.sensors.day import DAY_KIND, EXPORT_KIND, ExportSpec, plan_etl
from renderer.sensors.enrich import pending_days
from renderer.sensors.ingest import ingest
from renderer.worker import run_worker
from tests.test_sensors_fixtures import at, enriched, epoch, minute_rows, sql, write_csv

DAY = date(2026, 1, 5)
DAYS = [DAY + timedelta(days=i) for i in range(3)]


def _files(tmp_path: Path, detectors: int = 3) -> list[str]:
    paths = []
    for day in DAYS:
        rows = [r for d in range(1, detectors + 1)
                for r in minute_rows(d, at(day), 1440, speed=lambda m, d=d: (m * d) % 120,
                                     skip=range(600, 610))]
        paths.append(str(write_csv(tmp_path / "in" / f"{day}.csv.gz", rows, compress=True)))
    return paths


def _etl(db: Database, out: Path, fmt: str = "parquet", start: date | None = None,
         end: date | None = None, force: bool = False) -> str:
    """What `renderer sensors etl --wait` does."""
    with db.connect() as conn:
        days = pending_days(conn, start, end, every=force)
        run = plan_etl(conn, days, export=ExportSpec(str(out), fmt), force=force)
        conn.commit()
    stats = run_worker(db.url, kinds=[DAY_KIND, EXPORT_KIND], until_empty=True)
    assert stats.failed == 0
    return run.run


def _exported(db: Database, run: str) -> dict:
    return sql(db, "SELECT exported_at, exported_rows FROM sensors_runs WHERE id = %(id)s",
               {"id": run})[0]


def test_files_to_days_to_hive_export(db: Database, tmp_path: Path) -> None:
    ingest(db, _files(tmp_path))
    out = tmp_path / "lake"
    run = _etl(db, out)

    rows = enriched(db)
    assert len(rows) == 3 * 3 * 1430
    assert _exported(db, run)["exported_rows"] == len(rows)
    for day in DAYS:
        assert (out / f"year={day.year}" / f"month={day.month}" / f"day={day.day}"
                / f"sensors-{day}.parquet").exists()

    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(rows)
    assert set(table.column("day").to_pylist()) == {5, 6, 7}
    mine = sorted((r["uniqueid"], r["t"], r["avgspeed10minutes"]) for r in rows)
    theirs = sorted(zip(table.column("uniqueid").to_pylist(),
                        [t.timestamp() for t in table.column("recordtimestamp").to_pylist()],
                        table.column("avgspeed10minutes").to_pylist(), strict=True))
    assert mine == theirs

    per_day = duckdb.sql(
        f"SELECT day::int AS d, count(*), sum(trafficjamindicator), min(epoch(recordtimestamp))"
        f" FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
        f" GROUP BY ALL ORDER BY d").fetchall()
    assert [(d, n, t) for d, n, _, t in per_day] == [
        (day.day, 3 * 1430, epoch(at(day))) for day in DAYS]
    jam = sum(r["trafficjamindicator"] for r in rows if r["t"] < epoch(at(DAYS[1])))
    assert per_day[0][2] == jam


def test_a_late_file_reruns_its_day_and_the_next_then_exports_again(db: Database,
                                                                     tmp_path: Path) -> None:
    ingest(db, _files(tmp_path))
    out = tmp_path / "lake"
    first = _etl(db, out, fmt="csv")
    before = {r["t"]: r for r in enriched(db, 1)}

    late = minute_rows(1, at(DAY, 23, 55), 1, speed=lambda m: 200)  # no other row has 200
    report = ingest(db, [str(write_csv(tmp_path / "late.csv", late))])
    assert report.days == [DAY, DAYS[1]]
    with db.connect() as conn:
        assert [d for d, _ in pending_days(conn)] == [DAY, DAYS[1]]
    second = _etl(db, out, fmt="csv")

    assert _exported(db, first)["exported_at"] < _exported(db, second)["exported_at"]
    after = {r["t"]: r for r in enriched(db, 1)}
    assert len(after) == len(before) and len(enriched(db)) == 3 * 3 * 1430  # replaced, no dups
    midnight = epoch(at(DAYS[1]))
    assert after[midnight]["avgspeed10minutes"] != before[midnight]["avgspeed10minutes"]
    assert after[midnight + 600]["avgspeed10minutes"] == before[midnight + 600]["avgspeed10minutes"]
    exported = duckdb.sql(
        f"SELECT count(*) FROM read_csv('{out}/year=2026/month=1/day=5/*.csv')"
        f" WHERE uniqueid = 1 AND currentspeed = 200").fetchall()
    assert exported == [(1,)]
    with db.connect() as conn:
        assert pending_days(conn) == []


def test_a_forced_rerun_replaces_days_and_a_no_op_run_still_exports(db: Database,
                                                                    tmp_path: Path) -> None:
    ingest(db, _files(tmp_path, detectors=1))
    out = tmp_path / "lake"
    _etl(db, out)
    n = len(enriched(db))
    rerun = _etl(db, out, start=DAY, end=DAY, force=True)
    assert len(enriched(db)) == n
    assert _exported(db, rerun)["exported_rows"] == 1430
    states = sql(db, "SELECT state, count(*) AS n FROM work_queue WHERE kind = %(k)s"
                     " GROUP BY state", {"k": DAY_KIND})
    assert states == [{"state": "done", "n": 3}]
    # nothing changed and nothing forced: no day item re-opens, the export still fans in
    with db.connect() as conn:
        run = plan_etl(conn, [(DAY, 1)], export=ExportSpec(str(tmp_path / "again")))
        conn.commit()
    assert run.enqueued == 0
    run_worker(db.url, kinds=[DAY_KIND, EXPORT_KIND], until_empty=True)
    assert (tmp_path / "again" / "year=2026" / "month=1" / "day=5").is_dir()


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
@pytest.mark.acceptance
def test_the_command_line(renderer_env: dict[str, str], tmp_path: Path) -> None:
    files = _files(tmp_path, detectors=2)
    bad = write_csv(tmp_path / "in" / "bad.csv", [(1, "soon", 50, 1, 1, 1, 1, 1, 1)])
    shown = _cli(["sensors", "ingest", str(tmp_path / "in"), "--json"], renderer_env)
    report = json.loads(shown.stdout)
    assert report["rows"] == {"rows_read": 3 * 2 * 1430 + 1, "rows_accepted": 3 * 2 * 1430,
                              "rows_rejected": 1}
    again = json.loads(_cli(["sensors", "ingest", *files, "--json"], renderer_env).stdout)
    assert [f["status"] for f in again["files"]] == ["skipped"] * 3
    rejects = json.loads(_cli(["sensors", "rejects", "--json"], renderer_env).stdout)
    assert [(r["file"], r["line"]) for r in rejects] == [(str(bad.resolve()), 2)]

    _cli(["sensors", "etl", "--wait"], renderer_env)
    exported = Path(renderer_env["RENDERER_STORAGE"].removeprefix("file://")) / "sensors"
    assert len(list(exported.glob("year=2026/month=1/day=*/*.parquet"))) == 3

    t0 = epoch(at(DAY, 7))
    csv_rows = _cli(["sensors", "query", "--detector", "2", "--from", str(t0),
                     "--to", "2026-01-05T07:05:00Z"], renderer_env).stdout.splitlines()
    assert csv_rows[0].split(",")[:3] == ["uniqueid", "recordtimestamp", "currentspeed"]
    assert [line.split(",")[1] for line in csv_rows[1:]] == [str(t0 + 60 * i) for i in range(6)]
    as_json = json.loads(_cli(["sensors", "query", "--detector", "2", "--from", "2026-01-06",
                               "--to", "2026-01-06", "--format", "json"], renderer_env).stdout)
    assert len(as_json) == 1430 and as_json[0]["recordtimestamp"] == epoch(at(DAYS[1]))
    assert set(as_json[0]) >= {"previousspeed", "trafficjamindicator", "speeddiffindicator",
                               "avgspeed2minutes", "avgspeed10minutes", "bezettingsgraad"}

    csv_out = tmp_path / "csv-lake"
    _cli(["sensors", "export", "--out", str(csv_out), "--format", "csv", "--from", "2026-01-06"],
         renderer_env)
    counted = duckdb.sql(f"SELECT day, count(*) FROM read_csv('{csv_out}/**/*.csv',"
                         f" hive_partitioning = true) GROUP BY ALL ORDER BY ALL").fetchall()
    assert [(int(d), n) for d, n in counted] == [(6, 2 * 1430), (7, 2 * 1430)]


def test_user_errors_are_one_line(renderer_env: dict[str, str], tmp_path: Path) -> None:
    for args, needle in ((["sensors", "query", "--detector", "1", "--from", "soon", "--to", "1"],
                          "neither epoch seconds nor ISO 8601"),
                         (["sensors", "ingest", str(tmp_path / "missing")], "does not exist"),
                         (["sensors", "etl", "--from", "2026-13-01"], "not a date")):
        result = subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                                text=True, env={**os.environ, **renderer_env}, timeout=120)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and needle in result.stderr
