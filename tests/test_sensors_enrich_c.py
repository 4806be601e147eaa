"""The day enrichment's C engine (ext/sensors.c, renderer/sensors/enrich_c.py): equal to its
Python twin (renderer/sensors/enrich_py.py) on any rows, and to the SQL engine
(renderer.sensors_enrich_day) on ingested days, byte for byte, reruns included."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer import _sensors  # type: ignore[attr-defined]
from renderer.db import Database
from renderer.errors import ConfigError
from renderer.sensors import enrich_py, sample
from renderer.sensors.enrich import enrich_day
from renderer.sensors.enrich_c import pg_time
from renderer.sensors.export import export_days
from renderer.sensors.ingest import ingest
from tests.factories import add_sensor_rows

DAY = date(2026, 1, 5)
LO = pg_time(datetime.combine(DAY, datetime.min.time(), UTC))
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8


def encode(rows: list[tuple[Any, ...]]) -> bytes:
    """Raw rows as the binary COPY of sensors_day.raw_rows_copy."""
    out = [SIGNATURE]
    for uid, t, speed, bez, *classes in rows:
        out.append(struct.pack(">hiiiq", 9, 4, uid, 8, t))
        out.append(struct.pack(">i", -1) if speed is None else struct.pack(">ii", 4, speed))
        out.append(struct.pack(">i", -1) if bez is None else struct.pack(">if", 4, bez))
        for c in classes:
            out.append(struct.pack(">i", -1) if c is None else struct.pack(">ii", 4, c))
    out.append(struct.pack(">h", -1))
    return b"".join(out)


def decode(data: bytes) -> list[tuple[Any, ...]]:
    """Enriched rows from the binary COPY the C engine writes."""
    assert data[:19] == SIGNATURE
    formats = ["i", "q", "d", "f", "d", "h", "i", "i", "i", "i", "i", "h", "d", "d"]
    rows, at = [], 19
    while True:
        (fields,) = struct.unpack_from(">h", data, at)
        at += 2
        if fields == -1:
            assert at == len(data)
            return rows
        assert fields == len(formats)
        row = []
        for f in formats:
            (n,) = struct.unpack_from(">i", data, at)
            at += 4
            if n == -1:
                row.append(None)
                continue
            assert n == struct.calcsize(f)
            row.append(struct.unpack_from(">" + f, data, at)[0])
            at += n
        rows.append(tuple(row))


def run_c(data: bytes, before: dict[int, int | None], chunk: int) -> tuple[list[int], bytes]:
    enricher = _sensors.Enricher(LO)
    for at in range(0, len(data), chunk):
        enricher.feed(data[at:at + chunk])
    missing = list(struct.unpack(f"={len(enricher.missing()) // 4}i", enricher.missing()))
    speeds = [-1 if before.get(u) is None else before[u] for u in missing]
    enricher.resolve(struct.pack(f"={len(speeds)}q", *speeds))
    assert enricher.finish() == len(memoryview(enricher))
    return missing, bytes(memoryview(enricher))


_float4 = st.floats(0, 100, width=32)
_speed = st.one_of(st.none(), st.integers(0, 30000),
                   st.sampled_from([3999, 4000, 4001, 24999, 25000, 25001, 2000, 0]))
_detector = st.tuples(
    st.integers(-900, 400),  # first record, seconds from midnight
    st.lists(st.tuples(st.integers(1, 400), _speed, st.one_of(st.none(), _float4),
                       st.one_of(st.none(), st.integers(-5, 99))), min_size=1, max_size=30),
    st.one_of(st.none(), st.integers(0, 30000)))  # speed before the context


@settings(max_examples=200, deadline=None)
@given(detectors=st.lists(_detector, min_size=0, max_size=4), chunk=st.integers(1, 300))
def test_c_equals_the_twin(detectors: list, chunk: int) -> None:
    rows, before = [], {}
    for uid, (start, steps, old) in enumerate(detectors, start=7):
        t = LO + start * 1_000_000
        for gap, speed, bez, count in steps:
            if t >= LO - 600 * 1_000_000:  # the context and the day only, as the query reads
                rows.append((uid, t, speed, bez, count, 1, None, 3, count))
            t += gap * 1_000_000
        before[uid] = old
    missing, out = run_c(encode(rows), before, chunk)
    assert missing == enrich_py.missing(rows, LO)
    want = enrich_py.enrich_rows(rows, LO, before)
    got = decode(out)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == w  # the same doubles, not close ones
        assert [None if v is None else struct.pack(">d", v) for v in (g[2], g[4], g[12], g[13])] \
            == [None if v is None else struct.pack(">d", v) for v in (w[2], w[4], w[12], w[13])]


def test_rows_out_of_order_are_an_error() -> None:
    enricher = _sensors.Enricher(LO)
    with pytest.raises(ValueError, match="order"):
        enricher.feed(encode([(1, LO + 5, 100, None, 1, 1, 1, 1, 1),
                              (1, LO, 100, None, 1, 1, 1, 1, 1)]))
    enricher = _sensors.Enricher(LO)
    with pytest.raises(ValueError, match="order"):
        enricher.feed(encode([(2, LO, 100, None, 1, 1, 1, 1, 1),
                              (1, LO + 5, 100, None, 1, 1, 1, 1, 1)]))


def test_a_cut_stream_is_an_error() -> None:
    enricher = _sensors.Enricher(LO)
    enricher.feed(encode([(1, LO, 100, None, 1, 1, 1, 1, 1)])[:-5])
    with pytest.raises(ValueError, match="ended inside a row"):
        enricher.missing()


def test_finish_needs_the_missing_speeds() -> None:
    enricher = _sensors.Enricher(LO)
    enricher.feed(encode([(1, LO, 100, None, 1, 1, 1, 1, 1)]))
    with pytest.raises(ValueError, match="one int64"):
        enricher.resolve(b"")
    with pytest.raises(RuntimeError, match="resolve"):
        enricher.finish()
    with pytest.raises(BufferError):
        memoryview(enricher)
    enricher.resolve(struct.pack("=q", 4500))
    enricher.finish()
    with pytest.raises(RuntimeError, match="finished"):
        enricher.feed(b"")


# --- against the SQL engine, in the database -----------------------------------------------

def _table(db: Database) -> list[str]:
    with db.connect() as conn:
        cur = conn.execute("SELECT row(e.*)::text AS r FROM sensors_enriched e"
                           " ORDER BY uniqueid, recordtimestamp")
        return [r["r"] for r in cur.fetchall()]


def _enrich(db: Database, days: list[date], engine: str) -> list[int]:
    with db.connect() as conn:
        counts = []
        for day in days:
            counts.append(enrich_day(conn, day, engine))
            conn.commit()
        return counts


def _export(db: Database, days: list[date], out: Path) -> list[bytes]:
    with db.connect() as conn:
        export_days(conn, days, str(out), "csv", "")
    return [p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()]


def test_c_equals_sql_on_an_ingested_sample(db: Database, tmp_path: Path) -> None:
    stats = sample.generate(tmp_path / "in", detectors=4, days=2, start=DAY)
    ingest(db, [str(p) for p in stats.files])
    # fractional speeds, gaps, a detector with only an old record before the day
    with db.connect() as conn:
        midnight = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), UTC)
        t0 = midnight.timestamp()
        add_sensor_rows(conn, [(9, t0 - 3 * 86400, "81.25"), (9, t0 + 30, "40.01"),
                               (9, t0 + 95, None), (9, t0 + 200, "39.99"),
                               (10, t0 - 599, "33.5"), (10, t0 + 1, "75.5")])
        conn.commit()
    days = [DAY, DAY + timedelta(days=1)]
    sql_counts = _enrich(db, days, "sql")
    assert sql_counts == _enrich(db, days, "sql") and sum(sql_counts) > 2 * 4 * 1400
    by_sql, sql_files = _table(db), _export(db, days, tmp_path / "sql")
    assert _enrich(db, days, "c") == sql_counts
    assert _table(db) == by_sql
    assert _export(db, days, tmp_path / "c") == sql_files
    _enrich(db, days, "c")  # a rerun replaces the day, byte for byte
    assert _table(db) == by_sql
    assert _export(db, days, tmp_path / "rerun") == sql_files


def test_an_unknown_engine_is_a_config_error(db: Database) -> None:
    with db.connect() as conn, pytest.raises(ConfigError):
        enrich_day(conn, DAY, "fortran")


def test_without_a_loaded_libpq_the_rows_come_through_the_driver(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.connect() as conn:
        t0 = datetime.combine(DAY, datetime.min.time(), UTC).timestamp()
        add_sensor_rows(conn, [(3, t0 - 700, "50"), (3, t0 + 60, "81.25"), (4, t0 + 5, None),
                               (4, t0 + 65, "30")])
        conn.commit()
    assert _enrich(db, [DAY], "sql") == [3]
    by_sql = _table(db)
    monkeypatch.setattr(_sensors, "has_libpq", lambda: False)
    assert _enrich(db, [DAY], "c") == [3]
    assert _table(db) == by_sql


def test_an_empty_day_is_an_empty_partition(db: Database) -> None:
    with db.connect() as conn:
        add_sensor_rows(conn, [], days=[DAY])
        conn.commit()
    assert _enrich(db, [DAY], "c") == [0]
    assert _table(db) == []
