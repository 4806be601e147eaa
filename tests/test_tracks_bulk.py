"""The batch readers (:mod:`renderer.tracks.bulk`) against the row parsers of
:mod:`renderer.tracks.formats`: the same rows accepted with the same values, the same rows
rejected at the same lines with the same reasons; counts add up."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from renderer.db import Database
from renderer.tracks import bulk, formats, sample
from renderer.tracks.formats import Reject, Report
from renderer.tracks.ingest import ingest, rejects

Staged = tuple[Any, ...]


class Sets:
    def __init__(self) -> None:
        self.ids: dict[tuple[tuple[str, str], ...], int] = {}

    def __call__(self, ids: tuple[tuple[str, str], ...]) -> int:
        return self.ids.setdefault(ids, len(self.ids))


def by_rows(fmt: str, data: bytes) -> tuple[list[Staged], list[tuple[int, str]], int]:
    accepted, rejected, read = [], [], 0
    for line, item in formats.parse(fmt, io.BytesIO(data)):
        read += 1
        if isinstance(item, Report):
            accepted.append((item.ids, item.time_ms, item.lat, item.lon, item.latency,
                             bulk.tenths(item.sog), bulk.tenths(item.cog),
                             bulk.tenths(item.heading), item.nav_status, item.rot,
                             item.source, item.ais_class))
        else:
            assert isinstance(item, Reject)
            rejected.append((line, item.reason))
    return sorted(accepted, key=repr), rejected, read


def by_batches(fmt: str, data: bytes) -> tuple[list[Staged], list[tuple[int, str]], int]:
    sets = Sets()
    read_batches = (bulk.csv_batches if fmt == "csv" else bulk.fixes_batches)
    accepted, rejected, read = [], [], 0
    names = {n: ids for ids, n in sets.ids.items()}
    for batch in read_batches(io.BytesIO(data), sets):
        read += batch.read
        names = {n: ids for ids, n in sets.ids.items()}
        for row in batch.table.to_pylist():
            accepted.append((names[row.pop("set_no")], *row.values()))
        rejected += [(line, item.reason) for line, item in batch.items
                     if isinstance(item, Reject)]
    return sorted(accepted, key=repr), sorted(rejected), read


EDGE_CSV = (
    "time,mmsi,imo,lat,lon,sog,cog,heading,nav_status,rot,latency,source,ais_class\n"
    "2026-12-01T00:00:00Z,503000001,,-33.5,151.25,12.25,359.96,0,0,5,,1,a\n"
    "2026-12-01 00:00:01.5,503000001,,-33.5,151.25,,,,,,,,\n"
    "1796083202,503000001,9312345,-33.5,151.25,1e1,,,,,,,B\n"
    "1796083203000,503000002,,+33.5,.25,0,,,,,,,\n"
    " 2026-12-01T00:00:04Z ,503000001,,-33.5,151.25,,,,,,,,\n"
    "2026-12-01T00:00:05+01:00,503000001,,-33.5,151.25,,,,,,,,\n"
    "2026-12-01T00:00:06.123456Z,503000001,,-33.5,151.25,,,,,,,,\n"
    "2026-02-30T00:00:00Z,503000001,,-33.5,151.25,,,,,,,,\n"
    "2026-12-01T00:00:07Z,503000001,,-95,151.25,,,,,,,,\n"
    "2026-12-01T00:00:08Z,50300000x,,-33.5,151.25,,,,,,,,\n"
    "2026-12-01T00:00:09Z,,,-33.5,151.25,,,,,,,,\n"
    "soon,503000001,,-33.5,151.25,,,,,,,,\n"
    "2026-12-01T00:00:10Z,503000001,,-33.5,151.25,102.3,,,,,,,\n"
    "2026-12-01T00:00:11Z,503000001,,-33.5,151.25,,360,,16,,,,\n"
    "2026-12-01T00:00:12Z,503000001,,-33.5,151.25,,,,1.0,-128,,0,C\n"
    "2026-12-01T00:00:13Z,503000001,,nan,inf,,,,,,,,\n"
    "2026-12-01T00:00:14Z,503000001,,1_0,151.25,,,,,,-1,,\n"
    "1e9,503000001,,-33.5,151.25,,,,,,,,\n"
    "2100-01-01T00:00:00Z,503000001,,-33.5,151.25,,,,,,,,\n")


def test_csv_batches_decide_as_the_row_parser_does(tmp_path: Path) -> None:
    reports = sample.generate(vessels=4, days=1, seed=5)
    sample.write_csv(reports, tmp_path / "r.csv")
    for data in (EDGE_CSV.encode(), (tmp_path / "r.csv").read_bytes()):
        rows = by_rows("csv", data)
        batches = by_batches("csv", data)
        assert batches == (rows[0], sorted(rows[1]), rows[2])
        assert rows[2] == len(rows[0]) + len(rows[1])
    assert len(by_rows("csv", EDGE_CSV.encode())[1]) == 11  # and 8 accepted


@pytest.mark.parametrize("data", [
    b'time,mmsi,lat,lon\n2026-12-01T00:00:00Z,"5030\n00001",1,2\n',  # a quoted line end
    b"time,mmsi,lat,lon\n2026-12-01T00:00:00Z,503000001,1,2\n\n",      # a blank line
    b"time,mmsi,lat,lon\n2026-12-01T00:00:00Z,503000001,1\n",          # a ragged row
    b"time,mmsi,lat,lon\n2026-12-01T00:00:00Z,503000001,1,\xff\n",     # not UTF-8
    b"time,lat,lon\n2026-12-01T00:00:00Z,1,2\n",                        # no identifier
])
def test_csv_that_is_not_one_row_per_line_goes_row_by_row(data: bytes) -> None:
    with pytest.raises(bulk.NotBulk):
        by_batches("csv", data)


def fix(mmsi: int = 503000001, lat: float = -33.5, lon: float = 151.25,
        t: int = 1796083200000, latency: int = -1, source: int = 0, status: int = 127,
        rot: int = -128, sog: int = 1023, cog: int = 3600, heading: int = 360,
        cls: int = 0) -> bytes:
    return formats.FIXES.pack(mmsi, lat, lon, t, latency, source, status, rot, sog, cog,
                              heading, cls)


def test_fixes_batches_decide_as_the_row_parser_does() -> None:
    reports = sample.generate(vessels=4, days=1, seed=5)
    edge = b"".join([
        fix(), fix(sog=122, cog=3599, heading=3599, status=15, rot=-127, latency=0,
                   source=32767, cls=1),
        fix(heading=3600), fix(lat=95), fix(lon=float("nan")), fix(mmsi=0),
        fix(mmsi=1_000_000_000), fix(t=-1), fix(latency=-2), fix(source=-1), fix(status=16),
        fix(sog=1024), fix(cog=3601), fix(heading=3601), fix(cls=2)]) + b"\x01" * 7
    for data in (edge, formats.encode_fixes(reports)):
        rows = by_rows("fixes", data)
        batches = by_batches("fixes", data)
        assert batches == (rows[0], sorted(rows[1]), rows[2])
        assert rows[2] == len(rows[0]) + len(rows[1])
    assert len(by_rows("fixes", edge)[1]) == 13


def test_a_csv_with_a_quoted_line_end_is_ingested_row_by_row(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('time,mmsi,lat,lon,ais_class\n'
                    '2026-12-01T00:00:00Z,503000001,-33.5,151.25,A\n'
                    '2026-12-01T00:01:00Z,503000001,-33.5,151.25,"A\nB"\n'
                    '2026-12-01T00:02:00Z,503000001,-95,151.25,A\n')
    [result] = ingest(db, [str(path)]).files
    assert (result.rows_read, result.rows_accepted, result.rows_rejected) == (3, 1, 2)
    with db.connect() as conn:
        found = [(r["line"], r["reason"][:10]) for r in rejects(conn)]
    assert found == [(4, "ais_class "), (5, "lat '-95' ")]  # line where a record ends


def test_bulk_and_row_ingest_store_the_same_rows(db: Database, tmp_path: Path) -> None:
    reports = sample.generate(vessels=3, days=1, seed=9)
    [csv_path] = sample.write(reports, tmp_path / "a", "csv")
    [fix_path] = sample.write(reports, tmp_path / "b", "fixes")
    ingest(db, [str(csv_path)])
    with db.connect() as conn:
        first = conn.execute("SELECT t, lat, lon, vessel_id, latency, sog, cog, heading,"
                             " nav_status, rot, source, ais_class FROM tracks_reports"
                             " ORDER BY 1, 2, 3").fetchall()
        conn.execute("TRUNCATE tracks_reports")
        conn.commit()
    ingest(db, [str(fix_path)])
    with db.connect() as conn:
        second = conn.execute("SELECT t, lat, lon, vessel_id, latency, sog, cog, heading,"
                              " nav_status, rot, source, ais_class FROM tracks_reports"
                              " ORDER BY 1, 2, 3").fetchall()
    assert len(first) == len(reports) == len(second)
    # BinaryFixes keeps float32 positions: compare at that precision
    def f32(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["t"], *(float(np.float32(r[k])) for k in ("lat", "lon")),
                *(r[k] for k in ("vessel_id", "latency", "sog", "cog", "heading",
                                 "nav_status", "rot", "source", "ais_class")))

    assert [f32(r) for r in first] == [f32(r) for r in second]


def test_a_truncated_record_is_rejected_and_counted() -> None:
    data = fix() + fix()[:20]
    accepted, rejected, read = by_batches("fixes", data)
    assert (len(accepted), read) == (1, 2)
    assert rejected == [(2, "truncated record: 20 of 35 bytes")]
    assert struct.calcsize(">iffqihbbhhhb") == 35
