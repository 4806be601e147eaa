"""``sensors query``: one detector's enriched rows between two instants, both inclusive.

Speeds and means are doubles printed as their shortest repr, as the reference pipeline prints
them: ``81.25``, ``71.0``, ``75.58333333333333`` (the mean of 80.25, 75.5 and 71.0).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from renderer.db import Connection
from renderer.db import query as named
from renderer.errors import InputError
from renderer.sensors.validate import parse_timestamp

__all__ = ["COLUMNS", "parse_time", "rows", "to_csv", "to_json"]

COLUMNS = (
    "uniqueid", "recordtimestamp", "currentspeed", "bezettingsgraad", "previousspeed",
    "trafficjamindicator", "trafficintensityclass1", "trafficintensityclass2",
    "trafficintensityclass3", "trafficintensityclass4", "trafficintensityclass5",
    "speeddiffindicator", "avgspeed2minutes", "avgspeed10minutes",
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_time(text: str, *, end: bool = False) -> datetime:
    """Epoch seconds or ISO 8601 (zone-less = UTC) -> an aware UTC datetime.

    A date alone is its midnight, or with ``end`` the last microsecond of that day, so that
    ``--from 2026-01-05 --to 2026-01-05`` is the whole day.

    >>> parse_time("1767225600").isoformat()
    '2026-01-01T00:00:00+00:00'
    >>> parse_time("2026-01-01", end=True).isoformat()
    '2026-01-01T23:59:59.999999+00:00'
    """
    text = text.strip()
    value, why = parse_timestamp(text)
    if value is None:
        raise InputError(f"time {text!r}: {why}",
                         "give epoch seconds or ISO 8601, e.g. 2026-01-05T07:30:00Z")
    if end and _DATE.fullmatch(text):
        value += timedelta(days=1) - timedelta(microseconds=1)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def rows(conn: Connection, detector: int, start: datetime,
         end: datetime) -> list[dict[str, Any]]:
    """The detector's rows with start <= recordtimestamp <= end, oldest first; the time as
    epoch seconds."""
    if end < start:
        raise InputError("--to is before --from", "swap them")
    found = conn.execute(named("sensors_export.query"),
                         {"detector": detector, "lo": start.astimezone(UTC),
                          "hi": end.astimezone(UTC)}).fetchall()
    return [{k: _plain(v) for k, v in r.items()} for r in found]


def to_csv(found: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(found)
    return out.getvalue()


def to_json(found: list[dict[str, Any]]) -> str:
    return json.dumps(found, indent=None, separators=(",", ":"))
