"""A fresh day enriched by the ingest that brings it, in the ingest's transaction.

When a file brings a day that has no raw row stored yet (the usual case: a feed's day file),
all of that day's raw rows are the file's, already in memory as Arrow columns sorted by the
key. Instead of storing them and leaving the day to a ``sensors-day`` item (which streams
them back out of PostgreSQL by COPY to compute), ingest computes the day right there with
the same C kernel (:func:`renderer.sensors.enrich_c.enrich_day_from`): the day's rows from
memory, merged with the 600 s of context before the day (read from sensors_raw, the file's
own rows of the day before included: a COPY of a few rows per detector) and the previous
speeds from before the context (index probes, as the day item does). The enriched day goes
into its fresh table by one binary COPY and replaces the day's partition, and the day is
recorded as enriched from the raw version this transaction gave it and as enriched by
ingest (``sensors_days.ingest_enriched``): the next ETL run still plans the day, for its
export, and the day's item finds the work done and does nothing
(:func:`renderer.sensors.day.enrich_item`). The rows are those the day item would
write, byte for byte (tests/test_sensors_fused.py); a file whose rows clash with stored ones
(the upsert route), or a day that had rows before, is left to the day item as before.

The day's enrichment lock is taken before the check that the day is fresh, so two ingests
of one day, or an ingest and a day item, never both take it for fresh. A crash anywhere
before the commit leaves neither the file, nor its rows, nor the enriched day.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from renderer import _sensors  # type: ignore[attr-defined]
from renderer.db import Connection, query, tuple_row
from renderer.sensors.enrich_c import day_start, enrich_day_from
from renderer.sensors.rows import CHUNK_ROWS, HEADER, TRAILER, Column, raw_columns

__all__ = ["enrich_fresh_days", "fresh_days", "merge_columns"]

_IN_WIDTHS = (4, 8, 4, 4, 4, 4, 4, 4, 4)  # sensors_day.raw_rows_copy's columns
_DAY_US = 86_400_000_000


def fresh_days(conn: Connection, days: Sequence[date]) -> list[date]:
    """Lock each day's enrichment (until the transaction ends), then the days among them
    with no raw row stored."""
    if not days:
        return []
    wanted = sorted(days)
    conn.execute(query("sensors_ingest.lock_days"), {"days": wanted})
    rows = conn.execute(query("sensors_ingest.fresh_days"), {"days": wanted}).fetchall()
    return [r["day"] for r in rows]


def merge_columns(context: Sequence[Column], day: Sequence[Column]) -> list[Column]:
    """The context's rows and the day's, both in key order, as one run in key order: each
    detector's context rows (all before the day) just before its rows of the day."""
    if not len(context[0][0]):
        return list(day)
    at = np.searchsorted(day[0][0], context[0][0], side="left")
    merged: list[Column] = []
    for (values, width, valid), (more, _, more_valid) in zip(day, context, strict=True):
        out_valid = None
        if valid is not None or more_valid is not None:
            ones = np.ones(len(values), np.uint8)
            out_valid = np.insert(ones if valid is None else valid, at,
                                  np.ones(len(more), np.uint8) if more_valid is None
                                  else more_valid)
        merged.append((np.insert(values, at, more), width, out_valid))
    return merged


def _context(conn: Connection, day: date, kinds: Sequence[Any]) -> list[Column]:
    reader = _sensors.Columns(list(_IN_WIDTHS))
    with conn.cursor(row_factory=tuple_row) as cur, \
            cur.copy(query("sensors_day.raw_rows_copy"),
                     {"lo": day_start(day), "hi": day_start(day)}) as copy:
        for data in copy:
            reader.feed(data)
    columns = reader.finish()
    return [(np.frombuffer(values, kind), width, np.frombuffer(valid, np.uint8))
            for (values, valid), width, kind in zip(columns, _IN_WIDTHS, kinds, strict=True)]


def _stream(columns: Sequence[Column]) -> Iterator[bytes]:
    rows = len(columns[0][0])
    yield HEADER
    for at in range(0, rows, CHUNK_ROWS):
        yield _sensors.encode_rows(columns, at, min(at + CHUNK_ROWS, rows))
    yield TRAILER


def _of_day(rows: pa.Table, day: date) -> pa.Table:
    lo = (day - date(1970, 1, 1)).days * _DAY_US
    micros = pc.cast(rows.column("recordtimestamp"), pa.int64())
    inside = pc.and_(pc.greater_equal(micros, lo), pc.less(micros, lo + _DAY_US))
    return rows if pc.all(inside).as_py() else rows.filter(inside)


def enrich_fresh_days(conn: Connection, rows: pa.Table, days: Sequence[date]) -> int:
    """Enrich ``days`` (fresh: all their raw rows are among ``rows``, validated and sorted
    by the key, and stored in this transaction) from ``rows``; rows written."""
    written = 0
    for day in days:
        mine = raw_columns(_of_day(rows, day), 0)[:len(_IN_WIDTHS)]
        context = _context(conn, day, [values.dtype for values, _, _ in mine])
        written += enrich_day_from(conn, day, _stream(merge_columns(context, mine)))
    conn.execute(query("sensors_ingest.mark_ingest_enriched"), {"days": list(days)})
    return written

