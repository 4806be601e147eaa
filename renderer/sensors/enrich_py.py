"""The Python twin of ext/sensors.c: a day's enriched rows from its raw rows, in plain Python.

The same definitions as ``renderer.sensors_enrich_day`` and the C engine (tests hold the
three equal, double for double): per detector in time order, the previous record's speed;
the sums and counts of the speeds (integers of hundredths of km/h) over [t - 120 s, t] and
[t - 600 s, t]; the jam indicator from the exact 2-minute sum and count; each mean
``sum / (100 * count)`` as doubles. Slow (a Python loop); it exists to be read and to hold
the C loop to the definitions.

Rows in: (uniqueid, time in microseconds, speed in hundredths or None, bezettingsgraad,
class1..class5), in (uniqueid, time) order, the context (times before ``lo``) included.
Rows out: the enriched columns of the rows at or after ``lo``, in sensors_enriched's column
order, times still in microseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["EnrichedRow", "RawRow", "enrich_rows", "missing"]

RawRow = tuple[Any, ...]
EnrichedRow = tuple[Any, ...]

_USEC = 1_000_000


def missing(rows: Iterable[RawRow], lo: int) -> list[int]:
    """The detectors whose first record in ``rows`` is of the day (at or after ``lo``): their
    previous speed lies before the context, in the database."""
    out, last = [], None
    for row in rows:
        if row[0] != last:
            last = row[0]
            if row[1] >= lo:
                out.append(row[0])
    return out


def _jam(total: int, count: int) -> int:
    if count == 0:
        return -1
    return 1 if total <= 4000 * count else 0 if total <= 25000 * count else -1


def _diff(speed: int | None, previous: int | None) -> int:
    if speed is None or previous is None:
        return 0
    return 1 if speed - previous >= 2000 else -1 if speed - previous <= -2000 else 0


def _mean(total: int, count: int) -> float | None:
    return float(total) / float(100 * count) if count else None


def _km_h(hundredths: int | None) -> float | None:
    return None if hundredths is None else float(hundredths) / 100


def enrich_rows(rows: Sequence[RawRow], lo: int,
                before: Mapping[int, int | None]) -> list[EnrichedRow]:
    """The day's enriched rows; ``before`` the previous speed of each detector of
    :func:`missing` (absent or None: no speed)."""
    out: list[EnrichedRow] = []
    window: deque[tuple[int, int | None]] = deque()
    last: int | None = None
    for uid, t, speed, bez, *classes in rows:
        if uid != last:
            window.clear()
            previous = before.get(uid)
            last = uid
        else:
            previous = window[-1][1]
        window.append((t, speed))
        while window[0][0] < t - 600 * _USEC:
            window.popleft()
        if t < lo:
            continue
        speeds2 = [s for u, s in window if u >= t - 120 * _USEC and s is not None]
        speeds10 = [s for _, s in window if s is not None]
        s2, n2, s10, n10 = sum(speeds2), len(speeds2), sum(speeds10), len(speeds10)
        out.append((uid, t, _km_h(speed), bez, _km_h(previous), _jam(s2, n2), *classes,
                    _diff(speed, previous), _mean(s2, n2), _mean(s10, n10)))
    return out
