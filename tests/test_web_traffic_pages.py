"""The traffic pages on the traffic sample, in headless Chromium and through their JSON
twins: a tile's week with sparklines -> a segment's heatmap, line chart and next segments;
and the empty cases (a segment with no data, a week not built)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from renderer import config, tiles
from renderer.db import Database
from renderer.runner import run_until_idle
from renderer.traffic import sample
from renderer.traffic.profile import PROFILE
from tests.test_pages import browser, page
from tests.test_web_server import Live, live

__all__ = ["browser", "live", "page", "shot"]

WEEK = "2016-W44"  # the sample's week
SVG = "{http://www.w3.org/2000/svg}"


def shot(target: Page, name: str, tmp_path: Path) -> Path:
    """The page's first 1,400 pixels (so the PNG stays small) in tmp_path, or in
    $RENDERER_TEST_SHOTS when set (docs/screenshots/ was made so)."""
    folder = Path(os.environ.get("RENDERER_TEST_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    height = min(int(target.evaluate("document.documentElement.scrollHeight")), 1400)
    target.screenshot(path=str(path), full_page=True,
                      clip={"x": 0, "y": 0, "width": 1000, "height": height})
    assert path.stat().st_size > 5_000  # not blank
    return path


def _built(db: Database, tmp_path: Path) -> dict[str, Any]:
    """The sample (one tile, one day) through the whole pipeline; its busiest segment."""
    made = sample.generate(tmp_path / "sample", tiles=1, days=1, seed=7)
    summary = run_until_idle(db.url, PROFILE, {"source": str(made.root), "after": "keep"},
                             settings=config.load(), processes=None)
    assert summary.items_failed == 0 and summary.speed_tiles >= 1
    with db.connect() as conn:
        row = conn.execute(
            "SELECT segment_id, mode FROM traffic_speeds s WHERE length(nexts) > 0"
            " AND EXISTS (SELECT 1 FROM traffic_reference r WHERE r.segment_id = s.segment_id"
            " AND r.mode = s.mode) ORDER BY cardinality(hours) DESC, segment_id LIMIT 1"
        ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def built(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("RENDERER_DATABASE_URL", db.url)
    monkeypatch.setenv("RENDERER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RENDERER_STORAGE", (tmp_path / "store").as_uri())
    return _built(db, tmp_path)


def test_tile_week_to_segment_in_chromium(live: Callable[..., Live], built: dict[str, Any],
                                          page: Page, tmp_path: Path) -> None:
    server = live()
    segment_id, mode = built["segment_id"], built["mode"]
    tile = tiles.segment_tile(segment_id)
    page.goto(f"{server.url}/traffic/tiles/{tile.level}/{tile.index}")
    page.locator("a.week-link", has_text=WEEK).first.click()
    page.wait_for_url(f"**/traffic/tiles/{tile.level}/{tile.index}/{WEEK}**")
    rows = page.locator("#segments tbody tr")
    assert rows.count() > 10
    assert page.locator("#segments svg.sparkline polyline").count() >= rows.count() // 2
    twin = server.get(f"/api/traffic/tiles/{tile.level}/{tile.index}/{WEEK}",
                      params={"mode": mode}).json()
    assert twin["available"] and len(twin["segments"]) == twin["shown"]
    assert all(len(s["speeds"]) == 168 for s in twin["segments"])
    shot(page, "traffic-tile-week.png", tmp_path)

    page.goto(f"{server.url}/traffic/segments/{segment_id}?mode={mode}")
    assert str(segment_id) in page.locator("h1").inner_text()
    data = server.get(f"/api/traffic/segments/{segment_id}", params={"mode": mode}).json()
    assert data["available"] and data["week"] == WEEK and len(data["hours"]) == 168
    cells = page.locator("#speed-heatmap rect.cell")
    assert cells.count() == 7 * 24
    with_data = [h for h in data["hours"] if h["observations"]]
    # a cell of an hour with data carries its speed, the others say "no data"
    first = with_data[0]
    tip = cells.nth(first["hour_of_week"]).locator("title").text_content() or ""
    assert f"{first['speed']} km/h" in tip
    empty = next(h for h in data["hours"] if not h["observations"])
    assert "no data" in (cells.nth(empty["hour_of_week"]).locator("title").text_content() or "")
    line = page.locator("#speed-line svg")
    assert line.locator("polyline.s0").count() >= 1
    assert line.locator(":scope > rect.band").count() == 1  # the reference p20-p80
    assert line.locator("line.ref").count() == 2  # p40, p60
    ET.fromstring(line.evaluate("e => e.outerHTML"))  # well-formed
    nexts = page.locator("#next-segments a.segment-link")
    assert nexts.count() == len([n for n in data["next_segments"] if n["segment_id"]]) > 0
    shot(page, "traffic-segment.png", tmp_path)
    nexts.first.click()
    page.wait_for_url("**/traffic/segments/**")
    assert page.locator("h1").inner_text() != f"Segment {segment_id}"
    assert page.console_errors == []  # type: ignore[attr-defined]
    assert page.hosts == {server.url.split("/")[2]}  # type: ignore[attr-defined]


def test_coverage_links_to_tile_pages(live: Callable[..., Live], built: dict[str, Any],
                                      page: Page) -> None:
    server = live()
    page.goto(f"{server.url}/coverage")
    link = page.locator("#coverage-map a").first
    href = link.get_attribute("href") or ""
    assert href.startswith("/traffic/tiles/")
    page.goto(server.url + href)
    assert page.locator("#tile-weeks a.week-link").count() >= 1


def test_empty_cases_say_what_exists(live: Callable[..., Live], built: dict[str, Any],
                                     page: Page, tmp_path: Path) -> None:
    server = live()
    segment_id, mode = built["segment_id"], built["mode"]
    tile = tiles.segment_tile(segment_id)
    # a segment of the same tile that no file mentioned
    nobody = tiles.segment_id(tile, 2**20)
    page.goto(f"{server.url}/traffic/segments/{nobody}")
    assert "no AUTO speeds for segment" in page.locator("#no-data").inner_text()
    assert page.locator("#speed-heatmap").count() == 0
    twin = server.get(f"/api/traffic/segments/{nobody}").json()
    assert twin["available"] is False and twin["weeks"] == []
    shot(page, "traffic-segment-no-data.png", tmp_path)
    # a week not built, for the segment and for its tile
    page.goto(f"{server.url}/traffic/segments/{segment_id}?week=2016-W50&mode={mode}")
    text = page.locator("#no-data").inner_text()
    assert "2016-W50" in text
    assert page.locator("#segment-weeks a", has_text=WEEK).count() >= 1
    page.goto(f"{server.url}/traffic/tiles/{tile.level}/{tile.index}/2016-W50")
    assert "not" in page.locator("#no-data").inner_text() or "no" in page.locator(
        "#no-data").inner_text()
    assert page.locator("p.weeks a", has_text=WEEK).count() >= 1
    twin = server.get(f"/api/traffic/tiles/{tile.level}/{tile.index}/2016-W50").json()
    assert twin["available"] is False and twin["segments"] == []
    shot(page, "traffic-tile-week-not-built.png", tmp_path)
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_bad_ids_are_400_in_the_one_error_shape(live: Callable[..., Live]) -> None:
    server = live()
    for path in ("/api/traffic/segments/banana", "/api/traffic/tiles/3/0",
                 "/api/traffic/tiles/0/99999", "/api/traffic/tiles/0/1/2016-W99",
                 "/api/traffic/segments/100680416?mode=a;b"):
        answer = server.get(path)
        assert answer.status_code == 400, (path, answer.text)
        assert set(answer.json()) == {"error"}
