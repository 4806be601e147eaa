"""Ingest's binary COPY of accepted rows (ext/sensors_rows.c, renderer/sensors/rows.py):
the C encoder equal to its Python twin on any columns, and the stored day equal, row for
row and ledger for ledger, to the SQL path (temporary table, INSERT ... ON CONFLICT) it
replaces in the usual case."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer import _sensors  # type: ignore[attr-defined]
from renderer.db import Database
from renderer.errors import AlreadyExists
from renderer.sensors import ingest as ingest_module
from renderer.sensors import sample
from renderer.sensors.ingest import ingest
from renderer.sensors.rows import HEADER, TRAILER, decode_columns_py, encode_rows_py, raw_stream
from renderer.sensors.validate import SCHEMA
from tests.test_sensors_fixtures import sql

DAY = date(2026, 1, 5)
_KINDS = {2: np.int16, 4: np.int32, 8: np.int64}


@st.composite
def _columns(draw: st.DrawFn) -> tuple[list[tuple[Any, int, Any]], int, int]:
    n = draw(st.integers(0, 30))
    columns = []
    for _ in range(draw(st.integers(1, 12))):
        width = draw(st.sampled_from([2, 4, 8]))
        bits = 8 * width - 1
        values = draw(st.lists(st.integers(-(2 ** bits), 2 ** bits - 1), min_size=n,
                               max_size=n))
        valid = None
        if draw(st.booleans()):
            valid = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.uint8)
        columns.append((np.array(values, _KINDS[width]), width, valid))
    start = draw(st.integers(0, n))
    return columns, start, draw(st.integers(start, n))


@settings(max_examples=300, deadline=None)
@given(_columns())
def test_the_encoder_equals_its_twin(case: tuple[list[tuple[Any, int, Any]], int, int]) -> None:
    columns, start, stop = case
    assert _sensors.encode_rows(columns, start, stop) == encode_rows_py(columns, start, stop)


def test_the_encoder_refuses_short_columns_and_odd_widths() -> None:
    values = np.arange(4, dtype=np.int32)
    with pytest.raises(ValueError, match="fewer values"):
        _sensors.encode_rows([(values, 4, None)], 0, 5)
    with pytest.raises(ValueError, match="width 3"):
        _sensors.encode_rows([(values, 3, None)], 0, 1)
    with pytest.raises(ValueError, match="validity"):
        _sensors.encode_rows([(values, 4, np.ones(2, np.uint8))], 0, 4)


def test_a_stream_of_no_rows_is_header_and_trailer() -> None:
    assert b"".join(raw_stream(SCHEMA.empty_table(), 7)) == HEADER + TRAILER


def _state(db: Database) -> dict[str, list[Any]]:
    return {
        "raw": sql(db, "SELECT uniqueid, recordtimestamp, currentspeed_hundredths,"
                       " bezettingsgraad, trafficintensityclass1, trafficintensityclass2,"
                       " trafficintensityclass3, trafficintensityclass4,"
                       " trafficintensityclass5, f.key FROM sensors_raw r"
                       " JOIN sensors_files f ON f.id = r.file_id"
                       " ORDER BY uniqueid, recordtimestamp"),
        "files": sql(db, "SELECT key, status, rows_read, rows_accepted, rows_rejected,"
                         " first_record, last_record FROM sensors_files ORDER BY key"),
        "rejects": sql(db, "SELECT f.key, r.line, r.reason, r.raw FROM sensors_rejects r"
                           " JOIN sensors_files f ON f.id = r.file_id ORDER BY 1, 2"),
        "days": sql(db, "SELECT day, raw_version FROM sensors_days ORDER BY day"),
    }


def test_the_binary_copy_stores_what_the_sql_path_stores(
        db: Database, fresh_database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    stats = sample.generate(tmp_path / "in", detectors=5, days=3, start=DAY)
    assert stats.bad_rows  # rejects on both sides
    files = [str(f) for f in stats.files]
    ours = ingest(db, files)
    assert {f.status for f in ours.files} == {"consumed"}

    def refused(table: pa.Table, file_id: int) -> Iterator[bytes]:
        raise AlreadyExists("as if a row were stored already")
        yield b""  # a generator, as raw_stream

    monkeypatch.setattr(ingest_module, "raw_stream", refused)
    other = Database(fresh_database_url)
    theirs = ingest(other, files)
    assert [(f.rows_read, f.rows_accepted, f.rows_rejected, f.days) for f in ours.files] == \
        [(f.rows_read, f.rows_accepted, f.rows_rejected, f.days) for f in theirs.files]
    assert _state(db) == _state(other)
    assert len(_state(db)["raw"]) == ours.rows["rows_accepted"] > 0
    assert ours.rows["rows_rejected"] > 0


@settings(max_examples=200, deadline=None)
@given(_columns(), st.lists(st.integers(1, 60), max_size=8))
def test_the_decoder_reads_back_any_columns_in_any_chunks(
        case: tuple[list[tuple[Any, int, Any]], int, int], cuts: list[int]) -> None:
    columns, start, stop = case
    data = HEADER + _sensors.encode_rows(columns, start, stop) + TRAILER
    decoder = _sensors.Columns([width for _, width, _ in columns])
    at = 0
    for cut in cuts:
        decoder.feed(data[at:at + cut])
        at += cut
    decoder.feed(data[at:])
    got = decoder.finish()
    assert got == decode_columns_py(data, [width for _, width, _ in columns])
    assert decoder.rows == stop - start
    for (values, valid), (original, _, mask) in zip(got, columns, strict=True):
        ok = np.ones(stop - start, np.uint8) if mask is None else mask[start:stop]
        assert valid == ok.tobytes()
        assert values == np.where(ok == 1, original[start:stop], 0).astype(original.dtype).tobytes()


def test_the_decoder_refuses_other_widths_and_a_cut_stream() -> None:
    data = HEADER + _sensors.encode_rows([(np.arange(3, dtype=np.int32), 4, None)], 0, 3)
    decoder = _sensors.Columns([8])
    with pytest.raises(ValueError, match="4 bytes, not 8"):
        decoder.feed(data)
    decoder = _sensors.Columns([4])
    decoder.feed(data)  # no trailer
    with pytest.raises(ValueError):
        decoder.finish()
