"""Sensor ingest against PostgreSQL: ledger, rejects, counts, versions, day marks, sources."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import boto3
import pytest

from renderer.db import Database
from renderer.errors import InputError
from renderer.sensors.ingest import ingest
from tests.test_sensors_fixtures import HEADER, at, enrich, epoch, minute_rows, sql, write_csv

DAY = date(2026, 1, 5)


def _ledger(db: Database) -> list[dict]:
    return sql(db, "SELECT key, status, rows_read, rows_accepted, rows_rejected, reason"
                   " FROM sensors_files ORDER BY id")


def _rejects(db: Database) -> list[tuple[int, str, str]]:
    return [(r["line"], r["reason"], r["raw"]) for r in
            sql(db, "SELECT line, reason, raw FROM sensors_rejects ORDER BY line")]


def _raw_count(db: Database) -> int:
    return sql(db, "SELECT count(*) AS n FROM sensors_raw")[0]["n"]


def test_rows_are_checked_counted_and_rejects_kept(db: Database, tmp_path: Path) -> None:
    t = epoch(at(DAY, 7))
    path = write_csv(tmp_path / "mixed.csv", [
        (1, t, 50, 3, 1, 2, 3, 4, 5),
        (1, t + 60, -1, 3, 1, 2, 3, 4, 5),          # negative speed: no measurement
        (1, t + 120, "87.555", 3, 1, 2, 3, 4, 5),   # line 4: three decimals
        ("x", t, 50, 3, 1, 2, 3, 4, 5),             # line 5: bad id
        (2, "2026-01-05T07:00:00+01:00", "", 4, "", "", "", "", ""),
        (2, "yesterday", 50, 3, 1, 2, 3, 4, 5),     # line 7: bad time
        (1, t, 51, 3, 1, 2, 3, 4, 5),               # line 8: duplicate of line 2
    ])
    report = ingest(Database(db.url), [str(path)])

    (result,) = report.files
    assert (result.status, result.rows_read, result.rows_accepted, result.rows_rejected) == \
        ("consumed", 7, 3, 4)
    (row,) = _ledger(db)
    assert row["rows_read"] == row["rows_accepted"] + row["rows_rejected"] == 7
    rejects = _rejects(db)
    assert [(line, why.split(" ")[0]) for line, why, _ in rejects] == [
        (4, "currentspeed"), (5, "uniqueid"), (7, "recordtimestamp"), (8, "duplicate")]
    assert "line 2" in rejects[3][1]
    assert rejects[1][2] == f"x,{t},50,3,1,2,3,4,5"
    stored = sql(db, "SELECT uniqueid, extract(epoch FROM recordtimestamp)::bigint AS t,"
                     " currentspeed_hundredths, trafficintensityclass1 AS c1 FROM sensors_raw"
                     " ORDER BY uniqueid, recordtimestamp")
    assert [tuple(r.values()) for r in stored] == [
        (1, t, 5000, 1), (1, t + 60, None, 1), (2, t - 3600, None, None)]  # +01:00 -> UTC
    assert report.days == [DAY]


def test_fractional_speeds_are_kept_exactly(db: Database, tmp_path: Path) -> None:
    """Loop detectors report the mean over lanes: 81.25, 33,5 (a decimal comma) were
    rejected as "not a whole number of km/h" before; now stored exactly, in hundredths."""
    t = epoch(at(DAY, 7))
    path = write_csv(tmp_path / "lanes.csv", [
        (1, t, "81.25", "3,5", 1, 2, 3, 4, 5),
        (1, t + 60, "33,5", 3, 1, 2, 3, 4, 5),
        (1, t + 120, "0.01", 3, 1, 2, 3, 4, 5),
        (1, t + 180, "32767.00", 3, 1, 2, 3, 4, 5),
        (1, t + 180, "12.5", 3, 1, 2, 3, 4, 5),        # line 6: duplicate of line 5
    ], delimiter=";")
    report = ingest(db, [str(path)])
    assert (report.files[0].rows_accepted, report.files[0].rows_rejected) == (4, 1)
    stored = sql(db, "SELECT currentspeed_hundredths AS s FROM sensors_raw"
                     " ORDER BY recordtimestamp")
    assert [r["s"] for r in stored] == [8125, 3350, 1, 3276700]
    (reject,) = _rejects(db)
    assert reject[0] == 6
    assert reject[2].split(",")[2:] == ["12.5", "3", "1", "2", "3", "4", "5"]


def test_the_same_file_twice_is_a_no_op(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", minute_rows(1, at(DAY), 30))
    first = ingest(db, [str(path)])
    second = ingest(db, [str(path)])
    assert first.files[0].status == "consumed" and second.files[0].status == "skipped"
    assert second.days == [] and _raw_count(db) == 30 and len(_ledger(db)) == 1


def test_gzip_semicolons_crlf_bom_and_decimal_commas(db: Database, tmp_path: Path) -> None:
    rows = [(7, epoch(at(DAY, 1, m)), 40 + m, f"{m},5", 1, 2, 3, 4, 5) for m in range(5)]
    path = write_csv(tmp_path / "x.csv.gz", rows, delimiter=";", compress=True,
                     newline="\r\n", bom=True)
    report = ingest(db, [str(path)])
    assert report.files[0].rows_accepted == 5 and report.files[0].rows_rejected == 0
    occ = [r["b"] for r in sql(db, "SELECT bezettingsgraad AS b FROM sensors_raw"
                                   " ORDER BY recordtimestamp")]
    assert occ == [0.5, 1.5, 2.5, 3.5, 4.5]


def test_ragged_blank_and_multiline_rows_keep_their_physical_lines(db: Database,
                                                                   tmp_path: Path) -> None:
    t = epoch(at(DAY, 2))
    text = ",".join(HEADER) + "\n" + "\n".join([
        f"1,{t},50,1,1,1,1,1,1",        # 2
        "",                              # 3 blank: not a row
        f"1,{t + 60},50,1,1,1",          # 4 ragged
        f'1,{t + 120},"50",1,1,1,1,1,"a', # 5-6: a quoted field spanning two lines
        'b"',
        f"1,{t + 180},51,1,1,1,1,1,1",   # 7
        ",,,,,,,,",                      # 8 only delimiters: not a row
        f"1,{t + 240},abc,1,1,1,1,1,1",  # 9
    ]) + "\n"
    path = tmp_path / "dirty.csv"
    path.write_text(text)
    report = ingest(db, [str(path)])
    assert (report.files[0].rows_read, report.files[0].rows_accepted) == (5, 2)
    assert [(line, why.split(" ")[0]) for line, why, _ in _rejects(db)] == [
        (4, "expected"), (5, "trafficintensityclass5"), (9, "currentspeed")]


@pytest.mark.parametrize("header,why", [
    (("uniqueid", "recordtimestamp", "currentspeed"), "header lacks bezettingsgraad"),
    (("uniqueid", "uniqueid", "recordtimestamp", "currentspeed", "bezettingsgraad"),
     "more than once"),
])
def test_a_file_without_a_usable_header_is_rejected_whole(db: Database, tmp_path: Path,
                                                          header: tuple[str, ...],
                                                          why: str) -> None:
    path = write_csv(tmp_path / "bad.csv", [(1,) * len(header)], header=header)
    report = ingest(db, [str(path)])
    assert report.files[0].status == "rejected" and why in (report.files[0].reason or "")
    assert ingest(db, [str(path)]).files[0].status == "skipped"
    (row,) = _ledger(db)
    assert row["status"] == "rejected" and row["rows_read"] == 0


def test_empty_and_truncated_gzip_files_are_rejected(db: Database, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    full = write_csv(tmp_path / "t.csv.gz", minute_rows(1, at(DAY), 500), compress=True)
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(full.read_bytes()[:-40])
    report = ingest(db, [str(empty), str(broken)])
    assert [f.status for f in report.files] == ["rejected", "rejected"]
    assert _raw_count(db) == 0


def test_a_new_version_of_a_file_replaces_the_old_one(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "v.csv", minute_rows(1, at(DAY), 10, speed=lambda m: 50))
    ingest(db, [str(path)])
    write_csv(path, minute_rows(1, at(DAY), 5, speed=lambda m: 70))  # shorter, other speeds
    report = ingest(db, [str(path)])
    assert report.files[0].status == "consumed"
    speeds = [r["s"] for r in sql(db, "SELECT currentspeed_hundredths / 100 AS s FROM sensors_raw"
                                      " ORDER BY recordtimestamp")]
    assert speeds == [70] * 5
    assert [r["status"] for r in _ledger(db)] == ["superseded", "consumed"]
    write_csv(path, minute_rows(1, at(DAY), 10, speed=lambda m: 50))  # the first one, back
    assert ingest(db, [str(path)]).files[0].status == "consumed"
    stored = sql(db, "SELECT currentspeed_hundredths / 100 AS s FROM sensors_raw")
    assert [r["s"] for r in stored] == [50] * 10
    assert [r["status"] for r in _ledger(db)] == ["superseded", "consumed"]


def test_a_later_file_wins_for_the_same_record(db: Database, tmp_path: Path) -> None:
    ingest(db, [str(write_csv(tmp_path / "a.csv", minute_rows(1, at(DAY), 3,
                                                              speed=lambda m: 50)))])
    ingest(db, [str(write_csv(tmp_path / "b.csv", minute_rows(1, at(DAY, 0, 1), 1,
                                                              speed=lambda m: 99)))])
    speeds = [r["s"] for r in sql(db, "SELECT currentspeed_hundredths / 100 AS s FROM sensors_raw"
                                      " ORDER BY recordtimestamp")]
    assert speeds == [50, 99, 50]


def test_late_files_mark_their_day_and_the_next_when_its_windows_see_them(
        db: Database, tmp_path: Path) -> None:
    next_day = DAY + timedelta(days=1)
    ingest(db, [str(write_csv(tmp_path / "d1.csv", minute_rows(1, at(DAY), 1440,
                                                               skip=[1430, 700])))])
    ingest(db, [str(write_csv(tmp_path / "d2.csv", minute_rows(1, at(next_day), 1440)))])
    enrich(db, DAY, next_day)
    pending = "SELECT day FROM sensors_days WHERE raw_version > coalesce(enriched_version, 0)"
    assert sql(db, pending) == []

    # 11:40 on DAY: only DAY's windows and previousspeeds change
    midday = ingest(db, [str(write_csv(tmp_path / "late1.csv",
                                       minute_rows(1, at(DAY, 11, 40), 1)))])
    assert midday.days == [DAY]
    # 23:50 on DAY: the next day's first 10 minutes see it
    late = ingest(db, [str(write_csv(tmp_path / "late2.csv",
                                     minute_rows(1, at(DAY, 23, 50), 1)))])
    assert late.days == [DAY, next_day]
    assert [r["day"] for r in sql(db, pending + " ORDER BY day")] == [DAY, next_day]


def test_a_silent_detector_marks_the_day_of_its_next_record(db: Database,
                                                            tmp_path: Path) -> None:
    later = DAY + timedelta(days=3)
    ingest(db, [str(write_csv(tmp_path / "a.csv", minute_rows(1, at(later, 5), 3)))])
    report = ingest(db, [str(write_csv(tmp_path / "b.csv", minute_rows(1, at(DAY, 9), 3)))])
    assert report.days == [DAY, later]  # the record on `later` gets a new previousspeed


def test_folders_take_csv_and_csv_gz_files(db: Database, tmp_path: Path) -> None:
    write_csv(tmp_path / "in" / "a.csv", minute_rows(1, at(DAY), 2))
    write_csv(tmp_path / "in" / "sub" / "b.csv.gz", minute_rows(2, at(DAY), 2), compress=True)
    (tmp_path / "in" / "notes.txt").write_text("not data")
    report = ingest(db, [str(tmp_path / "in")])
    assert len(report.files) == 2 and _raw_count(db) == 4
    with pytest.raises(InputError):
        ingest(db, [str(tmp_path / "nowhere")])


def test_s3_prefix_source(db: Database, tmp_path: Path, s3_endpoint: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="loops")
    for name, detector in (("2026/a.csv", 1), ("2026/b.csv", 2)):
        body = write_csv(tmp_path / name, minute_rows(detector, at(DAY), 3)).read_bytes()
        s3.put_object(Bucket="loops", Key=f"flanders/{name}", Body=body)
    report = ingest(db, ["s3://loops/flanders/"])
    assert [f.status for f in report.files] == ["consumed", "consumed"]
    assert report.files[0].key == "s3://loops/flanders/2026/a.csv"
    assert [f.status for f in ingest(db, ["s3://loops/flanders"]).files] == ["skipped"] * 2
    assert _raw_count(db) == 6
