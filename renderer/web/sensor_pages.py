"""Sensor pages, each with a JSON twin under ``/api``: the days, a day, a detector's day.

- ``/sensors``: the enriched days (links to each day).
- ``/sensors/days/{day}``: the day's detectors ranked by jam minutes, each with a sparkline
  of its mean speed per 10 minutes; a jam minute is a UTC minute in which the detector
  reported ``trafficjamindicator = 1`` (its 2-minute mean at or below 40 km/h). Read from
  the summary the day's enrichment wrote (``sensors_day_detectors``), else aggregated.
- ``/sensors/detectors/{id}?day=2026-01-05``: the detector's speed, its 2- and 10-minute
  means and its jams (shaded) over the day as one SVG chart; without ``day`` its latest
  enriched day.

A day not enriched, or a detector without rows, is a page that says so and names what
exists (``available: false`` in the twin); a malformed id or day is a 400.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from renderer.db import Connection, query
from renderer.errors import InputError
from renderer.web import svg
from renderer.web.deps import state
from renderer.web.pages import _page

__all__ = ["day_data", "days_data", "detector_data", "router"]

router = APIRouter()
MINUTES = 24 * 60
MAX_DETECTORS = 500  # rows of a day page
MAX_DAYS = 400
HOURS = [f"{h:02d}:00" if h % 3 == 0 else "" for h in range(24)]


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise InputError(f"{text!r} is not a day", "write it as YYYY-MM-DD") from exc


def parse_detector(text: str) -> int:
    try:
        detector = int(text)
    except ValueError:
        detector = -1
    if not 0 <= detector < 2**31:
        raise InputError(f"{text!r} is not a detector id", "give its uniqueid, e.g. 1053")
    return detector


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def days_data(conn: Connection) -> dict[str, Any]:
    rows = conn.execute(query("web_sensors.days"), {"limit": MAX_DAYS}).fetchall()
    return {"days": [{"day": r["day"].isoformat(), "rows": r["enriched_rows"],
                      "enriched_at": r["enriched_at"]} for r in rows]}


def jams(indicator: list[int | None]) -> list[tuple[int, int]]:
    """The runs of jam minutes (indicator 1) as (first minute, end minute exclusive).

    >>> jams([0, 1, 1, 0, None, 1])
    [(1, 3), (5, 6)]
    """
    runs: list[tuple[int, int]] = []
    start = None
    for minute, value in enumerate([*indicator, None]):
        if value == 1 and start is None:
            start = minute
        elif value != 1 and start is not None:
            runs.append((start, minute))
            start = None
    return runs


def detector_data(conn: Connection, detector: int, day: date | None = None) -> dict[str, Any]:
    """A detector's day by minute of day (1,440 entries; None where it reported nothing):
    speed, 2- and 10-minute means, jam indicator; its jams and the days it has."""
    days = [r["day"].isoformat() for r in conn.execute(
        query("web_sensors.detector_days"), {"detector": detector, "limit": MAX_DAYS})]
    base: dict[str, Any] = {"detector": detector, "days": days}
    if day is None:
        if not days:
            return {**base, "day": None, "available": False,
                    "message": f"no enriched rows of detector {detector} on any day",
                    "fix": "check the id (`renderer sensors query` lists a detector's rows)"}
        day = date.fromisoformat(days[0])
    rows = conn.execute(query("web_sensors.detector_day"),
                        {"detector": detector, "day": day}).fetchall()
    if not rows:
        return {**base, "day": day.isoformat(), "available": False,
                "message": f"no enriched rows of detector {detector} on {day}",
                "fix": ("its days are listed below" if days else
                        "ingest and enrich its files (`renderer sensors etl`)")}
    minutes: list[dict[str, Any]] = [
        {"minute": m, "time": _clock(m), "speed": None, "mean2": None, "mean10": None,
         "jam": None} for m in range(MINUTES)]
    for r in rows:
        m = minutes[min(max(r["second"] // 60, 0), MINUTES - 1)]  # the minute's last reading
        m.update(speed=r["currentspeed"], mean2=r["avgspeed2minutes"],
                 mean10=r["avgspeed10minutes"], jam=r["trafficjamindicator"])
    runs = jams([m["jam"] for m in minutes])
    return {**base, "day": day.isoformat(), "available": True, "readings": len(rows),
            "jam_minutes": sum(end - start for start, end in runs),
            "jams": [{"from": _clock(s), "to": _clock(e), "minutes": e - s,
                      "start_minute": s, "end_minute": e} for s, e in runs],
            "minutes": minutes}


def detector_chart(data: dict[str, Any]) -> svg.Svg:
    minutes = data["minutes"]
    series = [svg.Series("speed", [m["speed"] for m in minutes], "speed"),
              svg.Series("2-minute mean", [m["mean2"] for m in minutes], "mean2"),
              svg.Series("10-minute mean", [m["mean10"] for m in minutes], "mean10")]
    spans = [svg.Span(j["start_minute"], j["end_minute"], f"jam {j['from']}-{j['to']}", "jam")
             for j in data["jams"]]
    return svg.line_chart(series, length=MINUTES, x_ticks=svg.Ticks(60, HOURS), y_unit="km/h",
                          hlines=[svg.HLine("jam at 40", 40)], spans=spans, span_name="jam",
                          label=f"speeds of detector {data['detector']} on {data['day']}")


def day_data(conn: Connection, day: date, *, limit: int = MAX_DETECTORS) -> dict[str, Any]:
    """A day's detectors ranked by jam minutes, with their speeds per 10 minutes: read from
    the summary the day's enrichment wrote (``from_summary``), else filled first."""
    info = conn.execute(query("web_sensors.day"), {"day": day}).fetchone()
    base: dict[str, Any] = {"day": day.isoformat()}
    if info is None or not info["enriched"]:
        known = [d["day"] for d in days_data(conn)["days"][:14]]
        return {**base, "available": False, "detectors": [],
                "message": f"{day} is not enriched" if info else f"no sensor rows on {day}",
                "fix": "enriched days are listed below" if known else
                       "ingest and enrich sensor files (`renderer sensors etl`)",
                "days": known}
    params = {"day": day, "limit": limit}
    rows = conn.execute(query("web_sensors.day_ranking"), params).fetchall()
    summary = bool(rows)
    if not summary:
        # no summary rows: the day was enriched by a release that did not write them (during
        # a rolling deploy its re-enrichment clears them), or it has no rows at all; the
        # page writes them by the one definition of the figures, once (about 2 s a day)
        conn.execute(query("web_sensors.day_lock"), {"day": day})
        conn.execute(query("web_sensors.day_fill"), {"day": day})
        rows = conn.execute(query("web_sensors.day_ranking"), params).fetchall()
    detectors = [{"detector": r["uniqueid"], "rank": k + 1, "jam_minutes": r["jam_minutes"],
                  "readings": r["readings"],
                  "mean_speed": None if r["mean_speed"] is None else round(r["mean_speed"], 1),
                  "lowest_mean10": r["lowest_mean10"], "first_jam": r["first_jam"],
                  "last_jam": r["last_jam"],
                  "mean_by_10_minutes": [None if v is None else round(v, 1)
                                         for v in r["mean_by_10_minutes"]]}
                 for k, r in enumerate(rows)]
    total = rows[0]["detectors"] if rows else 0
    return {**base, "available": True, "rows": info["enriched_rows"],
            "enriched_at": info["enriched_at"], "detectors_total": total,
            "shown": len(detectors), "from_summary": summary, "detectors": detectors}


# -- pages -----------------------------------------------------------------------------------

@router.get("/sensors", response_class=HTMLResponse)
def days_page(request: Request) -> HTMLResponse:
    with state(request).connection() as conn:
        data = days_data(conn)
    return _page(request, "sensors_days.html", "Sensors", "/api/sensors", data=data)


@router.get("/sensors/days/{day}", response_class=HTMLResponse)
def day_page(request: Request, day: str) -> HTMLResponse:
    parsed = parse_day(day)
    with state(request).connection() as conn:
        data = day_data(conn, parsed)
    top = max([v for d in data["detectors"] for v in d["mean_by_10_minutes"] if v is not None]
              or [1.0])
    sparks = [svg.sparkline(d["mean_by_10_minutes"], width=144, y_max=svg.nice_max(top),
                            label=f"speed of detector {d['detector']}")
              for d in data["detectors"]]
    return _page(request, "sensors_day.html", f"Sensors on {parsed}",
                 f"/api/sensors/days/{parsed}", data=data, sparks=sparks)


@router.get("/sensors/detectors/{detector}", response_class=HTMLResponse)
def detector_page(request: Request, detector: str, day: str | None = None) -> HTMLResponse:
    ident = parse_detector(detector)
    with state(request).connection() as conn:
        data = detector_data(conn, ident, parse_day(day) if day else None)
    chart = detector_chart(data) if data["available"] else None
    suffix = f"?day={data['day']}" if data["day"] else ""
    return _page(request, "sensors_detector.html", f"Detector {ident}",
                 f"/api/sensors/detectors/{ident}{suffix}", data=data, chart=chart)


# -- JSON twins ------------------------------------------------------------------------------

@router.get("/api/sensors")
def days_api(request: Request) -> dict[str, Any]:
    with state(request).connection() as conn:
        return days_data(conn)


@router.get("/api/sensors/days/{day}")
def day_api(request: Request, day: str) -> dict[str, Any]:
    parsed = parse_day(day)
    with state(request).connection() as conn:
        return day_data(conn, parsed)


@router.get("/api/sensors/detectors/{detector}")
def detector_api(request: Request, detector: str, day: str | None = None) -> dict[str, Any]:
    ident = parse_detector(detector)
    with state(request).connection() as conn:
        return detector_data(conn, ident, parse_day(day) if day else None)
