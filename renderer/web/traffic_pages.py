"""Traffic pages, each with a JSON twin under ``/api``: a segment, a tile, a tile's week.

- ``/traffic/segments/{id}?week=2016-W44&mode=AUTO``: the week's speed per hour of week as
  a 7 x 24 heatmap (Monday first, UTC), the same speeds as a line chart against the
  segment's reference percentiles (the 20th-80th band, the 40th and 60th as lines) and its
  reference hourly means, and the next segments it leads to, each a link to its own page.
  Without ``week``: the latest week with speeds of that mode.
- ``/traffic/tiles/{level}/{index}``: the weeks built for a tile (links to each week).
- ``/traffic/tiles/{level}/{index}/{week}?mode=AUTO``: the tile's segments that week, each
  with a sparkline of its speeds over the week's 168 hours.

A segment without speeds, or a week not built, is a page that says so and names what exists
(``available: false`` in the twin), not an error: both are normal states of a store being
filled. A malformed id, tile or week is a 400 in the service's one error shape.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from renderer import tiles
from renderer.db import Connection, query
from renderer.errors import InputError
from renderer.formats.speedtiles import HOURS_PER_WEEK
from renderer.traffic import access, weeks
from renderer.web import svg
from renderer.web.deps import state
from renderer.web.pages import _page

__all__ = ["router", "segment_data", "tile_data", "tile_week_data"]

router = APIRouter()
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MAX_SEGMENTS = 500  # rows of a tile-week page (a level-0 tile of a city has thousands)
SPEED_SCALE = (0.0, 120.0)  # km/h: the heatmap's colour range, the same on every page


def _mode(mode: str) -> str:
    mode = mode.strip().upper()
    if not mode.isalnum() or len(mode) > 32:
        raise InputError(f"mode {mode!r} is not a travel mode", "use e.g. AUTO, BUS")
    return mode


def _tile(level: int, index: int) -> tiles.Tile:
    try:
        t = tiles.Tile(level, index)
        tiles.bounds(t)
    except ValueError as exc:
        raise InputError(f"no tile {level}/{index}: {exc}") from exc
    return t


def _hourly(values: list[int], present: list[bool]) -> list[float | None]:
    return [float(v) if ok else None for v, ok in zip(values, present, strict=True)]


def _next_segments(hours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The week's next segments summed over its hours, most observed first."""
    sums: dict[int | None, dict[str, Any]] = defaultdict(
        lambda: {"observations": 0, "hours": 0, "delay_sum": 0})
    for hour in hours:
        for n in hour["next"]:
            s = sums[n["segment_id"]]
            s["observations"] += n["observations"]
            s["hours"] += 1
            s["delay_sum"] += n["delay"] * n["observations"]
    rows = [{"segment_id": sid, "observations": s["observations"], "hours": s["hours"],
             "mean_delay": round(s["delay_sum"] / s["observations"]) if s["observations"]
             else None,
             "tile": (None if sid is None else
                      "{}/{}".format(*tiles.segment_tile(sid)))}
            for sid, s in sums.items()]
    return sorted(rows, key=lambda r: (-r["observations"], r["segment_id"] is None,
                                       r["segment_id"] or 0))


def segment_data(conn: Connection, segment_id: int, *, week: str | None = None,
                 mode: str = "AUTO") -> dict[str, Any]:
    """What the segment page shows, as JSON: its weeks, the week's 168 hours (speed 0 and
    observations 0 = no data), its reference speeds and its next segments."""
    mode = _mode(mode)
    t = tiles.segment_tile(segment_id)
    built = [{"week": weeks.week_of_hour(r["first_hour"]), "mode": r["mode"],
              "hours_with_data": r["hours_with_data"]}
             for r in conn.execute(query("web_traffic.segment_weeks"),
                                   {"segment_id": segment_id})]
    base: dict[str, Any] = {"segment_id": segment_id, "mode": mode,
                            "tile": {"level": t.level, "index": t.index},
                            "segment_index": tiles.segment_index(segment_id), "weeks": built}
    if week is None:
        of_mode = [b["week"] for b in built if b["mode"] == mode]
        if not of_mode:
            return {**base, "week": None, "available": False,
                    "message": f"no {mode} speeds for segment {segment_id} in any week",
                    "fix": _no_week_fix(built, mode)}
        week = of_mode[0]
    week, _ = access._week(week)
    try:
        speeds = access.segment_speeds(conn, segment_id, week=week, mode=mode)
    except InputError as exc:
        return {**base, "week": week, "available": False, "message": exc.message,
                "fix": exc.fix}
    try:
        reference = access.segment_reference(conn, segment_id, mode=mode)[0]
    except InputError:
        reference = None
    return {**base, "week": week, "available": True, "length": speeds["length"],
            "min_count": speeds["min_count"], "observations": speeds["observations"],
            "range_start": speeds["range_start"], "range_end": speeds["range_end"],
            "hours": [{k: v for k, v in h.items() if k != "next"} for h in speeds["hours"]],
            "reference": reference, "next_segments": _next_segments(speeds["hours"])}


def _no_week_fix(built: list[dict[str, Any]], mode: str) -> str:
    modes = sorted({b["mode"] for b in built})
    if modes:
        return f"it has speeds in other modes: {', '.join(modes)}"
    return ("no built week has speeds for it: check the id, or build its week with "
            "`renderer traffic schedule --week W`")


def segment_charts(data: dict[str, Any]) -> dict[str, svg.Svg]:
    """The heatmap and the line chart of :func:`segment_data`'s week."""
    hours = data["hours"]
    present = [h["observations"] > 0 for h in hours]
    speeds = _hourly([h["speed"] for h in hours], present)
    tips = [[_tip(hours[d * 24 + h]) for h in range(24)] for d in range(7)]
    heat = svg.heatmap([speeds[d * 24:(d + 1) * 24] for d in range(7)], row_labels=DAYS,
                       col_labels=[str(h) if h % 3 == 0 else "" for h in range(24)],
                       lo=SPEED_SCALE[0], hi=SPEED_SCALE[1], unit="km/h", tips=tips,
                       label=f"speeds of segment {data['segment_id']} in {data['week']}")
    series = [svg.Series(f"speed {data['week']}", speeds, "s0")]
    bands: list[svg.Band] = []
    hlines: list[svg.HLine] = []
    ref = data.get("reference")
    if ref is not None:
        r = ref["reference_speeds"]
        bands.append(svg.Band("reference p20-p80", r["20"], r["80"]))
        hlines += [svg.HLine("p40", r["40"]), svg.HLine("p60", r["60"])]
        series.insert(0, svg.Series("reference hourly mean",  # under the week's line
                                    [float(v) if v else None for v in ref["hourly"]], "s1"))
    line = svg.line_chart(series, length=HOURS_PER_WEEK, x_ticks=svg.Ticks(24, DAYS),
                          y_unit="km/h", hlines=hlines, bands=bands,
                          label=f"speed by hour of segment {data['segment_id']}")
    return {"heatmap": heat, "line": line}


def _tip(hour: dict[str, Any]) -> str:
    day, h = divmod(hour["hour_of_week"], 24)
    when = f"{DAYS[day]} {h:02d}:00-{h + 1:02d}:00 UTC"
    if not hour["observations"]:
        return f"{when}: no data"
    return f"{when}: {hour['speed']} km/h, {hour['observations']} observations"


def tile_data(conn: Connection, level: int, index: int) -> dict[str, Any]:
    """The weeks built for a tile, every mode, latest first."""
    t = _tile(level, index)
    rows = conn.execute(query("web_traffic.tile_weeks"),
                        {"level": t.level, "tile_index": t.index}).fetchall()
    return {"tile": {"level": t.level, "index": t.index, "bounds": tiles.bounds(t)},
            "weeks": [{k: r[k] for k in ("mode", "week", "total_segments", "segments",
                                         "observations", "min_count", "built_at")}
                      for r in rows]}


def tile_week_data(conn: Connection, level: int, index: int, week: str, *,
                   mode: str = "AUTO", limit: int = MAX_SEGMENTS) -> dict[str, Any]:
    """A tile's segments in a week: per segment its 168 hourly speeds (None = no data),
    observations, length and observation-weighted mean speed."""
    mode = _mode(mode)
    week, first_hour = access._week(week)  # the parsing `traffic speeds` does
    info = tile_data(conn, level, index)
    t = tiles.Tile(level, index)
    built = next((w for w in info["weeks"] if w["week"] == week and w["mode"] == mode), None)
    base = {"tile": info["tile"], "week": week, "mode": mode,
            "weeks": [{"week": w["week"], "mode": w["mode"]} for w in info["weeks"]]}
    if built is None:
        return {**base, "available": False, "segments": [],
                "message": f"no {mode} speed tile {level}/{index} built for {week}",
                "fix": ("built weeks of this tile are listed below" if info["weeks"] else
                        f"build it with `renderer traffic schedule --week {week}`")}
    rows = conn.execute(query("web_traffic.tile_week_segments"),
                        {"mode": mode, "first_hour": first_hour,
                         "tile_id": tiles.tile_id(t), "limit": limit}).fetchall()
    segments = []
    for r in rows:
        speeds: list[float | None] = [None] * HOURS_PER_WEEK
        for how, speed in zip(r["hours"], r["speeds"], strict=True):
            speeds[how] = float(speed)
        obs = sum(r["observations"])
        mean = (sum(s * o for s, o in zip(r["speeds"], r["observations"], strict=True)) / obs
                if obs else None)
        segments.append({"segment_id": r["segment_id"], "segment_index": r["segment_index"],
                         "length": r["length"], "observations": obs,
                         "hours_with_data": len(r["hours"]),
                         "mean_speed": None if mean is None else round(mean, 1),
                         "speeds": speeds})
    return {**base, "available": True, "segments": segments,
            "segments_built": built["segments"], "observations": built["observations"],
            "shown": len(segments), "truncated": built["segments"] > len(segments)}


def _query_string(**params: str | None) -> str:
    given = {k: v for k, v in params.items() if v}
    return "?" + urlencode(given) if given else ""


# -- pages -----------------------------------------------------------------------------------

@router.get("/traffic/segments/{segment_id}", response_class=HTMLResponse)
def segment_page(request: Request, segment_id: str, week: str | None = None,
                 mode: str = "AUTO") -> HTMLResponse:
    sid = access.parse_segment_id(segment_id)
    with state(request).connection() as conn:
        data = segment_data(conn, sid, week=week or None, mode=mode)
    charts = segment_charts(data) if data["available"] else {}
    return _page(request, "traffic_segment.html", f"Segment {sid}",
                 f"/api/traffic/segments/{sid}" + _query_string(week=week, mode=mode),
                 data=data, charts=charts)


@router.get("/traffic/tiles/{level}/{index}", response_class=HTMLResponse)
def tile_page(request: Request, level: int, index: int) -> HTMLResponse:
    with state(request).connection() as conn:
        data = tile_data(conn, level, index)
    return _page(request, "traffic_tile.html", f"Tile {level}/{index}",
                 f"/api/traffic/tiles/{level}/{index}", data=data)


@router.get("/traffic/tiles/{level}/{index}/{week}", response_class=HTMLResponse)
def tile_week_page(request: Request, level: int, index: int, week: str,
                   mode: str = "AUTO") -> HTMLResponse:
    with state(request).connection() as conn:
        data = tile_week_data(conn, level, index, week, mode=mode)
    top = max([s for seg in data["segments"] for s in seg["speeds"] if s is not None] or [1.0])
    sparks = [svg.sparkline(seg["speeds"], y_max=svg.nice_max(top),
                            label=f"speeds of segment {seg['segment_id']}")
              for seg in data["segments"]]
    return _page(request, "traffic_tile_week.html", f"Tile {level}/{index} in {data['week']}",
                 f"/api/traffic/tiles/{level}/{index}/{data['week']}"
                 + _query_string(mode=mode), data=data, sparks=sparks)


# -- JSON twins ------------------------------------------------------------------------------

@router.get("/api/traffic/segments/{segment_id}")
def segment_api(request: Request, segment_id: str, week: str | None = None,
                mode: str = "AUTO") -> dict[str, Any]:
    sid = access.parse_segment_id(segment_id)
    with state(request).connection() as conn:
        return segment_data(conn, sid, week=week or None, mode=mode)


@router.get("/api/traffic/tiles/{level}/{index}")
def tile_api(request: Request, level: int, index: int) -> dict[str, Any]:
    with state(request).connection() as conn:
        return tile_data(conn, level, index)


@router.get("/api/traffic/tiles/{level}/{index}/{week}")
def tile_week_api(request: Request, level: int, index: int, week: str,
                  mode: str = "AUTO") -> dict[str, Any]:
    with state(request).connection() as conn:
        return tile_week_data(conn, level, index, week, mode=mode)
