"""Shared helpers of the sensor tests: file factories and a plain-Python reference of the
enrichment definitions (issue 7), written for clarity, not speed. No tests here."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from renderer.db import Database

HEADER = ("uniqueid", "recordtimestamp", "currentspeed", "bezettingsgraad",
          "trafficintensityclass1", "trafficintensityclass2", "trafficintensityclass3",
          "trafficintensityclass4", "trafficintensityclass5")


def epoch(value: datetime) -> int:
    return int(value.timestamp())


def at(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def minute_rows(detector: int, start: datetime, minutes: int,
                speed: Callable[[int], int | None] = lambda m: 60 + m % 30,
                skip: Iterable[int] = ()) -> list[tuple[Any, ...]]:
    """One row a minute (epoch seconds), the i-th minute's speed ``speed(i)`` (None = empty)."""
    skipped = set(skip)
    rows = []
    for m in range(minutes):
        if m in skipped:
            continue
        s = speed(m)
        rows.append((detector, epoch(start + timedelta(minutes=m)), "" if s is None else s,
                     m % 17, m % 5, 1, 0, 0, m % 2))
    return rows


def write_csv(path: Path, rows: Sequence[Sequence[Any]], header: Sequence[str] = HEADER,
              delimiter: str = ",", compress: bool = False, newline: str = "\n",
              bom: bool = False) -> Path:
    text = newline.join(delimiter.join(str(v) for v in row) for row in [header, *rows])
    data = (("\ufeff" if bom else "") + text + newline).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@dataclass(frozen=True)
class Expected:
    previousspeed: float | None
    speeddiffindicator: int
    avgspeed2minutes: float | None
    avgspeed10minutes: float | None
    trafficjamindicator: int


def _exact(speed: Any) -> Fraction | None:
    """A speed as the exact decimal it was written as (81.25, 33.5, Decimal, int)."""
    return None if speed is None else Fraction(Decimal(str(speed)))


def reference(records: Sequence[tuple[float, Any]]) -> list[Expected]:
    """The definitions applied to one detector's records (epoch seconds, speed in km/h), in
    time order, in exact arithmetic: the thresholds compare exact values, and each mean is
    the double nearest the exact mean (what the reference pipeline prints, as a double's
    shortest repr, e.g. 75.58333333333333 for 80.25, 75.5 and 71.0)."""
    out = []
    for i, (t, raw) in enumerate(records):
        speed = _exact(raw)
        previous = _exact(records[i - 1][1]) if i else None

        def mean(seconds: int, t: float = t) -> Fraction | None:
            speeds = [_exact(s) for u, s in records if t - seconds <= u <= t and s is not None]
            return sum(speeds, Fraction(0)) / len(speeds) if speeds else None

        a2, a10 = mean(120), mean(600)
        diff = 0
        if speed is not None and previous is not None:
            diff = 1 if speed - previous >= 20 else -1 if speed - previous <= -20 else 0
        jam = -1 if a2 is None else 1 if a2 <= 40 else 0 if a2 <= 250 else -1
        out.append(Expected(None if previous is None else float(previous), diff,
                            None if a2 is None else float(a2),
                            None if a10 is None else float(a10), jam))
    return out


def enriched(db: Database, detector: int | None = None) -> list[dict[str, Any]]:
    """All enriched rows (of one detector), in (detector, time) order, time as epoch."""
    with db.connect() as conn:
        return conn.execute(
            "SELECT *, extract(epoch FROM recordtimestamp)::float8 AS t FROM sensors_enriched"
            " WHERE %(d)s::int IS NULL OR uniqueid = %(d)s ORDER BY uniqueid, recordtimestamp",
            {"d": detector}).fetchall()


def sql(db: Database, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
    with db.connect() as conn:
        cur = conn.execute(statement, params or {})
        rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows


def enrich(db: Database, *days: date) -> list[int]:
    """Enrich days directly (one transaction each), as the day handler does."""
    from renderer.sensors.enrich import enrich_day

    counts = []
    with db.connect() as conn:
        for day in days:
            counts.append(enrich_day(conn, day))
            conn.commit()
    return counts
