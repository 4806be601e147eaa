"""`renderer sensors sample`: files a new user can try the sensor pipeline on, and the help
examples of `renderer sensors` work on them."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from renderer.sensors.sample import FIRST_DETECTOR, generate
from renderer.sensors.validate import reason


def test_same_seed_same_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", detectors=2, days=2, seed=3)
    b = generate(tmp_path / "b", detectors=2, days=2, seed=3)
    assert [p.name for p in a.files] == ["sensors-2026-01-05.csv.gz", "sensors-2026-01-06.csv.gz"]
    assert [p.read_bytes() for p in a.files] == [p.read_bytes() for p in b.files]
    assert a.rows == 2 * 2 * 1440 and a.detectors == [FIRST_DETECTOR, FIRST_DETECTOR + 1]
    lines = gzip.decompress(a.files[0].read_bytes()).decode().splitlines()
    assert lines[0].startswith("uniqueid,recordtimestamp,currentspeed,bezettingsgraad")


@pytest.mark.parametrize("kwargs", [{"detectors": 0}, {"days": 0}, {"days": 400}])
def test_counts_out_of_range(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="give 1 to"):
        generate(tmp_path, **kwargs)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def test_the_sample_goes_through_the_pipeline_and_the_help_examples_work(
        renderer_env: dict[str, str], tmp_path: Path) -> None:
    made = json.loads(_cli(["sensors", "sample", "--out", str(tmp_path / "detectors"),
                            "--detectors", "2", "--days", "1", "--json"], renderer_env).stdout)
    assert made["rows"] == 2 * 1440 and made["bad_rows"] > 0
    ingested = json.loads(_cli(["sensors", "ingest", str(tmp_path / "detectors"), "--json"],
                               renderer_env).stdout)
    assert ingested["rows"]["rows_rejected"] == made["bad_rows"]
    _cli(["sensors", "etl", "--wait"], renderer_env)
    # The example of `renderer sensors --help`, as written there.
    rows = _cli(["sensors", "query", "--detector", "1053", "--from", "2026-01-05", "--to",
                 "2026-01-05", "--format", "json"], renderer_env).stdout
    found = json.loads(rows)
    assert len(found) >= 1430 and {r["uniqueid"] for r in found} == {1053}
    assert any(r["trafficjamindicator"] == 1 for r in found)  # the peaks are jams


def test_the_rows_the_sample_calls_bad_are_the_rows_the_rules_reject(tmp_path: Path) -> None:
    """`sensors sample` says how many bad rows it wrote; ingesting must reject exactly those
    (a negative count, once written as a bad row, reads as NULL and was accepted)."""
    made = generate(tmp_path, detectors=10, days=3)
    rejected = 0
    for path in made.files:
        rows = csv.DictReader(gzip.decompress(path.read_bytes()).decode().splitlines())
        rejected += sum(reason({k: v.strip(" \t") for k, v in row.items()}) is not None
                        for row in rows)
    assert made.bad_rows > 0 and rejected == made.bad_rows
