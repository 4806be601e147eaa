"""The coverage GeoJSON drawn as SVG, server-side, so the page works offline and without JS.

The page draws the default document (every level, no styling properties: see
:mod:`renderer.traffic.coverage`); its colours are the page's own. OpenTraffic's styling
properties (``fill``, ``fillOpacity``, ...), present only in documents asked for with
``--opentraffic-style``, are ignored here.

Longitude and latitude map straight to SVG x and -y (plate carrée): tiles are lon/lat
rectangles, so they stay rectangles, and the view is the data's extent with a margin. The
template writes the shapes; everything here is a pure function of the GeoJSON.

Example
-------
>>> view = coverage_view({"type": "FeatureCollection", "features": []})
>>> view.tiles
[]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LEVEL_NAMES = {0: "level 0 (4°)", 1: "level 1 (1°)", 2: "level 2 (0.25°)"}
WORLD = (-180.0, -90.0, 180.0, 90.0)


@dataclass(frozen=True)
class TileShape:
    """One tile as an SVG path with its tooltip text."""

    d: str
    level: int | None
    tileid: Any
    tooltip: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class CoverageView:
    view_box: str
    bbox: tuple[float, float, float, float] | None
    tiles: list[TileShape]
    grid: list[str]  # path data of the graticule
    stroke: float  # line width in degrees that draws as about one pixel


def _rings(geometry: dict[str, Any] | None) -> list[Sequence[Sequence[float]]]:
    if not geometry:
        return []
    if geometry.get("type") == "Polygon":
        return list(geometry.get("coordinates") or [])
    if geometry.get("type") == "MultiPolygon":
        return [ring for poly in geometry.get("coordinates") or [] for ring in poly]
    return []


def _num(v: float) -> str:
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def path_data(rings: Iterable[Sequence[Sequence[float]]]) -> str:
    """SVG path data for polygon rings of (lon, lat): x = lon, y = -lat.

    >>> path_data([[(0, 0), (1, 0), (1, 1), (0, 0)]])
    'M0 0L1 0L1 -1Z'
    """
    parts = []
    for ring in rings:
        points = [(float(p[0]), -float(p[1])) for p in ring]
        if len(points) > 1 and points[0] == points[-1]:
            points = points[:-1]
        if len(points) < 3:
            continue
        parts.append("M" + "L".join(f"{_num(x)} {_num(y)}" for x, y in points) + "Z")
    return "".join(parts)


def _date(props: dict[str, Any], name: str) -> str | None:
    if props.get(f"{name}Date"):
        return str(props[f"{name}Date"])
    value = props.get(name)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d")
    return None


def tooltip(props: dict[str, Any]) -> str:
    """``tile 2140 · level 0 · 2026-01-05 - 2026-11-23 · 812 segments · auto``.

    The dates are joined by an en dash in the text itself.
    """
    parts = [f"tile {props.get('tileid', '?')}"]
    if props.get("level") is not None:
        parts.append(f"level {props['level']}")
    start, end = _date(props, "rangeStart"), _date(props, "rangeEnd")
    if start or end:
        parts.append(f"{start or '?'} \u2013 {end or '?'}")
    for name in ("segments", "observations"):
        if props.get(name) is not None:
            parts.append(f"{props[name]:,} {name}" if isinstance(props[name], int)
                         else f"{props[name]} {name}")
    if isinstance(props.get("modes"), list):
        parts.append(", ".join(str(m) for m in props["modes"]))
    return " · ".join(parts)


def _extent(shapes: list[list[Sequence[Sequence[float]]]]) -> tuple[float, float, float, float]:
    xs = [float(p[0]) for rings in shapes for ring in rings for p in ring]
    ys = [float(p[1]) for rings in shapes for ring in rings for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def _grid_step(span: float) -> float:
    for step in (0.25, 1, 4, 10, 30):
        if span / step <= 24:
            return step
    return 60


def graticule(bbox: tuple[float, float, float, float], step: float) -> list[str]:
    west, south, east, north = bbox
    lines = []
    lon = math.floor(west / step) * step
    while lon <= east:
        lines.append(f"M{_num(lon)} {_num(-north)}V{_num(-south)}")
        lon += step
    lat = math.floor(south / step) * step
    while lat <= north:
        lines.append(f"M{_num(west)} {_num(-lat)}H{_num(east)}")
        lat += step
    return lines


def coverage_view(geojson: dict[str, Any]) -> CoverageView:
    """Shapes, view box and graticule for a coverage FeatureCollection."""
    features = [f for f in geojson.get("features") or [] if isinstance(f, dict)]
    shaped = [(f, _rings(f.get("geometry"))) for f in features]
    shaped = [(f, rings) for f, rings in shaped if rings]
    # Larger (lower-level) tiles first so the finer ones draw on top of them.
    shaped.sort(key=lambda fr: ((fr[0].get("properties") or {}).get("level") or 0))
    tiles = []
    for feature, rings in shaped:
        props = dict(feature.get("properties") or {})
        level = props.get("level")
        tiles.append(TileShape(path_data(rings), level if isinstance(level, int) else None,
                               props.get("tileid"), tooltip(props), props))
    if not shaped:
        bbox = None
        west, south, east, north = WORLD
    else:
        bbox = _extent([rings for _, rings in shaped])
        west, south, east, north = bbox
    margin = max(east - west, north - south, 1.0) * 0.08
    west, south = max(west - margin, -180.0), max(south - margin, -90.0)
    east, north = min(east + margin, 180.0), min(north + margin, 90.0)
    width, height = east - west, north - south
    step = _grid_step(max(width, height))
    # The SVG is letterboxed to keep degrees square, so the graticule covers a square
    # around the view: its lines then reach every edge whatever the page's aspect ratio.
    half = max(width, height)
    cx, cy = west + width / 2, south + height / 2
    grid_box = (max(cx - half, -180.0), max(cy - half, -90.0),
                min(cx + half, 180.0), min(cy + half, 90.0))
    return CoverageView(
        view_box=f"{_num(west)} {_num(-north)} {_num(width)} {_num(height)}",
        bbox=bbox, tiles=tiles, grid=graticule(grid_box, step),
        stroke=max(width, height) / 900,
    )
