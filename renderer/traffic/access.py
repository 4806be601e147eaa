"""Read speeds and reference speeds of one segment (OpenTraffic's users could not:
datastore#88). What ``renderer traffic speeds`` and ``renderer traffic reference`` print.

Example
-------
>>> segment_speeds(conn, 100680416, week="2016-W44")["hours"][18]
{'hour_of_week': 18, 'start': '2016-10-31T18:00:00Z', 'observations': 12, 'speed': 41, ...}
"""

from __future__ import annotations

from typing import Any

from renderer import tiles
from renderer.db import Connection, query
from renderer.errors import InputError
from renderer.formats.speedtiles import HOURS_PER_WEEK
from renderer.traffic import weeks
from renderer.traffic.speedtile_pack import unpack_row

__all__ = ["HOUR_FIELDS", "parse_segment_id", "segment_reference", "segment_speeds"]

HOUR_FIELDS = ("hour_of_week", "start", "observations", "speed", "mean_speed",
               "speed_variance", "prevalence", "next_segments")
"""The per-hour fields of :func:`segment_speeds`, in CSV column order."""


def parse_segment_id(value: str | int) -> int:
    """A segment id from text; InputError naming the problem.

    Examples
    --------
    >>> parse_segment_id("100680416")
    100680416
    """
    try:
        segment_id = int(value)
        tiles.segment_tile(segment_id)
    except ValueError as exc:
        raise InputError(f"{value!r} is not a segment id: {exc}",
                         "give the 46-bit id of a segment, e.g. 100680416") from exc
    return segment_id


def _iso(hour: int) -> str:
    return weeks.hour_start(hour).strftime("%Y-%m-%dT%H:%M:%SZ")


def _week(week: str) -> tuple[str, int]:
    try:
        year, number = weeks.parse_week(week)
    except ValueError as exc:
        raise InputError(str(exc), "write the ISO week like 2016-W44") from exc
    text = f"{year:04d}-W{number:02d}"
    return text, weeks.hour_range_of_week(text)[0]


def segment_speeds(conn: Connection, segment_id: int, *, week: str,
                   mode: str = "AUTO") -> dict[str, Any]:
    """One segment's week: per hour of week (all 168; 0 = no data) the speeds, prevalence
    and next segments; InputError when the week has no speeds for it."""
    week, first_hour = _week(week)
    mode = mode.upper()
    row = conn.execute(query("traffic_speedtile.segment_week"),
                       {"mode": mode, "first_hour": first_hour,
                        "segment_id": segment_id}).fetchone()
    if row is None:
        built = [f"{weeks.week_of_hour(r['first_hour'])} ({r['mode']})" for r in conn.execute(
            query("traffic_speedtile.segment_weeks"), {"segment_id": segment_id})]
        if built:
            fix = f"weeks with speeds for it: {', '.join(built[:8])}"
        else:
            # Say which it is: a week not built yet, or a segment no reporter file named.
            seen = conn.execute(query("traffic_speedtile.segment_histogram_hours"),
                                {"segment_id": segment_id, "first_hour": first_hour}).fetchone()
            if seen is not None and seen["in_week"]:
                fix = f"build the week with `renderer traffic schedule --week {week}` first"
            elif seen is not None and seen["at_all"]:
                fix = "it has observations in other weeks only; build one with " \
                      "`renderer traffic schedule --week`"
            else:
                fix = ("no reporter file ingested so far mentions this segment; check the id "
                       "(`renderer traffic histogram --tile T --hour H` lists a tile's segments)")
        raise InputError(f"no {mode} speeds for segment {segment_id} in {week}", fix)
    row = unpack_row(row)
    hours = [{"hour_of_week": h, "start": _iso(first_hour + h), "observations": 0, "speed": 0,
              "mean_speed": 0, "speed_variance": 0, "prevalence": 0, "next_segments": 0,
              "next": []} for h in range(HOURS_PER_WEEK)]
    for how, obs, speed, mean, var, prev in zip(
            row["hours"], row["observations"], row["speeds"], row["mean_speeds"],
            row["speed_variances"], row["prevalences"], strict=True):
        hours[how].update(observations=obs, speed=speed, mean_speed=mean, speed_variance=var,
                          prevalence=prev)
    for values in zip(row["next_hours"], row["next_ids"], row["next_counts"], row["delays"],
                      row["delay_variances"], row["queue_lengths"],
                      row["queue_length_variances"], strict=True):
        how, next_id, count, delay, delay_var, queue, queue_var = values
        hours[how]["next"].append({"segment_id": next_id, "observations": count,
                                   "delay": delay, "delay_variance": delay_var,
                                   "queue_length": queue, "queue_length_variance": queue_var})
        hours[how]["next_segments"] += 1
    tile = tiles.segment_tile(segment_id)
    return {"segment_id": segment_id, "mode": mode, "week": week,
            "tile": f"{tile.level}/{tile.index}", "length": row["length"],
            "min_count": row["min_count"], "range_start": first_hour * 3600,
            "range_end": (first_hour + HOURS_PER_WEEK) * 3600,
            "observations": sum(row["observations"]), "hours": hours}


def segment_reference(conn: Connection, segment_id: int, *,
                      mode: str | None = None) -> list[dict[str, Any]]:
    """One segment's reference speeds, one entry per mode (or just ``mode``): percentiles,
    the mean speed per hour of week (168 values, 0 = no data) and the range they cover;
    InputError when it has none."""
    rows = conn.execute(query("traffic_reftile.segment_reference"),
                        {"segment_id": segment_id}).fetchall()
    if mode is not None:
        rows = [r for r in rows if r["mode"] == mode.upper()]
    if not rows:
        raise InputError(f"no reference speeds for segment {segment_id}"
                         + (f" in mode {mode.upper()}" if mode else ""),
                         "reference tiles are built after its speed tiles; "
                         "see `renderer traffic speeds`")
    result = []
    for r in rows:
        hourly = [0] * HOURS_PER_WEEK
        for how, mean in zip(r["hours"], r["hourly"], strict=True):
            hourly[how] = mean
        result.append({
            "segment_id": segment_id, "mode": r["mode"],
            "reference_speeds": {"20": r["ref20"], "40": r["ref40"], "60": r["ref60"],
                                 "80": r["ref80"]},
            "hourly": hourly, "samples": r["samples"], "weeks": r["weeks"],
            "observations": r["observations"],
            "first_week": weeks.week_of_hour(r["first_hour"]),
            "last_week": weeks.week_of_hour(r["last_hour"]),
            "range_start": r["range_start"], "range_end": r["range_end"]})
    return result
