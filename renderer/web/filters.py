"""Jinja filters for the pages: times, durations, numbers, URLs of keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote


def when(value: Any) -> str:
    """``2026-01-05 02:05:00 UTC`` (UTC everywhere), empty for None."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def duration(value: Any) -> str:
    """Seconds (or a timedelta) as ``1h 02m``, ``3m 07s``, ``4.2s``, ``35 ms``."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def size(value: Any) -> str:
    """Bytes as ``512 B``, ``3.4 MB`` (powers of 1000), empty for None."""
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def path(value: Any) -> str:
    """A key in a URL path: each character escaped except the ``/`` separators."""
    return quote(str(value), safe="/")


def pretty_json(value: Any) -> str:
    """Indented JSON as text (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def percent(part: Any, whole: Any) -> float:
    return 0.0 if not whole else round(100.0 * float(part or 0) / float(whole), 1)


FILTERS = {"when": when, "duration": duration, "number": number, "urlpath": path,
           "percent": percent, "pretty_json": pretty_json, "bytes": size}
