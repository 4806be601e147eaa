"""The coverage GeoJSON drawn as SVG: pure functions, no server."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from renderer.web.coverage import coverage_view, path_data, tooltip


def _tile(level: int, index: int, **props: object) -> dict[str, object]:
    size = (4.0, 1.0, 0.25)[level]
    per_row = int(360 / size)
    west, south = -180 + (index % per_row) * size, -90 + (index // per_row) * size
    ring = [[west, south], [west + size, south], [west + size, south + size],
            [west, south + size], [west, south]]
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"tileid": index, "level": level, **props}}


@given(level=st.integers(0, 2), index=st.integers(0, 4049))
def test_every_tile_is_a_closed_path_inside_the_view(level: int, index: int) -> None:
    view = coverage_view({"type": "FeatureCollection", "features": [_tile(level, index)]})
    assert len(view.tiles) == 1
    d = view.tiles[0].d
    assert d.startswith("M") and d.endswith("Z") and d.count("L") == 3
    x0, y0, w, h = (float(v) for v in view.view_box.split())
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
    xs, ys = numbers[0::2], numbers[1::2]
    assert x0 <= min(xs) and max(xs) <= x0 + w
    assert y0 <= min(ys) and max(ys) <= y0 + h


def test_latitude_is_flipped_for_svg() -> None:
    assert path_data([[(10, 20), (11, 20), (11, 21), (10, 20)]]) == "M10 -20L11 -20L11 -21Z"


def test_coarse_tiles_draw_first_so_fine_ones_stay_visible() -> None:
    view = coverage_view({"type": "FeatureCollection",
                          "features": [_tile(1, 49862), _tile(0, 2140), _tile(2, 10)]})
    assert [t.level for t in view.tiles] == [0, 1, 2]


def test_tooltip_names_the_tile_and_its_time_range() -> None:
    text = tooltip({"tileid": 2140, "level": 0, "rangeStart": 1477872000,
                    "rangeEnd": 1478476800, "rangeStartDate": "2016-10-31 00:00:00",
                    "rangeEndDate": "2016-11-07 00:00:00", "segments": 1234, "modes": ["auto"]})
    assert text == ("tile 2140 · level 0 · 2016-10-31 00:00:00 \u2013 2016-11-07 00:00:00"
                    " · 1,234 segments · auto")
    assert "2016-10-31" in tooltip({"tileid": 1, "rangeStart": 1477872000})


def test_empty_or_odd_input_gives_an_empty_world_view() -> None:
    view = coverage_view({"type": "FeatureCollection",
                          "features": [{"type": "Feature", "geometry": None, "properties": {}},
                                       {"type": "Feature", "geometry": {"type": "Point",
                                                                        "coordinates": [0, 0]}}]})
    assert view.tiles == [] and view.bbox is None
    assert view.view_box == "-180 -90 360 180"
    assert view.grid
