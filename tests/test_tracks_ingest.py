"""``tracks ingest`` against the real database: four formats, the ledger, rejects with
reasons, exact duplicates dropped, identities (two identifiers, merges), day partitions."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from renderer.db import Database
from renderer.errors import InputError
from renderer.sources import SourceLayoutError
from renderer.tracks import sample
from renderer.tracks.formats import Report
from renderer.tracks.ingest import discover, ingest, rejects

HEADER = "time,mmsi,imo,lat,lon,sog\n"


def rows(db: Database, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
    with db.connect() as conn:
        return conn.execute(statement, params or {}).fetchall()


def one(db: Database, statement: str) -> Any:
    return next(iter(rows(db, statement)[0].values()))


@pytest.fixture
def reports() -> Iterator[list[Report]]:
    yield sample.generate(vessels=8, days=2, seed=11)


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "nmea", "fixes"])
def test_each_format_lands_every_report(db: Database, tmp_path: Path, reports: list[Report],
                                        fmt: str) -> None:
    paths = sample.write(reports, tmp_path, fmt, per_file=len(reports) // 2 + 1)
    report = ingest(db, [str(tmp_path)])
    assert report.count("consumed") == len(paths) == 2
    totals = report.rows
    assert totals["rows_rejected"] == 0
    assert totals["rows_read"] == totals["rows_accepted"]
    assert one(db, "SELECT count(*) FROM tracks_reports") == len(reports)
    assert totals["rows_accepted"] - totals["rows_linked"] == len(reports)
    days = {r["d"] for r in rows(db, "SELECT DISTINCT t::date AS d FROM tracks_reports")}
    assert len(days) == 2
    partitions = {r["d"] for r in rows(db, "SELECT d FROM renderer.tracks_days() AS d")}
    assert days <= partitions  # (partitions outlive the rows other tests truncate)
    mmsis = {dict(r.ids)["mmsi"] for r in reports}
    assert one(db, "SELECT count(*) FROM tracks_vessels") == len(mmsis)
    ledger = rows(db, "SELECT * FROM tracks_files ORDER BY id")
    assert [f["format"] for f in ledger] == [fmt, fmt]
    assert all(f["rows_read"] == f["rows_accepted"] + f["rows_rejected"] for f in ledger)


def test_a_file_ingested_twice_counts_once(db: Database, tmp_path: Path,
                                           reports: list[Report]) -> None:
    [path] = sample.write(reports, tmp_path, "csv")
    first = ingest(db, [str(path)])
    again = ingest(db, [str(path)])
    assert first.files[0].status == "consumed"
    assert again.files[0].status == "skipped"
    assert one(db, "SELECT count(*) FROM tracks_files") == 1
    assert one(db, "SELECT count(*) FROM tracks_reports") == len(reports)


def test_rejected_rows_are_kept_with_file_line_and_reason(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER
                    + "2026-12-01T00:00:00Z,503000001,,-33.5,151.25,12\n"
                    + "2026-12-01T00:01:00Z,503000001,,-95,151.25,12\n"
                    + "2026-12-01T00:02:00Z,,,-33.5,151.25,12\n"
                    + "soon,503000001,,-33.5,151.25,12\n")
    [result] = ingest(db, [str(path)]).files
    assert (result.rows_read, result.rows_accepted, result.rows_rejected) == (4, 1, 3)
    with db.connect() as conn:
        found = rejects(conn)
    assert [(r["line"], r["file"]) for r in found] == [(3, str(path)), (4, str(path)),
                                                       (5, str(path))]
    assert "lat" in found[0]["reason"] and "-95" in found[0]["raw"]
    assert "no identifier" in found[1]["reason"]
    assert "time" in found[2]["reason"]


def test_exact_duplicates_are_dropped_and_counted(db: Database, tmp_path: Path) -> None:
    row = "2026-12-01T00:00:00Z,503000001,,-33.5,151.25,12\n"
    moved = "2026-12-01T00:00:00Z,503000001,,-33.5,151.26,12\n"  # same time, moved: kept
    (tmp_path / "a.csv").write_text(HEADER + row + row + moved)
    (tmp_path / "b.csv").write_text(HEADER + row + "2026-12-01T00:01:00Z,503000001,,-33,151,\n")
    a, b = ingest(db, [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]).files
    assert (a.rows_read, a.rows_accepted, a.rows_duplicate) == (3, 3, 1)
    assert (b.rows_read, b.rows_accepted, b.rows_duplicate) == (2, 2, 1)
    assert one(db, "SELECT count(*) FROM tracks_reports") == 3


def test_identifiers_name_one_vessel_and_vessels_found_to_be_one_merge(
        db: Database, tmp_path: Path) -> None:
    (tmp_path / "1.csv").write_text(
        HEADER + "2026-12-01T00:00:00Z,503000001,,-33.5,151.25,\n"
        "2026-12-01T00:01:00Z,,9312345,-33.6,151.25,\n")      # two vessels, so far
    (tmp_path / "2.csv").write_text(
        HEADER + "2026-12-02T00:00:00Z,503000001,9312345,-33.7,151.25,\n")  # they are one
    ingest(db, [str(tmp_path / "1.csv")])
    assert one(db, "SELECT count(*) FROM tracks_vessels") == 2
    ingest(db, [str(tmp_path / "2.csv")])
    assert one(db, "SELECT count(*) FROM tracks_vessels") == 1
    assert one(db, "SELECT count(DISTINCT vessel_id) FROM tracks_reports") == 1
    ids = rows(db, "SELECT key, value FROM tracks_identifiers ORDER BY key")
    assert [(r["key"], r["value"]) for r in ids] == [("imo", "9312345"), ("mmsi", "503000001")]
    assert one(db, "SELECT count(*) FROM tracks_reports") == 3


def test_unreadable_files_are_rejected_whole(db: Database, tmp_path: Path) -> None:
    good = gzip.compress((HEADER + "2026-12-01T00:00:00Z,1,,1,2,\n").encode())
    (tmp_path / "cut.csv.gz").write_bytes(good[:-12])
    (tmp_path / "ok.csv.gz").write_bytes(good)
    cut, ok = ingest(db, [str(tmp_path)]).files
    assert cut.status == "rejected" and "unreadable" in (cut.reason or "")
    assert ok.status == "consumed" and ok.rows_accepted == 1
    with db.connect() as conn:
        [whole] = rejects(conn, "%cut%")
    assert whole["line"] == 0


def test_late_reports_land_in_their_day(db: Database, tmp_path: Path) -> None:
    (tmp_path / "today.csv").write_text(HEADER + "2026-12-05T10:00:00Z,1,,1,2,\n"
                                        "2026-11-20T10:00:00Z,1,,1,2,\n")
    ingest(db, [str(tmp_path)])
    parts = rows(db, "SELECT tableoid::regclass::text AS p FROM tracks_reports ORDER BY t")
    assert [r["p"] for r in parts] == ["tracks_reports_20261120", "tracks_reports_20261205"]


def test_discover_needs_a_known_format(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="cannot tell the format"):
        discover([str(tmp_path / "x.parquet")])
    with pytest.raises(SourceLayoutError, match="none in the layout"):
        discover([str(tmp_path)])
    assert discover([str(tmp_path / "x.parquet")], "fixes")[0].format == "fixes"


def test_an_s3_prefix_is_a_source(db: Database, tmp_path: Path, s3_endpoint: str,
                                  reports: list[Report]) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ais")
    for fmt in ("csv", "fixes"):
        [path] = sample.write(reports, tmp_path / fmt, fmt)
        body = path.read_bytes()
        s3.put_object(Bucket="ais", Key=f"feed/{fmt}/{path.name}.gz", Body=gzip.compress(body))
    s3.put_object(Bucket="ais", Key="feed/notes.pdf", Body=b"not reports")
    s3.put_object(Bucket="ais", Key="feed/.hidden/x.csv", Body=b"never read")
    report = ingest(db, ["s3://ais/feed/"])
    assert [(f.key, f.status) for f in report.files] == [
        ("s3://ais/feed/csv/reports-00000.csv.gz", "consumed"),
        ("s3://ais/feed/fixes/reports-00000.fixes.gz", "consumed")]
    assert report.rows["rows_rejected"] == 0
    assert report.rows["rows_accepted"] == 2 * len(reports)
    assert [f.status for f in ingest(db, ["s3://ais/feed"]).files] == ["skipped"] * 2
    assert ingest(db, ["s3://ais/elsewhere/"]).files == []  # empty prefix: nothing to do
    s3.put_object(Bucket="ais", Key="other/notes.pdf", Body=b"not reports")
    with pytest.raises(SourceLayoutError, match="none in the layout"):
        ingest(db, ["s3://ais/other/"])


def test_links_in_a_source_folder_are_not_followed(db: Database, tmp_path: Path) -> None:
    """A link dropped into a source folder, to a file or a folder outside it, is never read
    (nor is a link to a file inside it: that file is read once, as itself)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.csv").write_text(HEADER + "2026-01-01T00:00:00Z,1,,1,2,3\n")
    source = tmp_path / "in"
    source.mkdir()
    (source / "good.csv").write_text(HEADER + "2026-01-01T00:00:00Z,5,,1,2,3\n")
    (source / "private.csv").symlink_to(outside / "private.csv")
    (source / "alias.csv").symlink_to(source / "good.csv")
    (source / "sub").mkdir()
    (source / "sub" / "linked").symlink_to(outside, target_is_directory=True)
    assert [Path(f.key).name for f in discover([str(source)])] == ["good.csv"]
    report = ingest(db, [str(source)])
    assert [(Path(f.key).name, f.status) for f in report.files] == [("good.csv", "consumed")]
