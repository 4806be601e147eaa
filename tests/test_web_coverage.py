"""The coverage GeoJSON drawn as SVG: pure functions, then the page in Chromium (outlines,
graticule labels, tiles coloured by observations as the legend says)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from playwright.sync_api import Page

from renderer.web import outlines
from renderer.web.coverage import coverage_view, observation_classes, path_data, tooltip
from tests.test_pages import browser, page
from tests.test_web_server import Live, live
from tests.test_web_traffic_pages import shot

__all__ = ["browser", "live", "page"]


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


def test_graticule_labels_name_degrees_on_the_view_edges() -> None:
    view = coverage_view({"type": "FeatureCollection", "features": [_tile(0, 33 * 90 + 46)]})
    texts = [label.text for label in view.labels]
    assert "4°E" in texts and "46°N" in texts
    assert 2 <= len([t for t in texts if t.endswith(("E", "W"))]) <= 9
    x0, y0, w, h = (float(v) for v in view.view_box.split())
    for label in view.labels:
        assert x0 <= label.x <= x0 + w and y0 <= label.y <= y0 + h, label
    world = coverage_view({"type": "FeatureCollection", "features": []})
    assert {"0°", "60°W", "60°E", "60°N", "60°S"} <= {label.text for label in world.labels}


def test_outlines_of_the_countries_in_view() -> None:
    france = coverage_view({"type": "FeatureCollection", "features": [_tile(0, 33 * 90 + 46)]})
    names = {o.name for o in france.outlines}
    assert "France" in names and "Australia" not in names
    assert len(coverage_view({"type": "FeatureCollection", "features": []}).outlines) == 177


def test_packaged_outlines_match_natural_earth_as_pyogrio_ships_it() -> None:
    """The file is generated: regenerating it from pyogrio's copy changes nothing."""
    document = json.loads(outlines.OUTLINES.read_text())
    assert document == outlines.generate()
    assert outlines.OUTLINES.stat().st_size < 120_000


def test_missing_outlines_draw_none_and_say_why(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    assert outlines.load(tmp_path / "nothing.json") == ()
    assert "regenerate it" in caplog.text


def test_tiles_are_classed_by_observations_on_a_log_scale() -> None:
    assert observation_classes([]) == []
    assert observation_classes([7, 7]) == [7]
    assert observation_classes([1, 10, 100, 1000, 10000, 100000]) == [
        10, 100, 1000, 10000, 100000]
    features = [_tile(0, 3100 + i, observations=10 ** i) for i in range(5)]
    features.append(_tile(0, 3200))  # no count
    view = coverage_view({"type": "FeatureCollection", "features": features})
    by_id = {t.tileid: t.obs_class for t in view.tiles}
    assert [by_id[3100 + i] for i in range(5)] == [0, 1, 2, 3, 4] and by_id[3200] is None
    assert view.legend[0].text == "1\u20136"
    assert view.legend[-1].high == 10_000
    assert view.tiles[0].href == f"/traffic/tiles/0/{view.tiles[0].tileid}"


@pytest.mark.browser
def test_map_in_chromium_has_outlines_labels_and_coloured_tiles(
        live: Callable[..., Live], tmp_path: Path, page: Page) -> None:
    server = live()
    features = [_tile(0, 33 * 90 + 46 + i, observations=10 ** (i + 1)) for i in range(3)]
    features += [_tile(1, 134 * 360 + 185 + i, observations=5 * 10 ** i) for i in range(4)]
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    (store / "coverage.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": features}))
    page.goto(server.url + "/coverage")
    svg = page.locator("#coverage-map")
    assert svg.locator("path.land").count() >= 5
    assert svg.locator("path.land title", has_text="France").count() == 1
    labels = svg.locator("text.graticule-label").all_text_contents()
    assert "4°E" in labels and "44°N" in labels
    assert svg.locator("text.graticule-label").first.is_visible()
    swatches = {int(s.get_attribute("data-class") or -1):
                s.evaluate("e => getComputedStyle(e).backgroundColor")
                for s in page.locator("#coverage-legend .legend-obs").all()}
    assert len(set(swatches.values())) == len(swatches) >= 4
    tiles = svg.locator("path.tile")
    assert tiles.count() == len(features)
    for i in range(tiles.count()):
        tile = tiles.nth(i)
        klass = next(c for c in (tile.get_attribute("class") or "").split()
                     if c.startswith("obs-"))
        fill = tile.evaluate("e => getComputedStyle(e).fill")
        assert fill == swatches[int(klass[4:])], (klass, fill)
    assert page.console_errors == []  # type: ignore[attr-defined]
    shot(page, "coverage.png", tmp_path)


def test_the_outlines_ship_in_the_wheel_as_package_data() -> None:
    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["renderer"]
    where = outlines.OUTLINES.relative_to(root / "renderer").as_posix()
    assert any(fnmatch.fnmatch(where, g) for g in globs), (where, globs)
