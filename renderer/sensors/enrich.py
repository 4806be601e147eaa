"""The day computation, apart from the queue: which days to enrich, and enriching one.

For each detector and record at time t, ``renderer.sensors_enrich_day`` (migrations 0005,
0009, 0014) writes ``previousspeed`` (the speed of the detector's previous record, however old),
``speeddiffindicator`` (+1 / -1 for a change of at least 20 km/h, else 0),
``avgspeed2minutes`` and ``avgspeed10minutes`` (mean speed over the records in [t - 120 s, t]
and [t - 600 s, t]: RANGE frames over time, records without speed left out) and
``trafficjamindicator`` (1 if the 2-minute mean <= 40, 0 if 40 < mean <= 250, else -1).
Speeds are decimals (means over lanes, 81.25 km/h), stored exactly as hundredths of km/h
(migration 0014): the thresholds compare exact integer sums, and each mean is the double
nearest the exact mean (75.58333333333333 for 80.25, 75.5 and 71.0), as the reference
pipeline prints it; ``currentspeed`` and ``previousspeed`` come out as km/h doubles. It
reads the previous day's last 600 s as context and writes only the day: into a table of its
own, made in the caller's transaction, that replaces the day's partition at commit (the
partition is made then too, so no day needs one beforehand).
"""

from __future__ import annotations

from datetime import date

from renderer.db import Connection, query, scalar
from renderer.errors import ConfigError
from renderer.sensors import enrich_c

__all__ = ["day_key", "enrich_day", "parse_day", "pending_days"]


def day_key(day: date) -> str:
    """The work item key of a day: ``YYYY-MM-DD``."""
    return day.isoformat()


def parse_day(key: str) -> date:
    """Inverse of :func:`day_key`."""
    return date.fromisoformat(key)


def pending_days(conn: Connection, start: date | None = None,
                 end: date | None = None, *, every: bool = False) -> list[tuple[date, int]]:
    """(day, raw version) of the days to enrich: those changed since they were last enriched,
    or with ``every`` all days with raw rows; optionally within [start, end]."""
    name = "days_in_range" if every else "pending_days"
    rows = conn.execute(query(f"sensors_day.{name}"), {"start": start, "end": end}).fetchall()
    return [(r["day"], int(r["raw_version"])) for r in rows]


def enrich_day(conn: Connection, day: date, engine: str = "c") -> int:
    """Replace ``day`` in sensors_enriched inside the caller's transaction; rows written.

    ``engine`` (the setting ``sensors_enrich_engine``): ``c`` computes the windows in
    ext/sensors.c over binary COPY (:mod:`renderer.sensors.enrich_c`), ``sql`` in
    ``renderer.sensors_enrich_day``; the rows are the same, and so is the day's summary per
    detector for the day page (``sensors_day_detectors``: gathered by the C kernel in its
    pass, by one aggregate after the SQL engine). The transaction ends holding a
    lock on sensors_enriched (SHARE UPDATE EXCLUSIVE, or ACCESS EXCLUSIVE when the day had
    rows before): commit soon after.
    """
    if engine == "c":
        return enrich_c.enrich_day_c(conn, day)
    if engine == "sql":
        rows = int(scalar(conn, "sensors_day.enrich_day", {"day": day}))
        scalar(conn, "sensors_day.detectors_fill", {"day": day})  # the page's summary
        return rows
    raise ConfigError(f"unknown sensors enrichment engine {engine!r}",
                      "set sensors enrich_engine to c or sql")
