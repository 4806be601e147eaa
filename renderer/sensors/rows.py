"""Typed columns <-> PostgreSQL binary COPY rows: ingest's rows in, export's columns out.

The validated rows of a file (an Arrow table, :data:`renderer.sensors.validate.SCHEMA`) are
sorted by the key (uniqueid, recordtimestamp), as the earlier ``INSERT ... SELECT ... ORDER
BY`` stored them, and written as binary COPY rows by ``ext/sensors_rows.c``
(``renderer._sensors.encode_rows``), whose plain-Python twin :func:`encode_rows_py` the tests
hold equal to it. Binary COPY skips PostgreSQL's text parsing of every value, and the rows go
into sensors_raw directly instead of through a temporary table (BENCHMARKS.md, Sensors).

The other way, export reads a day of sensors_enriched by binary COPY into columns
(``renderer._sensors.Columns``, twin :func:`decode_columns_py`) and from them the Arrow
table it writes as Parquet: no text formatted by the server, none parsed by the client.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from renderer import _sensors  # type: ignore[attr-defined]
from renderer.sensors.validate import CLASSES

__all__ = ["HEADER", "RAW_COLUMNS", "TRAILER", "Column", "decode_columns_py", "encode_rows_py",
           "raw_columns", "raw_stream", "sort_by_key"]

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
TRAILER = b"\xff\xff"
RAW_COLUMNS = ("uniqueid", "recordtimestamp", "currentspeed_hundredths", "bezettingsgraad",
               *CLASSES, "file_id")
PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 UTC in Unix microseconds
CHUNK_ROWS = 65536

Column = tuple[Any, int, Any]
"""(values buffer in machine order, width in bytes, validity buffer or None)."""

_UNPACK = {2: "h", 4: "i", 8: "q"}


def encode_rows_py(columns: Sequence[Column], start: int, stop: int) -> bytes:
    """The twin of ``_sensors.encode_rows``: rows [start, stop) of the columns as binary COPY
    rows (a field count, then per field its length and big-endian bytes, or -1 for NULL)."""
    order = "<" if sys.byteorder == "little" else ">"
    views = [(memoryview(data).cast("B"), width,
              None if valid is None else memoryview(valid).cast("B"))
             for data, width, valid in columns]
    out = bytearray()
    for r in range(start, stop):
        out += struct.pack(">h", len(views))
        for data, width, valid in views:
            if valid is not None and not valid[r]:
                out += struct.pack(">i", -1)
                continue
            (value,) = struct.unpack(order + _UNPACK[width], data[r * width:(r + 1) * width])
            out += struct.pack(">i" + _UNPACK[width], width, value)
    return bytes(out)


def sort_by_key(table: pa.Table) -> pa.Table:
    """The rows in sensors_raw's key order."""
    return table.sort_by([("uniqueid", "ascending"), ("recordtimestamp", "ascending")])


def _column(array: pa.ChunkedArray, kind: type[np.generic]) -> Column:
    values = array.fill_null(0) if array.null_count else array
    data = np.ascontiguousarray(values.to_numpy(), dtype=kind)
    valid = None
    if array.null_count:
        valid = np.ascontiguousarray(array.is_valid().to_numpy(zero_copy_only=False),
                                     dtype=np.uint8)
    return data, data.itemsize, valid


def raw_columns(table: pa.Table, file_id: int) -> list[Column]:
    """sensors_raw's columns (:data:`RAW_COLUMNS`) of validated rows, as encode_rows takes
    them; times as PostgreSQL's (microseconds since 2000-01-01 UTC)."""
    micros = pc.cast(table.column("recordtimestamp"), pa.int64()).to_numpy()
    columns = [_column(table.column("uniqueid"), np.int32),
               (np.ascontiguousarray(micros - PG_EPOCH_US), 8, None),
               _column(table.column("currentspeed_hundredths"), np.int32),
               _column(table.column("bezettingsgraad"), np.float32),
               *(_column(table.column(c), np.int32) for c in CLASSES)]
    columns.append((np.full(table.num_rows, file_id, np.int64), 8, None))
    return columns


def raw_stream(table: pa.Table, file_id: int) -> Iterator[bytes]:
    """The whole binary COPY of the rows into sensors_raw (:data:`RAW_COLUMNS`), in chunks."""
    columns = raw_columns(table, file_id)
    yield HEADER
    for at in range(0, table.num_rows, CHUNK_ROWS):
        yield _sensors.encode_rows(columns, at, min(at + CHUNK_ROWS, table.num_rows))
    yield TRAILER


def decode_columns_py(data: bytes, widths: Sequence[int]) -> list[tuple[bytes, bytes]]:
    """The twin of ``_sensors.Columns``: a whole binary COPY of fixed-width fields as
    (values in machine order, 0 where NULL; validity bytes 1/0) per column."""
    order = "<" if sys.byteorder == "little" else ">"
    if data[:len(HEADER)] != HEADER:
        raise ValueError("bad COPY stream: no binary COPY header")
    values = [bytearray() for _ in widths]
    valid = [bytearray() for _ in widths]
    at = len(HEADER)
    while True:
        (fields,) = struct.unpack_from(">h", data, at)
        at += 2
        if fields == -1:
            if at != len(data):
                raise ValueError("bad COPY stream: bytes after the trailer")
            return [(bytes(v), bytes(ok)) for v, ok in zip(values, valid, strict=True)]
        if fields != len(widths):
            raise ValueError(f"bad COPY stream: {fields} fields, expected {len(widths)}")
        for i, width in enumerate(widths):
            (n,) = struct.unpack_from(">i", data, at)
            at += 4
            if n == -1:
                values[i] += bytes(width)
                valid[i].append(0)
                continue
            if n != width:
                raise ValueError(f"bad COPY stream: field {i + 1} has {n} bytes, not {width}")
            (value,) = struct.unpack_from(">" + _UNPACK[width], data, at)
            at += width
            values[i] += struct.pack(order + _UNPACK[width], value)
            valid[i].append(1)
