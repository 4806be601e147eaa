"""Epoch hours and ISO 8601 weeks, the time units of the traffic pipeline.

An hour is ``floor(epoch_seconds / 3600)`` (UTC). A week is an ISO 8601 week, Monday 00:00 UTC
to the next Monday, written ``2016-W44``; the ISO year can differ from the calendar year near
New Year (2016-01-01 is in ``2015-W53``). Hour of week 0 is Monday 00:00-01:00 UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

__all__ = [
    "HOURS_PER_WEEK",
    "format_hour",
    "hour_of_week",
    "hour_range_of_week",
    "hour_start",
    "monday_of_week",
    "parse_hour",
    "parse_week",
    "week_name",
    "week_of_date",
    "week_of_hour",
]

HOURS_PER_WEEK = 168
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WEEK = re.compile(r"(\d{4})-?W(\d{2})")
_HOUR = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2})(?::00(?::00)?)?(?:Z|\+00(?::?00)?)?"
)


def hour_start(hour: int) -> datetime:
    """The UTC start of an epoch hour.

    Examples
    --------
    >>> hour_start(412_218)
    datetime.datetime(2017, 1, 9, 18, 0, tzinfo=datetime.timezone.utc)
    """
    return _EPOCH + timedelta(hours=hour)


def week_of_date(day: date) -> str:
    """The ISO week of a date, ``YYYY-Www``.

    Examples
    --------
    >>> week_of_date(date(2016, 1, 1))
    '2015-W53'
    """
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def week_of_hour(hour: int) -> str:
    """The ISO week (``2016-W44``) holding the start of an epoch hour.

    Examples
    --------
    >>> week_of_hour(410_520)  # 2016-10-31 00:00 UTC, a Monday
    '2016-W44'
    >>> week_of_hour(410_519)  # one hour earlier, Sunday 23:00
    '2016-W43'
    """
    return week_of_date(hour_start(hour).date())


def parse_week(week: str) -> tuple[int, int]:
    """``(iso_year, iso_week)`` of ``2016-W44`` (or ``2016W44``); ValueError if there is none.

    Examples
    --------
    >>> parse_week("2015-W53")
    (2015, 53)
    """
    match = _WEEK.fullmatch(week.strip())
    if match is None:
        raise ValueError(f"a week is written like 2016-W44, not {week!r}")
    year, number = int(match[1]), int(match[2])
    try:
        date.fromisocalendar(year, number, 1)
    except ValueError as exc:
        raise ValueError(f"{year} has no ISO week {number}") from exc
    return year, number


def week_name(week: str) -> str:
    """The canonical name of a week written as :func:`parse_week` reads it.

    Examples
    --------
    >>> week_name(" 2016W44")
    '2016-W44'
    """
    year, number = parse_week(week)
    return f"{year:04d}-W{number:02d}"


def monday_of_week(week: str) -> date:
    """The Monday that starts an ISO week.

    Examples
    --------
    >>> monday_of_week("2016-W44")
    datetime.date(2016, 10, 31)
    """
    year, number = parse_week(week)
    return date.fromisocalendar(year, number, 1)


def hour_range_of_week(week: str) -> tuple[int, int]:
    """``(first_hour, end_hour)`` of an ISO week: its 168 epoch hours, the end exclusive.

    Examples
    --------
    >>> hour_range_of_week("2016-W44")
    (410520, 410688)
    """
    monday = datetime.combine(monday_of_week(week), datetime.min.time(), tzinfo=UTC)
    first = int((monday - _EPOCH).total_seconds()) // 3600
    return first, first + HOURS_PER_WEEK


def hour_of_week(hour: int) -> int:
    """Hours since the Monday 00:00 UTC before an epoch hour (0..167).

    The epoch began on a Thursday, so Monday 00:00 is hour 96 modulo 168.

    Examples
    --------
    >>> hour_of_week(410_520 + 18)
    18
    """
    return (hour - 96) % HOURS_PER_WEEK


def parse_hour(text: str) -> int:
    """The epoch hour of ``2016-11-01T18`` (also ``...T18:00``, ``...T18:00:00Z``) or of
    a bare epoch hour ``410562``.

    Examples
    --------
    >>> parse_hour("2016-11-01T18")
    410562
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = _HOUR.fullmatch(text)
    if match is None:
        raise ValueError(f"an hour is written like 2016-11-01T18 (UTC), not {text!r}")
    year, month, day, hour = (int(g) for g in match.groups())
    try:
        start = datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid UTC hour: {exc}") from exc
    return int((start - _EPOCH).total_seconds()) // 3600


def format_hour(hour: int) -> str:
    """``2016-11-01T18``: the inverse of :func:`parse_hour`.

    Examples
    --------
    >>> format_hour(410_562)
    '2016-11-01T18'
    """
    return hour_start(hour).strftime("%Y-%m-%dT%H")
