"""Charts drawn as SVG on the server: a heatmap, a line chart, a sparkline, a colour ramp.

Pure functions of their values, so the pages work offline, without JavaScript and under the
service's Content-Security-Policy (no inline ``style``: colours are presentation attributes
and CSS classes). Every label is escaped here: segment names, detector ids and axis texts
may be user data. Each function returns :class:`Svg`, a ``str`` that Jinja's autoescape
inserts as markup (it has ``__html__``), so templates write ``{{ chart }}`` without
``| safe``.

Example
-------
>>> str(sparkline([1, 3, None, 2], width=40, height=10))[:36]
'<svg class="sparkline" xmlns="http:/'
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["RAMP", "Band", "HLine", "Series", "Span", "Svg", "Ticks", "colour", "heatmap",
           "line_chart", "nice_max", "sparkline"]

NS = 'xmlns="http://www.w3.org/2000/svg"'
RAMP = ("#b2182b", "#ef8a62", "#fddbc7", "#d1e5f0", "#67a9cf", "#2166ac")
"""Slow (red) to fast (blue), colour-blind safe (ColorBrewer RdBu); a speed's colour."""
NO_DATA = "#e5e7eb"


class Svg(str):
    """SVG markup built here from escaped parts: Jinja inserts it as it is."""

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


def _n(v: float) -> str:
    """A coordinate, short: 2 decimals at most, no trailing zeros."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _text(x: float, y: float, label: str, cls: str, anchor: str = "middle") -> str:
    return (f'<text class="{cls}" x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}">'
            f"{escape(label)}</text>")


def colour(value: float | None, lo: float, hi: float, ramp: Sequence[str] = RAMP) -> str:
    """The ramp's colour of ``value`` on [lo, hi] in equal steps; grey for no data.

    >>> colour(0, 0, 100), colour(100, 0, 100), colour(None, 0, 100)
    ('#b2182b', '#2166ac', '#e5e7eb')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_DATA
    if hi <= lo:
        return ramp[-1]
    step = (value - lo) / (hi - lo) * len(ramp)
    return ramp[min(len(ramp) - 1, max(0, int(step)))]


def nice_max(value: float) -> float:
    """A round number at or above ``value`` for an axis top (1, 2, 2.5, 5 times 10^k).

    >>> nice_max(87), nice_max(120), nice_max(0)
    (100.0, 125.0, 1.0)
    """
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for m in (1, 1.25, 2, 2.5, 5, 10):
        if value <= m * power:
            return float(m * power)
    return float(10 * power)


def _tick_step(value: float) -> float:
    """A step between axis labels at or above ``value``: 1, 2, 2.5 or 5 times 10^k."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if value <= m * power))


def heatmap(rows: Sequence[Sequence[float | None]], *, row_labels: Sequence[str],
            col_labels: Sequence[str], lo: float, hi: float, unit: str = "",
            tips: Sequence[Sequence[str]] | None = None, cell: int = 22,
            label: str = "heatmap", ramp: Sequence[str] = RAMP) -> Svg:
    """A grid of coloured cells (rows x columns), labelled on the left and on top, with a
    legend of the ramp below; None cells are grey. ``tips`` (same shape) become tooltips.
    """
    left, top = 44, 18
    ncols = max((len(r) for r in rows), default=0)
    width = left + ncols * cell + 2
    legend_y = top + len(rows) * cell + 10
    height = legend_y + 30
    parts = [f'<svg class="chart heatmap" {NS} viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">']
    for j, text in enumerate(col_labels[:ncols]):
        if text:
            parts.append(_text(left + j * cell + cell / 2, top - 5, text, "axis"))
    for i, row in enumerate(rows):
        y = top + i * cell
        parts.append(_text(left - 6, y + cell * 0.65, row_labels[i] if i < len(row_labels)
                           else "", "axis", "end"))
        for j, value in enumerate(row):
            tip = tips[i][j] if tips is not None else (
                "no data" if value is None else f"{value:g} {unit}".strip())
            parts.append(f'<rect class="cell" x="{left + j * cell}" y="{y}" width="{cell - 1}" '
                         f'height="{cell - 1}" fill="{colour(value, lo, hi, ramp)}">'
                         f"<title>{escape(tip)}</title></rect>")
    parts.append(_legend(left, legend_y, lo, hi, unit, ramp))
    parts.append("</svg>")
    return Svg("".join(parts))


def _legend(x: float, y: float, lo: float, hi: float, unit: str,
            ramp: Sequence[str]) -> str:
    parts = ['<g class="legend">']
    step = (hi - lo) / len(ramp)
    for k, c in enumerate(ramp):
        parts.append(f'<rect x="{_n(x + k * 44)}" y="{_n(y)}" width="44" height="10" '
                     f'fill="{c}"></rect>')
        parts.append(_text(x + k * 44, y + 22, f"{lo + k * step:g}", "axis", "start"))
    parts.append(_text(x + len(ramp) * 44, y + 22, f"{hi:g} {unit}".strip(), "axis", "start"))
    parts.append(f'<rect x="{_n(x + len(ramp) * 44 + 50)}" y="{_n(y)}" width="12" height="10" '
                 f'fill="{NO_DATA}"></rect>')
    parts.append(_text(x + len(ramp) * 44 + 66, y + 9, "no data", "axis", "start"))
    parts.append("</g>")
    return "".join(parts)


@dataclass(frozen=True)
class Series:
    """A line: y values at x = 0, 1, 2, ...; None breaks the line (no data)."""

    name: str
    values: Sequence[float | None]
    cls: str = "s0"


@dataclass(frozen=True)
class HLine:
    """A horizontal reference line at ``y``, labelled at the right."""

    name: str
    y: float
    cls: str = "ref"


@dataclass(frozen=True)
class Band:
    """A shaded horizontal band between two y values (e.g. the 20th to 80th percentile)."""

    name: str
    lo: float
    hi: float
    cls: str = "band"


@dataclass(frozen=True)
class Span:
    """A shaded vertical stretch from x ``start`` to ``end`` (exclusive), e.g. a jam."""

    start: int
    end: int
    title: str = ""
    cls: str = "span"


@dataclass(frozen=True)
class _Frame:
    left: float
    top: float
    width: float
    height: float
    xmax: float
    ymax: float

    def x(self, i: float) -> float:
        return self.left + self.width * i / self.xmax

    def y(self, v: float) -> float:
        return self.top + self.height * (1 - min(max(v, 0.0), self.ymax) / self.ymax)


def _polylines(values: Sequence[float | None], frame: _Frame) -> list[str]:
    """Point lists of the unbroken runs of ``values`` (a lone point stays a dot). The
    coordinates' text is memoised by frame: a day page draws 500 sparklines of 144 points in
    one frame, speeds rounded to 0.1 km/h, and formatting was most of its 270 ms."""
    xs = _xs(frame, len(values))
    ys = _ys(frame)
    if len(ys) > 65_536:  # unrounded values: bounded, not a cache that grows with the page
        ys.clear()
    runs: list[str] = []
    run: list[str] = []
    for x, v in zip(xs, values, strict=True):
        if v is None:
            if run:
                runs.append(" ".join(run))
                run = []
            continue
        y = ys.get(v)
        if y is None:
            y = ys[v] = _n(frame.y(v))
        run.append(f"{x},{y}")
    if run:
        runs.append(" ".join(run))
    return runs


@functools.lru_cache(maxsize=16)
def _xs(frame: _Frame, n: int) -> tuple[str, ...]:
    return tuple(_n(frame.x(i)) for i in range(n))


@functools.lru_cache(maxsize=16)
def _ys(frame: _Frame) -> dict[float, str]:
    return {}


@dataclass(frozen=True)
class Ticks:
    """x-axis ticks: a label every ``every`` steps, starting at 0."""

    every: int
    labels: Sequence[str] = field(default_factory=tuple)


def line_chart(series: Sequence[Series], *, length: int, x_ticks: Ticks,
               y_unit: str = "", hlines: Sequence[HLine] = (), bands: Sequence[Band] = (),
               spans: Sequence[Span] = (), span_name: str = "", width: int = 900,
               height: int = 260,
               y_max: float | None = None, label: str = "line chart") -> Svg:
    """Lines over x = 0..length-1 with a y axis from 0, optional reference lines, bands and
    shaded x spans (named ``span_name`` in the legend), and a legend naming every series
    and band; the reference lines are named at the right."""
    top_value = max([*(v for s in series for v in s.values if v is not None),
                     *(h.y for h in hlines), *(b.hi for b in bands), 0.0])
    step = y_max / 4 if y_max else _tick_step(top_value / 5)
    ticks = max(1, math.ceil((y_max or top_value) / step))
    frame = _Frame(left=44, top=22, width=width - 44 - 56, height=height - 22 - 46,
                   xmax=max(length - 1, 1), ymax=step * ticks)
    parts = [f'<svg class="chart line-chart" {NS} viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">']
    for sp in spans:
        x0, x1 = frame.x(sp.start), frame.x(min(sp.end, length - 1))
        parts.append(f'<rect class="{sp.cls}" x="{_n(x0)}" y="{_n(frame.top)}" '
                     f'width="{_n(max(x1 - x0, 1.0))}" height="{_n(frame.height)}">'
                     f"<title>{escape(sp.title)}</title></rect>")
    for b in bands:
        y0, y1 = frame.y(b.hi), frame.y(b.lo)
        parts.append(f'<rect class="{b.cls}" x="{_n(frame.left)}" y="{_n(y0)}" '
                     f'width="{_n(frame.width)}" height="{_n(y1 - y0)}">'
                     f"<title>{escape(b.name)}</title></rect>")
    for k in range(ticks + 1):  # y grid and labels
        v = step * k
        y = frame.y(v)
        parts.append(f'<line class="grid" x1="{_n(frame.left)}" x2="{_n(frame.left + frame.width)}"'
                     f' y1="{_n(y)}" y2="{_n(y)}"></line>')
        parts.append(_text(frame.left - 5, y + 4, f"{v:g}", "axis", "end"))
    if y_unit:
        parts.append(_text(frame.left - 5, frame.top - 10, y_unit, "axis unit", "end"))
    for i in range(0, length, max(x_ticks.every, 1)):
        x = frame.x(i)
        parts.append(f'<line class="tick" x1="{_n(x)}" x2="{_n(x)}" y1="{_n(frame.top)}" '
                     f'y2="{_n(frame.top + frame.height + 4)}"></line>')
        k = i // max(x_ticks.every, 1)
        if k < len(x_ticks.labels) and x_ticks.labels[k]:
            parts.append(_text(x, frame.top + frame.height + 16, x_ticks.labels[k], "axis",
                               "start"))
    label_y = -math.inf
    for h in sorted(hlines, key=lambda h: -h.y):  # top first; close labels pushed apart
        y = frame.y(h.y)
        parts.append(f'<line class="{h.cls}" x1="{_n(frame.left)}" '
                     f'x2="{_n(frame.left + frame.width)}" y1="{_n(y)}" y2="{_n(y)}">'
                     f"<title>{escape(h.name)}: {h.y:g} {escape(y_unit)}</title></line>")
        label_y = max(y + 4, label_y + 11)
        parts.append(_text(frame.left + frame.width + 4, label_y, h.name, "axis hline", "start"))
    for s in series:
        for points in _polylines(s.values, frame):
            parts.append(f'<polyline class="line {s.cls}" points="{points}">'
                         f"<title>{escape(s.name)}</title></polyline>")
    parts.append(_line_legend(series, bands, span_name if spans else "", spans[0].cls if spans
                              else "", frame.left, height - 12))
    parts.append("</svg>")
    return Svg("".join(parts))


def _line_legend(series: Sequence[Series], bands: Sequence[Band], span_name: str,
                 span_cls: str, x: float, y: float) -> str:
    parts = ['<g class="legend">']
    entries = [(s.name, f"line {s.cls}", "line") for s in series]
    entries += [(b.name, b.cls, "box") for b in bands]
    if span_name:
        entries.append((span_name, span_cls, "box"))
    for name, cls, shape in entries:
        if shape == "line":
            parts.append(f'<line class="{cls}" x1="{_n(x)}" x2="{_n(x + 18)}" y1="{_n(y - 4)}" '
                         f'y2="{_n(y - 4)}"></line>')
        else:
            parts.append(f'<rect class="{cls}" x="{_n(x)}" y="{_n(y - 9)}" width="18" '
                         f'height="10"></rect>')
        parts.append(_text(x + 22, y, name, "axis", "start"))
        x += 30 + 7 * len(name)
    parts.append("</g>")
    return "".join(parts)


def sparkline(values: Sequence[float | None], *, width: int = 168, height: int = 24,
              y_max: float | None = None, label: str = "sparkline") -> Svg:
    """A small line of ``values`` (None = gap) from 0 to ``y_max`` (default: their max)."""
    present = [v for v in values if v is not None]
    frame = _Frame(left=1, top=1, width=width - 2, height=height - 2,
                   xmax=max(len(values) - 1, 1), ymax=y_max or max([*present, 1.0]))
    parts = [f'<svg class="sparkline" {NS} viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(label)}">']
    for points in _polylines(values, frame):
        if " " in points:
            parts.append(f'<polyline points="{points}"></polyline>')
        else:
            x, y = points.split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="1"></circle>')
    parts.append("</svg>")
    return Svg("".join(parts))
