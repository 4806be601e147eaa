"""The SVG charts: pure functions, parsed back as XML; labels escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jinja2
from hypothesis import given
from hypothesis import strategies as st

from renderer.web import svg

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script> & "quoted"'


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # fails on any unescaped label


def test_heatmap_has_a_cell_per_value_coloured_by_speed_and_grey_for_no_data() -> None:
    rows = [[10.0, None, 90.0], [50.0, 50.0, None]]
    root = _parse(svg.heatmap(rows, row_labels=["Mon", "Tue"], col_labels=["0", "1", "2"],
                              lo=0, hi=90, unit="km/h"))
    cells = root.findall(f".//{SVG}rect[@class='cell']")
    assert len(cells) == 6
    fills = [c.get("fill") for c in cells]
    assert fills[0] == svg.RAMP[0] and fills[2] == svg.RAMP[-1]
    assert fills[1] == fills[5] == svg.NO_DATA
    assert [c.find(f"{SVG}title").text for c in cells][:2] == ["10 km/h", "no data"]
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"Mon", "Tue", "0", "2", "no data"} <= texts


def test_labels_and_tips_are_escaped() -> None:
    markup = svg.heatmap([[1.0]], row_labels=[EVIL], col_labels=[EVIL], lo=0, hi=1,
                         tips=[[EVIL]], label=EVIL)
    root = _parse(markup)
    assert "<script>" not in markup
    assert EVIL in {t.text for t in root.iter(f"{SVG}text")}
    assert root.get("aria-label") == EVIL
    chart = svg.line_chart([svg.Series(EVIL, [1.0, 2.0])], length=2,
                           x_ticks=svg.Ticks(1, [EVIL]), hlines=[svg.HLine(EVIL, 1)],
                           bands=[svg.Band(EVIL, 0, 1)], spans=[svg.Span(0, 1, EVIL)],
                           span_name=EVIL, y_unit=EVIL, label=EVIL)
    assert "<script>" not in chart
    _parse(chart)
    _parse(svg.sparkline([1.0], label=EVIL))


def test_jinja_inserts_svg_as_markup_and_escapes_plain_strings() -> None:
    env = jinja2.Environment(autoescape=True)
    chart = svg.sparkline([1.0, 2.0])
    assert env.from_string("{{ c }}").render(c=chart) == str(chart)
    assert env.from_string("{{ c }}").render(c=str(chart)).startswith("&lt;svg")


def test_line_chart_breaks_lines_at_missing_values() -> None:
    root = _parse(svg.line_chart([svg.Series("speed", [1.0, 2.0, None, 4.0, 5.0, None, 7.0])],
                                 length=7, x_ticks=svg.Ticks(24)))
    lines = root.findall(f".//{SVG}polyline")
    assert [len((p.get("points") or "").split()) for p in lines] == [2, 2, 1]


def test_line_chart_draws_bands_lines_spans_and_a_legend() -> None:
    root = _parse(svg.line_chart(
        [svg.Series("week", [30.0] * 168, "s0"), svg.Series("reference", [40.0] * 168, "s1")],
        length=168, x_ticks=svg.Ticks(24, ["Mon", "Tue"]), y_unit="km/h",
        hlines=[svg.HLine("p40", 35), svg.HLine("p60", 45)], bands=[svg.Band("p20-p80", 20, 60)],
        spans=[svg.Span(10, 20, "jam 10-20", "jam")], span_name="jam"))
    assert len(root.findall(f".//{SVG}line[@class='ref']")) == 2
    assert root.findall(f".//{SVG}rect[@class='band']")
    assert root.findall(f".//{SVG}rect[@class='jam']")
    legend = {t.text for t in root.find(f".//{SVG}g[@class='legend']").iter(f"{SVG}text")}
    assert legend == {"week", "reference", "p20-p80", "jam"}
    assert len(root.findall(f".//{SVG}line[@class='tick']")) == 7


@given(st.lists(st.one_of(st.none(), st.floats(0, 500)), min_size=0, max_size=200))
def test_every_point_stays_inside_the_chart(values: list[float | None]) -> None:
    width, height = 300, 120
    for markup in (svg.sparkline(values, width=width, height=height),
                   svg.line_chart([svg.Series("s", values)], length=max(len(values), 1),
                                  x_ticks=svg.Ticks(24), width=width, height=height)):
        root = _parse(markup)
        for line in root.iter(f"{SVG}polyline"):
            for point in (line.get("points") or "").split():
                x, y = (float(v) for v in point.split(","))
                assert 0 <= x <= width and 0 <= y <= height


def test_colour_steps_and_edges() -> None:
    assert svg.colour(-5, 0, 60) == svg.RAMP[0]
    assert svg.colour(1000, 0, 60) == svg.RAMP[-1]
    assert svg.colour(float("nan"), 0, 60) == svg.NO_DATA
    assert svg.colour(5, 5, 5) == svg.RAMP[-1]
    assert [svg.colour(v, 0, 60) for v in (0, 10, 20, 30, 40, 50)] == list(svg.RAMP)


def test_nice_max() -> None:
    assert [svg.nice_max(v) for v in (0.3, 1, 7, 41, 99, 101, 240)] == [
        0.5, 1.0, 10.0, 50.0, 100.0, 125.0, 250.0]


def test_y_axis_labels_are_round_steps_from_zero() -> None:
    def labels(top: float) -> list[str]:
        root = _parse(svg.line_chart([svg.Series("s", [top])], length=1, x_ticks=svg.Ticks(1)))
        return [t.text or "" for t in root.iter(f"{SVG}text")
                if t.get("text-anchor") == "end" and t.get("class") == "axis"]

    assert labels(58) == ["0", "20", "40", "60"]
    assert labels(101) == ["0", "25", "50", "75", "100", "125"]
    assert labels(0) == ["0", "1"]


def test_close_reference_lines_keep_their_labels_apart() -> None:
    root = _parse(svg.line_chart([svg.Series("s", [90.0])], length=1, x_ticks=svg.Ticks(1),
                                 hlines=[svg.HLine("p40", 92), svg.HLine("p60", 93)]))
    ys = sorted(float(t.get("y") or 0) for t in root.iter(f"{SVG}text")
                if t.get("class") == "axis hline")
    assert len(ys) == 2 and ys[1] - ys[0] >= 11


@given(st.lists(st.one_of(st.none(), st.floats(-50, 500), st.integers(-5, 300)), max_size=200),
       st.sampled_from([(40, 10, None), (144, 24, 125.0), (300, 120, 7.5)]))
def test_each_point_is_where_its_value_puts_it(
        values: list[float | None], frame: tuple[int, int, float | None]) -> None:
    """The memoised coordinates: point k of the runs is value k, clamped to [0, y_max], in
    the frame to 2 decimals; a None ends a run; a lone value is a dot."""
    width, height, y_max = frame
    root = _parse(svg.sparkline(values, width=width, height=height, y_max=y_max))
    top = y_max or max([v for v in values if v is not None] + [1.0])
    drawn = [[tuple(float(c) for c in p.split(",")) for p in (e.get("points") or "").split()]
             if e.tag == f"{SVG}polyline" else [(float(e.get("cx") or 0), float(e.get("cy") or 0))]
             for e in root if e.tag in (f"{SVG}polyline", f"{SVG}circle")]
    runs: list[list[int]] = [[]]
    for i, v in enumerate(values):
        if v is not None:
            runs[-1].append(i)
        elif runs[-1]:
            runs.append([])
    runs = [r for r in runs if r]
    assert [len(r) for r in drawn] == [len(r) for r in runs]
    for run, points in zip(runs, drawn, strict=True):
        for i, (x, y) in zip(run, points, strict=True):
            value = values[i]
            assert value is not None
            want_x = 1 + (width - 2) * i / max(len(values) - 1, 1)
            want_y = 1 + (height - 2) * (1 - min(max(value, 0.0), top) / top)
            assert abs(x - want_x) <= 0.0051 and abs(y - want_y) <= 0.0051
