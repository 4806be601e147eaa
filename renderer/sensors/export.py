"""Export of enriched days as Hive-style partitions that DuckDB, Athena and pyarrow read.

One object per UTC day, ``year=2026/month=1/day=5/sensors-2026-01-05.parquet`` (or
``.csv``), under a folder or a store URL (``s3://bucket/prefix``). The name is fixed, so
exporting a day again replaces its object; a day left without rows loses it. Partition
columns live in the path only, as Hive expects. Rows are sorted by detector and time.

Partition values are written without leading zeros, so that DuckDB, pyarrow and Athena all
infer integers for ``year``, ``month`` and ``day`` (DuckDB reads ``month=01`` as VARCHAR, and
``WHERE month = 1`` then compares text). An object of the earlier zero-padded layout
(``month=01/day=05``) is removed when its day is exported again, so a day is never read
twice. A local folder gets the data files only: no metadata sidecars beside them
(:meth:`renderer.storage.FileStore.put_plain`).

Columns: uniqueid, recordtimestamp (UTC; Parquet ``timestamp[us, UTC]``, CSV zone-less UTC
text ``2026-01-05 07:30:00``), currentspeed, bezettingsgraad, previousspeed,
trafficjamindicator, trafficintensityclass1..5, speeddiffindicator, avgspeed2minutes,
avgspeed10minutes.

A day is read with one COPY (far faster than a driver fetching rows): as CSV for CSV, and for
Parquet as binary COPY read by C (``renderer._sensors.Columns``, from the driver's libpq)
straight into typed columns, then an Arrow table. The earlier Parquet route (CSV parsed by
Arrow, :func:`parquet_from_csv`) stays as the twin the tests hold byte-equal to it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from renderer import _sensors  # type: ignore[attr-defined]
from renderer.db import Connection, query
from renderer.errors import InputError
from renderer.storage import FileStore, Store, open_store

__all__ = ["FORMATS", "SCHEMA", "ExportedDay", "day_key", "day_table", "export_days",
           "exportable_days", "parquet_from_csv"]

FORMATS = ("parquet", "csv")
CLASSES = [(f"trafficintensityclass{i}", pa.int32()) for i in range(1, 6)]
SCHEMA = pa.schema([
    ("uniqueid", pa.int32()), ("recordtimestamp", pa.timestamp("us", tz="UTC")),
    ("currentspeed", pa.float64()), ("bezettingsgraad", pa.float32()),
    ("previousspeed", pa.float64()), ("trafficjamindicator", pa.int8()), *CLASSES,
    ("speeddiffindicator", pa.int8()), ("avgspeed2minutes", pa.float64()),
    ("avgspeed10minutes", pa.float64()),
])
_CSV_TYPES = {f.name: (pa.timestamp("us") if f.name == "recordtimestamp" else f.type)
              for f in SCHEMA}
CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}
# the binary COPY of day_binary: each column's width there and its numpy type
_BINARY = [(4, np.int32), (8, np.int64), (8, np.float64), (4, np.float32), (8, np.float64),
           (2, np.int16), *[(4, np.int32)] * 5, (2, np.int16), (8, np.float64), (8, np.float64)]
PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 UTC in Unix microseconds


@dataclass(frozen=True)
class ExportedDay:
    day: date
    key: str
    """Key under the export root; empty when the day had no rows (its object was removed)."""
    rows: int
    size: int


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}", "use parquet or csv")
    return fmt


def day_key(day: date, fmt: str, prefix: str = "") -> str:
    """``[prefix/]year=Y/month=M/day=D/sensors-YYYY-MM-DD.<fmt>``, partition values without
    leading zeros (read as integers by DuckDB, pyarrow and Athena).

    Examples
    --------
    >>> day_key(date(2026, 1, 5), "parquet")
    'year=2026/month=1/day=5/sensors-2026-01-05.parquet'
    """
    key = f"year={day.year}/month={day.month}/day={day.day}/sensors-{day.isoformat()}.{fmt}"
    return _prefixed(key, prefix)


def _prefixed(key: str, prefix: str) -> str:
    return f"{prefix.strip('/')}/{key}" if prefix.strip("/") else key


def _padded_key(day: date, fmt: str, prefix: str = "") -> str:
    """The key of the earlier layout, ``month=01/day=05``, that DuckDB typed as text."""
    return _prefixed(f"year={day:%Y}/month={day:%m}/day={day:%d}/sensors-{day.isoformat()}"
                     f".{fmt}", prefix)


def _put(store: Store, key: str, data: bytes, fmt: str) -> None:
    if isinstance(store, FileStore):
        store.put_plain(key, data)  # the folder is the data lake: no sidecars in it
    else:
        store.put(key, data, content_type=CONTENT_TYPES[fmt])


def _bounds(day: date) -> dict[str, datetime]:
    lo = datetime.combine(day, time(), UTC)
    return {"lo": lo, "hi": lo + timedelta(days=1)}


def day_table(conn: Connection, day: date) -> pa.Table:
    """One day of sensors_enriched as an Arrow table (:data:`SCHEMA`), by binary COPY."""
    columns = _sensors.Columns([width for width, _ in _BINARY])
    with conn.cursor() as cur, cur.copy(query("sensors_export.day_binary"),
                                        _bounds(day)) as copy:
        if _sensors.has_libpq():  # read by C from the driver's libpq, as enrich_c does
            columns.drain(cast(Any, conn.pgconn).pgconn_ptr)
        for block in copy:  # after a drain: only the end of the COPY
            columns.feed(block)
    arrays = []
    for field, (values, valid), (_, kind) in zip(SCHEMA, columns.finish(), _BINARY,
                                                 strict=True):
        data = np.frombuffer(values, kind)
        nulls = np.frombuffer(valid, np.uint8) == 0
        if field.name == "recordtimestamp":
            data = data + PG_EPOCH_US
        elif kind is np.int16:
            data = data.astype(np.int8)  # the indicators: -1, 0 or 1 (CHECKs)
        arrays.append(pa.array(data, field.type, mask=nulls if nulls.any() else None))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _parquet_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table.combine_chunks(), out, compression="zstd")
    return out.getvalue()


def _day_csv(conn: Connection, day: date) -> bytes:
    out = io.BytesIO()
    with conn.cursor() as cur, cur.copy(query("sensors_export.day_csv"),
                                        _bounds(day)) as copy:
        for block in copy:
            out.write(block)
    return out.getvalue()


def parquet_from_csv(text: bytes) -> tuple[bytes, int]:
    """The Parquet object of a day from its CSV (the twin of the binary route)."""
    table = pacsv.read_csv(io.BytesIO(text), convert_options=pacsv.ConvertOptions(
        column_types=_CSV_TYPES, timestamp_parsers=["%Y-%m-%d %H:%M:%S", pacsv.ISO8601]))
    table = table.set_column(1, "recordtimestamp",
                             table.column("recordtimestamp").cast(SCHEMA.field(1).type))
    return _parquet_bytes(table.cast(SCHEMA)), table.num_rows


def export_day(conn: Connection, store: Store, day: date, fmt: str,
               prefix: str = "") -> ExportedDay:
    """Write one day's object (or remove it when the day has no rows)."""
    key = day_key(day, check_format(fmt), prefix)
    padded = _padded_key(day, fmt, prefix)
    if fmt == "parquet":
        table = day_table(conn, day)
        rows = table.num_rows
        data = _parquet_bytes(table) if rows else b""
    else:
        data = _day_csv(conn, day)
        rows = max(data.count(b"\n") - 1, 0)
    if padded != key:
        store.delete(padded)
    if rows == 0:
        store.delete(key)
        return ExportedDay(day, "", 0, 0)
    _put(store, key, data, fmt)
    return ExportedDay(day, key, rows, len(data))


def export_days(conn: Connection, days: Iterable[date], out: str, fmt: str,
                prefix: str = "") -> list[ExportedDay]:
    """Export some days to ``out`` (a folder, ``file://`` or ``s3://`` URL)."""
    check_format(fmt)
    store = open_store(out)
    return [export_day(conn, store, day, fmt, prefix) for day in days]


def exportable_days(conn: Connection, start: date | None = None,
                    end: date | None = None) -> list[date]:
    """The enriched days within [start, end] (open ends when None)."""
    rows = conn.execute(query("sensors_export.enriched_days"),
                        {"start": start, "end": end}).fetchall()
    return [r["day"] for r in rows]
