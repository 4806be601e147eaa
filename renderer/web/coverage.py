"""The coverage GeoJSON drawn as SVG, server-side, so the page works offline and without JS.

The page draws the default document (every level, no styling properties: see
:mod:`renderer.traffic.coverage`); its colours are the page's own: tiles are coloured by
their observations in :data:`CLASSES` classes of equal width on a log scale (the legend
names each class's range), over Natural Earth's country outlines (:mod:`.outlines`) and a
graticule labelled in degrees along the view's bottom and left edges. Each tile links to
its tile page (``/traffic/tiles/{level}/{index}``). OpenTraffic's styling
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from renderer.web.outlines import Outline, load

LEVEL_NAMES = {0: "level 0 (4°)", 1: "level 1 (1°)", 2: "level 2 (0.25°)"}
WORLD = (-180.0, -90.0, 180.0, 90.0)
CLASSES = 5  # observation classes; their colours are .obs-0 .. .obs-4 in static/charts.css


@dataclass(frozen=True)
class TileShape:
    """One tile as an SVG path with its tooltip text."""

    d: str
    level: int | None
    tileid: Any
    tooltip: str
    properties: dict[str, Any]
    obs_class: int | None = None  # None: no observation count

    @property
    def href(self) -> str | None:
        """Its tile page, when the feature names a level and a tile index."""
        if self.level is None or not isinstance(self.tileid, int):
            return None
        return f"/traffic/tiles/{self.level}/{self.tileid}"


@dataclass(frozen=True)
class Label:
    """A graticule label at (x, y) in view units."""

    x: float
    y: float
    text: str
    anchor: str


@dataclass(frozen=True)
class LegendClass:
    index: int
    low: int
    high: int

    @property
    def text(self) -> str:
        return f"{_short(self.low)}\u2013{_short(self.high)}"


@dataclass(frozen=True)
class CoverageView:
    view_box: str
    bbox: tuple[float, float, float, float] | None
    tiles: list[TileShape]
    grid: list[str]  # path data of the graticule
    stroke: float  # line width in degrees that draws as about one pixel
    labels: list[Label] = field(default_factory=list)
    font_size: float = 1.0  # of the labels, in degrees
    outlines: list[Outline] = field(default_factory=list)
    legend: list[LegendClass] = field(default_factory=list)


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


def _short(n: float) -> str:
    """``950``, ``12k``, ``3.4M``: an observation count for the legend."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.2g}{suffix}" if n < 10 * size else f"{n / size:.0f}{suffix}"
    return f"{n:.0f}"


def observation_classes(values: Sequence[int], classes: int = CLASSES) -> list[int]:
    """Upper bounds of ``classes`` classes of equal width on a log scale over ``values``
    (fewer when the values are few or equal); a value's class is the first bound >= it.

    >>> observation_classes([10, 100, 1000, 10000], 3)
    [100, 1000, 10000]
    """
    positive = sorted(v for v in values if v > 0)
    if not positive:
        return []
    lo, hi = positive[0], positive[-1]
    if lo == hi:
        return [hi]
    ratio = math.log(hi / lo)
    bounds = [round(lo * math.exp(ratio * k / classes)) for k in range(1, classes + 1)]
    bounds[-1] = hi
    return sorted(set(bounds))


def _class_of(value: Any, bounds: list[int]) -> int | None:
    if not isinstance(value, int | float) or not bounds:
        return None
    for k, bound in enumerate(bounds):
        if value <= bound:
            return k
    return len(bounds) - 1


def _degrees(value: float, positive: str, negative: str) -> str:
    text = _num(abs(value))
    return f"{text}°" if value == 0 else f"{text}°{positive if value > 0 else negative}"


def graticule_labels(view: tuple[float, float, float, float], step: float,
                     size: float) -> list[Label]:
    """Longitudes along the bottom edge of ``view``, latitudes along its left edge: on
    graticule lines, at most about 8 a side (every other line, or fewer, when dense)."""
    west, south, east, north = view
    while max(east - west, north - south) / step > 8:
        step *= 2
    labels = []
    lon = math.ceil(west / step) * step
    while lon <= east - size:
        if lon > west + 2 * size:  # leave the corner to the latitudes
            labels.append(Label(lon, -south - size * 0.4, _degrees(lon, "E", "W"), "middle"))
        lon += step
    lat = math.ceil(south / step) * step
    while lat <= north - size / 2:
        if lat > south + size:
            labels.append(Label(west + size * 0.3, -lat - size * 0.2, _degrees(lat, "N", "S"),
                                "start"))
        lat += step
    return labels


def coverage_view(geojson: dict[str, Any]) -> CoverageView:
    """Shapes, view box and graticule for a coverage FeatureCollection."""
    features = [f for f in geojson.get("features") or [] if isinstance(f, dict)]
    shaped = [(f, _rings(f.get("geometry"))) for f in features]
    shaped = [(f, rings) for f, rings in shaped if rings]
    # Larger (lower-level) tiles first so the finer ones draw on top of them.
    shaped.sort(key=lambda fr: ((fr[0].get("properties") or {}).get("level") or 0))
    bounds = observation_classes([p["observations"] for p in
                                  ((f.get("properties") or {}) for f, _ in shaped)
                                  if isinstance(p.get("observations"), int)])
    tiles = []
    for feature, rings in shaped:
        props = dict(feature.get("properties") or {})
        level = props.get("level")
        tiles.append(TileShape(path_data(rings), level if isinstance(level, int) else None,
                               props.get("tileid"), tooltip(props), props,
                               _class_of(props.get("observations"), bounds)))
    legend = [LegendClass(k, (bounds[k - 1] + 1) if k else
                          min(p["observations"] for p in (t.properties for t in tiles)
                              if isinstance(p.get("observations"), int | float)), bound)
              for k, bound in enumerate(bounds)]
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
    size = max(width, height) / 50
    return CoverageView(
        view_box=f"{_num(west)} {_num(-north)} {_num(width)} {_num(height)}",
        bbox=bbox, tiles=tiles, grid=graticule(grid_box, step),
        stroke=max(width, height) / 900,
        labels=graticule_labels((west, south, east, north), step, size), font_size=size,
        outlines=[o for o in load() if o.meets(grid_box)], legend=legend,
    )
