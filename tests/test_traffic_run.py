"""The traffic pipeline end to end: the main job on the sample, fan-in through the queue,
late data, the weekly schedule, and reading the products back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from renderer import config
from renderer.cli import main
from renderer.db import Database
from renderer.queue import PRIORITY_BATCH, PRIORITY_ON_DEMAND, enqueue, item_history
from renderer.runner import run_until_idle
from renderer.storage import open_store
from renderer.traffic import sample, schedule
from renderer.traffic.profile import PROFILE
from renderer.traffic.speedtile import TileWeek
from renderer.worker import run_worker
from tests.factories import add_histograms, add_lengths
from tests.test_traffic_speedtile import (
    CHILD,
    FIRST,
    TILE,
    WEEK,
    build,
    code,
    seg,
)

NEXT_WEEK = "2016-W45"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                          text=True, env=dict(os.environ), timeout=600)


def work(url: str) -> None:
    stats = run_worker(url, kinds=list(PROFILE.run_kinds), until_empty=True)
    assert stats.failed == 0


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


# --- the main job -------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.acceptance
def test_run_on_the_sample(renderer_env: dict[str, str], database_url: str,
                           tmp_path: Path) -> None:
    made = sample.generate(tmp_path / "sample", tiles=2, days=2, seed=3)
    result = cli("traffic", "run", "--source", str(made.root), "--processes", "2",
                 "--after", "keep", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["items_failed"] == 0
    assert summary["files_consumed"] + summary["files_rejected"] == made.files
    assert summary["observations"] == made.observations
    assert summary["rows_rejected"] > 0
    assert summary["weeks"] == [WEEK]
    assert summary["speed_tiles"] >= 2 and summary["reference_tiles"] >= 2
    assert summary["coverage_features"] >= 2
    store = open_store(renderer_env["RENDERER_STORAGE"])
    keys = [info.key for info in store.list()]
    assert "coverage.geojson" in keys
    assert any(k.startswith("2016/44/") and ".spd.0.gz" in k for k in keys)
    assert any(k.endswith(".ref.gz") for k in keys)
    assert summary["files_written"] == len(keys)

    # the products can be read back
    segment, mode = str(summary["example_segment"]), summary["example_mode"]
    speeds = cli("traffic", "speeds", segment, "--week", WEEK, "--mode", mode, "--json")
    assert speeds.returncode == 0, speeds.stderr
    assert len(json.loads(speeds.stdout)["hours"]) == 168
    reference = cli("traffic", "reference", segment, "--mode", mode, "--json")
    assert reference.returncode == 0, reference.stderr
    assert json.loads(reference.stdout)["reference_speeds"]["80"] > 0

    # a rebuild of the week writes the same bytes
    before = {k: store.get(k) for k in keys}
    with Database(database_url).connect() as conn:
        schedule.enqueue_weeks(conn, week=WEEK, priority=PRIORITY_ON_DEMAND)
        conn.commit()
    work(database_url)
    assert {k: store.get(k) for k in keys} == before

    # and the files are consumed: a second run finds nothing new and changes nothing
    again = cli("traffic", "run", "--source", str(made.root), "--processes", "1", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["files_consumed"] == 0
    assert {info.key: store.get(info.key) for info in store.list()} == before


# --- fan-in and late data -----------------------------------------------------------------

def _two_weeks(db: Database) -> None:
    with db.connect() as conn:
        add_histograms(conn, [(seg(1), seg(2), FIRST + 8, code(20), 0, 3),
                              (seg(1), seg(2), FIRST + 168 + 8, code(30), 0, 2),
                              (seg(5, CHILD), None, FIRST + 9, code(40), 0, 1)])
        add_lengths(conn, {seg(1): 200, seg(5, CHILD): 400})
        conn.commit()


def _two_weeks_built(db: Database) -> None:
    """Both weeks' histograms, then every stage worked until the queue is empty."""
    _two_weeks(db)
    with db.connect() as conn:
        for week in (WEEK, NEXT_WEEK):
            schedule.enqueue_weeks(conn, week=week, priority=PRIORITY_BATCH)
        conn.commit()
    work(db.url)


def _reference(db: Database, segment_id: int) -> dict[str, Any]:
    with db.connect() as conn:
        row = conn.execute("SELECT * FROM traffic_reference WHERE segment_id = %s",
                           [segment_id]).fetchone()
    assert row is not None
    return row


def test_speed_tiles_fan_into_reference_tiles_and_coverage(
        renderer_env: dict[str, str], db: Database) -> None:
    _two_weeks_built(db)
    row = _reference(db, seg(1))
    assert row["weeks"] == 2 and row["observations"] == 5
    assert _reference(db, seg(5, CHILD))["ref20"] == 36
    store = open_store(renderer_env["RENDERER_STORAGE"])
    assert store.exists("0/002/140.ref.gz") and store.exists("coverage.geojson")
    features = json.loads(store.get("coverage.geojson"))["features"]
    assert {(f["properties"]["level"], f["properties"]["tileid"]) for f in features} == {
        (0, TILE.index), (1, CHILD.index)}
    with db.connect() as conn:
        assert item_history(conn, "reftile", "AUTO/0/2140")["state"] == "done"
        assert item_history(conn, "coverage", "coverage")["state"] == "done"


def test_late_data_rebuilds_the_week_and_the_references_that_include_it(
        renderer_env: dict[str, str], db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_weeks_built(db)
    late = TileWeek("AUTO", TILE, WEEK)

    def histogram_fan_in() -> None:  # what the histogram stage's rule does for late data
        with db.connect() as conn:
            add_histograms(conn, [(seg(1), seg(2), FIRST + 9, code(25), 0, 4)])
            enqueue(conn, "speedtile", late.key, {"mode": "AUTO", "tile": TILE.index,
                                                  "week": WEEK}, force=True)
            conn.commit()

    histogram_fan_in()
    work(db.url)
    assert _reference(db, seg(1))["observations"] == 9  # the reference tile saw the late data
    with db.connect() as conn:
        done_at = item_history(conn, "reftile", "AUTO/0/2140")["finished_at"]

    # with a one-week window, W44 is no longer in the reference window: rebuilding it
    # leaves the reference tile alone
    monkeypatch.setenv("RENDERER_TRAFFIC_REFERENCE_WEEKS", "1")
    histogram_fan_in()
    work(db.url)
    with db.connect() as conn:
        assert item_history(conn, "speedtile", late.key)["state"] == "done"
        assert item_history(conn, "reftile", "AUTO/0/2140")["finished_at"] == done_at
        observations = conn.execute("SELECT observations FROM traffic_speed_tiles"
                                    " WHERE week = %s AND level = 0", [WEEK]).fetchone()
    assert observations["observations"] == 3 + 4 + 4


# --- the weekly schedule ------------------------------------------------------------------

def test_next_week_follows_opentraffics_weekly_service(db: Database) -> None:
    with db.connect() as conn:
        assert schedule.next_week(conn)[0] is None
        add_histograms(conn, [(seg(1), None, FIRST + 30, code(10), 0, 1),
                              (seg(1), None, FIRST + 168 + 30, code(10), 0, 1)])
        conn.commit()
        assert schedule.next_week(conn) == (WEEK, "the first week with histograms")
    build(db)
    end_of_w45 = (FIRST + 2 * 168) * 3600
    with db.connect() as conn:
        assert schedule.next_week(conn, now=end_of_w45)[0] == NEXT_WEEK
        week, reason = schedule.next_week(conn, now=end_of_w45 - 3600)  # W45 not over yet
        assert week is None and "2016-W44" in reason


def test_plan_filters_by_bbox_level_and_mode(db: Database) -> None:
    with db.connect() as conn:
        add_histograms(conn, [(seg(1), None, FIRST, code(10), 0, 1),
                              (seg(1, CHILD), None, FIRST, code(10), 0, 1)])
        add_histograms(conn, [(seg(2), None, FIRST, code(10), 0, 1)], mode="BUS")
        conn.commit()
        keys = [s.key for s in schedule.plan(conn, week=WEEK).items]
        assert keys == ["AUTO/0/2140/2016-W44", "BUS/0/2140/2016-W44"]
        assert [s.key for s in schedule.plan(conn, week=WEEK, modes=["bus"]).items] == [
            "BUS/0/2140/2016-W44"]
        assert [s.key for s in schedule.plan(conn, week=WEEK, level=1).items] == [
            f"AUTO/1/{CHILD.index}/2016-W44"]
        assert schedule.plan(conn, week=WEEK, bbox=(-10, -10, 10, 10)).items == ()
        assert len(schedule.plan(conn, week=WEEK, bbox=(100, 2, 101, 3)).items) == 2
        set_id = schedule.enqueue_weeks(conn, week=WEEK, modes=["AUTO"], min_count=2,
                                        priority=PRIORITY_ON_DEMAND)
        conn.commit()
        item = item_history(conn, "speedtile", "AUTO/0/2140/2016-W44")
    assert item["set_id"] == set_id and item["group"] == "AUTO/0/2140"
    assert item["payload"]["min_count"] == 2 and item["priority"] == PRIORITY_ON_DEMAND
    assert item_history_missing(db, "speedtile", "BUS/0/2140/2016-W44")


def item_history_missing(db: Database, kind: str, key: str) -> bool:
    with db.connect() as conn:
        return item_history(conn, kind, key) is None


def test_schedule_command(renderer_env: dict[str, str], db: Database) -> None:
    with db.connect() as conn:
        add_histograms(conn, [(seg(1), None, FIRST, code(10), 0, 1)])
        conn.commit()
    result = invoke("traffic", "schedule", "--week", WEEK, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == ["AUTO/0/2140/2016-W44"]
    result = invoke("traffic", "schedule")
    assert result.exit_code == 0, result.output
    assert "2016-W44 (the first week with histograms): enqueued 1 speed tiles" in result.output
    for bad in (["--bbox", "1,2,3"], ["--week", "2016-W99"], ["--bbox", "0,10,1,5"]):
        result = invoke("traffic", "schedule", *bad)
        assert result.exit_code == 2 and result.stderr.startswith("error:")


# --- reading the products -----------------------------------------------------------------

def test_speeds_and_reference_commands(renderer_env: dict[str, str], db: Database) -> None:
    _two_weeks(db)
    with db.connect() as conn:
        schedule.enqueue_weeks(conn, week=WEEK, priority=PRIORITY_BATCH)
        conn.commit()
    work(db.url)
    segment = str(seg(1))
    result = invoke("traffic", "speeds", segment, "--week", WEEK, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["tile"] == "0/2140" and body["length"] == 200 and body["observations"] == 3
    hour = body["hours"][8]
    assert hour["start"] == "2016-10-31T08:00:00Z" and hour["speed"] == 36
    assert hour["next"] == [{"segment_id": seg(2), "observations": 3, "delay": 0,
                             "delay_variance": 0, "queue_length": 0,
                             "queue_length_variance": 0}]
    result = invoke("traffic", "speeds", segment, "--week", WEEK, "--csv")
    lines = result.stdout.strip().splitlines()
    assert lines[0] == ("hour_of_week,start,observations,speed,mean_speed,speed_variance,"
                        "prevalence,next_segments")
    assert len(lines) == 169 and lines[9].startswith("8,2016-10-31T08:00:00Z,3,36,36,0,")
    result = invoke("traffic", "speeds", segment, "--week", WEEK)  # a pipe: tab-separated
    assert result.exit_code == 0 and result.output.splitlines()[9].startswith("8\t")
    result = invoke("traffic", "speeds", segment, "--week", WEEK, "--format", "table")
    assert result.exit_code == 0 and "3 observations" in result.output
    result = invoke("traffic", "reference", segment, "--json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    assert entry["reference_speeds"] == {"20": 36, "40": 36, "60": 36, "80": 36}
    assert entry["hourly"][8] == 36 and entry["first_week"] == WEEK
    result = invoke("traffic", "reference", segment)
    assert result.exit_code == 0 and "20% 36" in result.output


def test_access_errors_are_one_line(renderer_env: dict[str, str], db: Database) -> None:
    with db.connect() as conn:
        add_histograms(conn, [(seg(1), None, FIRST, code(10), 0, 1)])
        conn.commit()
    build(db)
    result = invoke("traffic", "speeds", str(seg(1)), "--week", NEXT_WEEK)
    assert result.exit_code == 2
    assert "no AUTO speeds for segment" in result.stderr and "2016-W44 (AUTO)" in result.stderr
    # A segment no file named is not a week to build (the old advice): the error says which.
    result = invoke("traffic", "speeds", str(seg(77)), "--week", WEEK)
    assert result.exit_code == 2 and "no reporter file ingested" in result.stderr, result.stderr
    assert "schedule" not in result.stderr
    for args in (["speeds", "12x", "--week", WEEK], ["speeds", str(2**50), "--week", WEEK],
                 ["reference", str(seg(1))], ["speeds", str(seg(1)), "--week", "W44"]):
        result = invoke("traffic", *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1


# --- a run's options travel in payloads, not in the environment ------------------------------

def test_a_runs_min_count_reaches_its_speed_tiles_through_the_payloads(
        renderer_env: dict[str, str], db: Database, tmp_path: Path) -> None:
    made = sample.generate(tmp_path / "sample", tiles=1, days=1, seed=7)
    summary = run_until_idle(db.url, PROFILE, {"source": str(made.root), "after": "keep",
                                               "min_count": 3},
                             settings=config.load(), processes=None)
    assert summary.items_failed == 0 and summary.speed_tiles >= 1
    assert "RENDERER_TRAFFIC_MIN_COUNT" not in os.environ
    with db.connect() as conn:
        built = conn.execute("SELECT DISTINCT min_count FROM traffic_speed_tiles").fetchall()
        items = conn.execute("SELECT payload FROM work_queue WHERE kind = 'speedtile'").fetchall()
    assert [r["min_count"] for r in built] == [3]
    assert items and all(r["payload"]["min_count"] == 3 for r in items)
