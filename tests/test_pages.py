"""The pages in headless Chromium (Debian's ``chromium``, driven by Playwright; never a
downloaded browser): home -> a set -> a failed item, and a /coverage screenshot that is not
blank. Missing Chromium fails these tests: run ``scripts/install-system-deps --test``."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from renderer import queue
from renderer.db import Database
from tests.test_web_api import EVIL_ERROR, EVIL_KEY, worked
from tests.test_web_server import Live, live

__all__ = ["live", "worked"]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps --test")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page that records alerts, console errors and every host it talks to."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.alerts = []  # type: ignore[attr-defined]
    page.console_errors = []  # type: ignore[attr-defined]
    page.hosts = set()  # type: ignore[attr-defined]
    page.on("dialog", lambda d: (page.alerts.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))  # type: ignore[attr-defined]
    page.on("request", lambda r: page.hosts.add(r.url.split("/")[2]))  # type: ignore[attr-defined]
    yield page
    context.close()


def test_home_to_a_set_to_a_failed_item(live: Callable[..., Live], worked: str,
                                        page: Page) -> None:
    server = live()
    page.goto(server.url + "/")
    assert page.locator("h1").inner_text() == "Queue"
    assert "web_test" in page.locator("#kinds").inner_text()
    page.locator("a.set-link", has_text="web test <set>").click()
    page.wait_for_url("**/sets/**")
    assert "2 of 4 done" in page.locator("#set-progress").inner_text()
    failures = page.locator("#failures")
    assert "disk full" in failures.inner_text()
    assert EVIL_ERROR in failures.inner_text()  # shown as text, not run as markup
    page.locator("a.item-link", has_text="<script>").click()
    page.wait_for_url("**/items/web_test/**")
    assert EVIL_KEY in page.locator("h1").inner_text()
    assert page.locator("#item-state").inner_text() == "failed"
    assert EVIL_ERROR in page.locator("#last-error").inner_text()
    assert page.locator("#history tbody tr").count() == 1
    assert page.alerts == []  # type: ignore[attr-defined]
    assert page.console_errors == []  # type: ignore[attr-defined]
    assert page.hosts == {server.url.split("/")[2]}  # type: ignore[attr-defined]


def _tile(level: int, west: float, south: float, tileid: int) -> dict[str, object]:
    size = (4.0, 1.0, 0.25)[level]
    ring = [[west, south], [west + size, south], [west + size, south + size],
            [west, south + size], [west, south]]
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"tileid": tileid, "level": level, "rangeStart": 1477872000,
                           "rangeEnd": 1478476800, "rangeStartDate": "2016-10-31 00:00:00",
                           "rangeEndDate": "2016-11-07 00:00:00", "segments": 10 * tileid % 97,
                           "observations": 1000, "modes": ["AUTO"]}}


def test_coverage_screenshot_is_not_blank(live: Callable[..., Live], tmp_path: Path,
                                          page: Page) -> None:
    server = live()
    features = [_tile(0, 4.0 + 4 * i, 44.0, 3100 + i) for i in range(3)]
    features += [_tile(1, 5.0 + i, 45.0 + j, 49000 + 10 * i + j)
                 for i in range(4) for j in range(2)]
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    (store / "coverage.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": features}))
    page.goto(server.url + "/coverage")
    svg = page.locator("#coverage-map")
    assert svg.locator("path.tile").count() == len(features)
    tip = svg.locator("path.tile").first.locator("title").text_content() or ""
    assert "2016-10-31 00:00:00 \u2013 2016-11-07 00:00:00" in tip
    svg.locator("path.level-1").first.hover()
    assert page.locator("#tip").is_visible()
    assert "level 1" in page.locator("#tip").inner_text()
    shot = tmp_path / "coverage.png"
    svg.screenshot(path=str(shot))
    width, height, pixels = decode_png(shot.read_bytes())
    colours = {pixels[i:i + 3] for i in range(0, len(pixels), 4)}
    assert width > 300 and height > 200
    assert len(colours) >= 4, f"only {len(colours)} colours in {shot}"  # sea, grid, 2 levels
    assert page.console_errors == []  # type: ignore[attr-defined]


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGBA bytes of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        previous = line
        if channels == 3:
            for x in range(width):
                out += line[x * 3:x * 3 + 3] + b"\xff"
        else:
            out += line
    return width, height, bytes(out)


def _shot(target: Page, name: str, tmp_path: Path) -> Path:
    """A screenshot in tmp_path, or in $RENDERER_TEST_SHOTS when set (to look at them)."""
    folder = Path(os.environ.get("RENDERER_TEST_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / name
    target.screenshot(path=str(shot), full_page=True)
    return shot


def test_api_docs_render_without_a_cdn(live: Callable[..., Live], tmp_path: Path,
                                       page: Page) -> None:
    server = live()
    page.goto(server.url + "/api/docs")
    assert page.locator("h1").inner_text() == "HTTP API"
    paths = page.locator("#endpoints").inner_text()
    assert "/api/sets/{set_id}" in paths and "/hooks/" in paths
    assert page.console_errors == []  # type: ignore[attr-defined]
    assert page.hosts == {server.url.split("/")[2]}  # type: ignore[attr-defined]
    _shot(page, "api-docs.png", tmp_path)


def test_a_finished_set_says_done(live: Callable[..., Live], db: Database, tmp_path: Path,
                                  page: Page) -> None:
    with db.connect() as conn:
        conn.autocommit = True
        for key in ("a", "b", "c"):
            queue.enqueue(conn, "page_done", key, set_id="finished <set>")
        queue.complete(conn, queue.claim(conn, "page_done", limit=3))
        queue.enqueue(conn, "page_waiting", "x")  # pending, and no worker alive
        queue.rollup(conn)
    server = live()
    page.goto(server.url + "/")
    assert "Nothing is working: 1 items pending" in page.locator("#nothing-working").inner_text()
    _shot(page, "home-nothing-working.png", tmp_path)
    page.locator("a.set-link", has_text="finished <set>").first.click()
    page.wait_for_url("**/sets/**")
    status = page.locator("#set-status").inner_text()
    assert status.startswith("done in "), status
    assert "ETA" not in page.locator("p.meta").first.inner_text()
    _shot(page, "set-done.png", tmp_path)
