"""``renderer tracks`` end to end as a user runs it: sample -> ingest -> query -> rejects ->
export-index, and the one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
from psycopg import sql


def renderer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                          text=True, timeout=300)


def test_sample_ingest_query_rejects(renderer_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "reports"
    made = renderer("tracks", "sample", "--out", str(out), "--vessels", "4", "--days", "1",
                    "--per-file", "300")
    assert made.returncode == 0, made.stderr
    assert {p.suffix for p in out.iterdir()} == {".csv", ".ndjson", ".nmea", ".fixes"}
    (out / "bad.csv").write_text("time,mmsi,lat,lon\n2026-12-01T00:00:00Z,1,99,0\n")
    loaded = renderer("tracks", "ingest", str(out), "--json")
    assert loaded.returncode == 0, loaded.stderr
    rows = json.loads(loaded.stdout)["rows"]
    assert rows["rows_read"] == rows["rows_accepted"] + rows["rows_rejected"]
    assert rows["rows_rejected"] == 1
    again = renderer("tracks", "ingest", str(out))
    assert "0 consumed" in again.stdout and "already ingested" in again.stdout
    bad = renderer("tracks", "rejects")
    assert "bad.csv\t2\t" in bad.stdout and "lat" in bad.stdout
    found = renderer("tracks", "query", "--id", "mmsi=503000001", "--sample", "1h",
                     "--format", "ndjson")
    assert found.returncode == 0, found.stderr
    lines = [json.loads(x) for x in found.stdout.splitlines()]
    assert lines and all(x["ids"]["mmsi"] == "503000001" for x in lines)
    times = [x["time"] for x in lines]
    assert times == sorted(times) and len({t[:13] for t in times}) == len(times)  # hourly
    paged = renderer("tracks", "query", "--limit", "5", "--format", "csv")
    assert paged.stdout.splitlines()[-1].startswith("# next=")
    token = paged.stdout.splitlines()[-1].removeprefix("# next=")
    more = renderer("tracks", "query", "--limit", "5", "--format", "csv", "--cursor", token)
    assert more.returncode == 0 and more.stdout.splitlines()[1] != paged.stdout.splitlines()[1]
    geo = json.loads(renderer("tracks", "query", "--bbox", "-90,-180,90,180", "--from",
                              "2026-12-01T00:00:00Z", "--to", "2026-12-01T00:10:00Z",
                              "--format", "geojson").stdout)
    assert geo["type"] == "FeatureCollection" and geo["features"]


def test_errors_are_one_line(renderer_env: dict[str, str], tmp_path: Path) -> None:
    for args, needle in ((["query", "--bbox", "1,2"], "four numbers"),
                         (["ingest", str(tmp_path / "missing.csv")], "does not exist"),
                         (["export-index", "--day", "soon", "--out", str(tmp_path)], "date")):
        result = renderer("tracks", *args)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr


def test_export_index_waits_for_its_items(renderer_env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "one.csv"
    src.write_text("time,mmsi,lat,lon\n2026-12-01T00:00:05Z,503000001,-33.85,151.25\n"
                   "2026-12-01T00:10:00Z,503000001,-33.86,151.26\n")
    assert renderer("tracks", "ingest", str(src)).returncode == 0
    index = tmp_path / "index"
    done = renderer("tracks", "export-index", "--day", "2026-12-01", "--out", str(index),
                    "--wait")
    assert done.returncode == 0, done.stderr
    assert "worked 2 items (0 failed)" in done.stdout
    day = index / "ALL/block-1d"
    assert (day / "sample-1s/2026-12-01T00:00:00Z").stat().st_size == 2 * 35
    assert (day / "sample-1h/2026-12-01T00:00:00Z").stat().st_size == 35  # one an hour
    assert "no reports" in renderer("tracks", "export-index", "--day", "2027-01-01", "--out",
                                    str(index)).stdout


def test_the_first_row_leaves_before_the_query_ends(renderer_env: dict[str, str],
                                                    database_url: str, tmp_path: Path) -> None:
    """``tracks query`` writes its first row to a pipe while the rest is still being read:
    the second day's partition is locked, so the query cannot end, yet the first day's
    first row arrives (it sat in the output buffer until exit before)."""
    out = tmp_path / "reports"
    made = renderer("tracks", "sample", "--out", str(out), "--vessels", "2", "--days", "2",
                    "--per-file", "100000", "--format", "csv")
    assert made.returncode == 0, made.stderr
    assert renderer("tracks", "ingest", str(out)).returncode == 0
    with psycopg.connect(database_url) as lock:
        day = lock.execute("SELECT max(d) FROM renderer.tracks_days() d").fetchone()
        assert day is not None
        lock.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.Identifier(f"tracks_reports_{day[0]:%Y%m%d}")))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a shell
        query = subprocess.Popen([sys.executable, "-m", "renderer", "tracks", "query",
                                  "--sample", "1h", "--format", "csv"],
                                 stdout=subprocess.PIPE, text=True,
                                 env=env)
        assert query.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(
            [query.stdout.readline(), query.stdout.readline()]), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=120)
        try:
            assert len(lines) == 2 and lines[0].startswith("time,")
            assert query.poll() is None  # still waiting for the locked day
        finally:
            lock.rollback()
            query.communicate(timeout=120)
    assert query.returncode == 0
