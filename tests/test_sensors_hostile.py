"""Hostile sensor files: a field over csv's limit, symbolic links out of the source, a file
that is not data. Each is rejected (or skipped) with a reason that quotes none of its text,
and the files after it are ingested."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from renderer.db import Database
from renderer.sensors.files import discover
from renderer.sensors.ingest import ingest
from tests.test_sensors_fixtures import HEADER, at, minute_rows, write_csv

DAY = date(2026, 1, 5)
HUGE = "x" * 131_073  # one more than csv's default field limit


def test_a_field_over_the_csv_limit_rejects_its_file_and_the_run_goes_on(
        db: Database, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    # a header field over the limit, then a quoted field over it in a row read line by line
    (source / "a-header.csv").write_text(",".join(HEADER) + f",{HUGE}\n1,2,3,4,5,6,7,8,9,0\n")
    rows = [",".join(HEADER), f'1,"{HUGE}\n",3,4,5,6,7,8,9', "2,x,3,4,5,6,7,8,9"]
    (source / "b-row.csv").write_text("\n".join(rows) + "\n")
    write_csv(source / "c-good.csv", minute_rows(1, at(DAY), 5))
    report = ingest(db, [str(source)])
    assert [(Path(f.key).name, f.status) for f in report.files] == [
        ("a-header.csv", "rejected"), ("b-row.csv", "consumed"), ("c-good.csv", "consumed")]
    assert "field larger than" in (report.files[0].reason or "")
    assert HUGE[:100] not in (report.files[0].reason or "")
    assert report.files[1].rows_accepted == 0 and report.files[1].rows_rejected >= 1
    assert report.files[2].rows_accepted == 5
    rerun = ingest(db, [str(source)])  # crashed the same way before
    assert [f.status for f in rerun.files] == ["skipped", "skipped", "skipped"]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the source that the service must never read or quote."""
    path = tmp_path / "outside" / "shadow"
    path.parent.mkdir()
    path.write_text("root:$6$secrethash:19000:0:99999:7:::\n")
    return path


def test_links_are_not_followed_by_default(db: Database, tmp_path: Path, secret: Path) -> None:
    source = tmp_path / "in"
    write_csv(source / "good.csv", minute_rows(1, at(DAY), 3))
    os.symlink(secret, source / "shadow.csv")
    os.symlink(source / "good.csv", source / "alias.csv")
    (source / "sub").mkdir()
    os.symlink(secret.parent, source / "sub" / "linked-dir")
    assert [Path(f.key).name for f in discover([str(source)])] == ["good.csv"]
    report = ingest(db, [str(source)])
    assert [f.status for f in report.files] == ["consumed"]


def test_links_inside_the_root_may_be_followed(tmp_path: Path, secret: Path) -> None:
    source = tmp_path / "in"
    write_csv(source / "data" / "good.csv", minute_rows(1, at(DAY), 3))
    os.symlink(secret, source / "shadow.csv")
    os.symlink(source / "data" / "good.csv", source / "alias.csv")
    found = discover([str(source)], follow_symlinks=True)
    assert [Path(f.key).name for f in found] == ["good.csv"]  # the link and its target
    assert all(str(secret) != f.key for f in found)


def test_a_file_that_is_not_data_is_not_quoted_in_its_reason(db: Database, tmp_path: Path,
                                                             secret: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "copied.csv").write_bytes(secret.read_bytes())
    report = ingest(db, [str(source)])
    (result,) = report.files
    assert result.status == "rejected"
    assert "secrethash" not in (result.reason or "") and "root" not in (result.reason or "")
