"""Map tiles over HTTP (ETag, gzip, statistics merged per request) and the map page in
headless Chromium, naming the region under the pointer from the UTFGrids."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mercantile
import pytest
from playwright.sync_api import Page

from renderer.db import Database
from renderer.maptiles import features
from tests.maptiles_fixtures import connect, small_sample
from tests.test_maptiles import _render
from tests.test_pages import browser, page
from tests.test_web_server import Live, live

__all__ = ["browser", "live", "page", "small_sample"]


@pytest.fixture
def rendered(db: Database, small_sample: object, database_url: str) -> str:
    _render(database_url, 8, 11)
    return database_url


def test_tile_etag_gzip_and_statistics_per_request(live: Callable[..., Live], rendered: str,
                                                   db: Database, tmp_path: Path) -> None:
    server = live()
    t = mercantile.tile(-39.75, 38.19, 10)
    path = f"/tiles/{t.z}/{t.x}/{t.y}.json"
    first = server.get(path, headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200, first.text
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["content-type"] == "application/geo+json"
    body = first.json()  # httpx decodes the gzip
    assert body["type"] == "FeatureCollection" and body["utfgrids"]
    etag = first.headers["etag"]
    again = server.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    plain = server.client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and json.loads(plain.content) == body

    csv = tmp_path / "s.csv"
    csv.write_text("type,uid,population\nLand,1,42\n")
    with connect(db) as conn, conn.transaction():
        features.import_stats(conn, csv)
    changed = server.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    land = next(f for f in changed.json()["features"] if f["id"] == "Land-1")
    assert land["properties"]["population"] == 42

    missing = server.get("/tiles/3/0/0.json")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == 404
    assert server.get("/tiles/3/9/0.json").status_code == 404
    # the route's bytes are the tile's text, as UTF-8
    with connect(db) as conn:
        text = features.tile_json(conn, t.z, t.x, t.y)
        assert text is not None and features.tile_bytes(conn, t.z, t.x, t.y) == text.encode()
        assert features.tile_bytes(conn, 3, 0, 0) is None


@pytest.mark.browser
def test_map_page_names_the_region_under_the_pointer(live: Callable[..., Live], rendered: str,
                                                     db: Database, page: Page) -> None:
    with connect(db) as conn:
        row = conn.execute(
            "SELECT r.name, ST_X(c) AS lon, ST_Y(c) AS lat FROM regions r,"
            " ST_Transform(ST_PointOnSurface(r.merc), 4326) AS c"
            " WHERE r.key = 'Block-B0705'").fetchone()
    assert row is not None
    server = live()
    page.goto(f"{server.url}/map?z=11&lon={row['lon']}&lat={row['lat']}")
    page.wait_for_function("() => window.mapState && window.mapState.loaded > 0"
                           " && window.mapState.pending === 0")
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    text = page.locator("#region").inner_text()
    assert f"Block {row['name']}" in text, text
    assert "Ward W0000" in text  # the second hierarchy's grid names its smallest region too
    keys = page.locator("#region").get_attribute("data-keys") or ""
    assert "Block-B0705" in keys.split(",")
    assert page.console_errors == []  # type: ignore[attr-defined]
    assert page.hosts == {server.url.split("/")[2]}  # type: ignore[attr-defined]
    # a pixel of the canvas is painted (not blank)
    painted = page.evaluate("""() => { const c = document.getElementById('map');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert painted > 1000
