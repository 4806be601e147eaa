"""The day enrichment's C engine: binary COPY out, a C loop, binary COPY back.

``enrich_day_c`` does what ``renderer.sensors_enrich_day`` does, in the caller's
transaction and between the same two halves (``renderer.sensors_enrich_begin``: the day's
lock, its raw version, the fresh table; ``renderer.sensors_enrich_end``: the key, the swap):
it streams the raw rows of the day and its 600 s of context out of PostgreSQL as binary COPY
in key order, computes the windows in ``ext/sensors.c`` (``renderer._sensors.Enricher``,
whose definitions are those of the SQL and of the Python twin
:mod:`renderer.sensors.enrich_py`, tested equal) and streams the day's rows back into the
fresh table by binary COPY. PostgreSQL's executor then does one ordered scan instead of a
sort and two window passes (BENCHMARKS.md). After the swap it writes the day's summary per
detector (``sensors_day_detectors``, the day page's figures), which the kernel gathered in
the same pass (``ext/sensors_summary.c``), by one binary COPY of about 1,000 rows.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from renderer import _sensors  # type: ignore[attr-defined]
from renderer.db import Connection, one, query, sql, tuple_row

__all__ = ["PG_EPOCH", "day_start", "enrich_day_c", "enrich_day_from", "pg_time"]

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_OUT_CHUNK = 1 << 20


def pg_time(at: datetime) -> int:
    """PostgreSQL's binary timestamptz: microseconds since 2000-01-01 UTC."""
    delta = at - PG_EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def day_start(day: date) -> datetime:
    """The day's first instant (UTC)."""
    return datetime.combine(day, datetime.min.time(), UTC)


def enrich_day_c(conn: Connection, day: date) -> int:
    """Replace ``day`` in sensors_enriched inside the caller's transaction; rows written."""
    begun = one(conn, "sensors_day.enrich_begin", {"day": day})
    lo = day_start(day)
    enricher = _sensors.Enricher(pg_time(lo))
    with conn.cursor(row_factory=tuple_row) as cur, \
            cur.copy(query("sensors_day.raw_rows_copy"),
                     {"lo": lo, "hi": lo + timedelta(days=1)}) as copy:
        if _sensors.has_libpq():
            # read by C from the driver's own libpq: a Python loop over a million
            # one-row messages would cost more than the whole computation
            enricher.drain(cast(Any, conn.pgconn).pgconn_ptr)  # libpq's PGconn *
        for data in copy:  # after a drain: only the end of the COPY, its result
            enricher.feed(data)
    return _write(conn, day, begun, enricher)


def enrich_day_from(conn: Connection, day: date, rows: Iterable[bytes]) -> int:
    """As :func:`enrich_day_c`, from raw rows the caller holds instead of read back: ``rows``
    the binary COPY that ``sensors_day.raw_rows_copy`` would give (ingest, which has a fresh
    day's rows in memory, :mod:`renderer.sensors.fused`)."""
    begun = one(conn, "sensors_day.enrich_begin", {"day": day})
    enricher = _sensors.Enricher(pg_time(day_start(day)))
    for data in rows:
        enricher.feed(data)
    return _write(conn, day, begun, enricher)


def _write(conn: Connection, day: date, begun: dict[str, Any], enricher: Any) -> int:
    """The previous speeds from before the context, the rows into the fresh table, the swap,
    then the day's summary per detector (sensors_day_detectors, gathered by the kernel in the
    same pass; the swap's update of sensors_days cleared the previous one)."""
    lo = day_start(day)
    with conn.cursor(row_factory=tuple_row) as cur:
        missing = array("i", enricher.missing())
        speeds = array("q", [-1] * len(missing))
        if missing:
            found = cur.execute(query("sensors_day.previous_speeds"),
                                {"ids": list(missing), "lo": lo}).fetchall()
            for i, (speed,) in enumerate(found):
                speeds[i] = -1 if speed is None else speed
        enricher.resolve(speeds.tobytes())
        enricher.finish()
        rows = memoryview(enricher)  # the C buffer itself, not a copy
        target = sql.SQL(query("sensors_day.enriched_copy")).format(
            table=sql.Identifier(begun["fresh"]))
        with cur.copy(target) as copy:
            for at in range(0, len(rows), _OUT_CHUNK):
                copy.write(rows[at:at + _OUT_CHUNK])
    done = one(conn, "sensors_day.enrich_end",
               {"day": day, "version": begun["version"], "rows": enricher.rows})
    with conn.cursor() as cur, cur.copy(query("sensors_day.detectors_copy")) as copy:
        copy.write(enricher.summary())
    return int(done["rows"])
