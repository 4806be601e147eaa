"""``GET /api/tracks`` on a real server (streamed, chunked, paged by a cursor token, errors in
the one shape) and the ``/tracks`` page in headless Chromium drawing one line per vessel."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

from renderer.db import Database
from renderer.tracks import sample
from renderer.tracks.formats import Report
from renderer.tracks.ingest import ingest
from renderer.tracks.query import Query, run
from tests.test_pages import browser, decode_png, page
from tests.test_web_server import Live, live

__all__ = ["browser", "live", "page"]


@pytest.fixture
def reports(db: Database, tmp_path: Path) -> list[Report]:
    generated = sample.generate(vessels=6, days=2, seed=4)
    sample.write(generated, tmp_path / "reports", "csv")
    ingest(db, [str(tmp_path / "reports")])
    return generated


def _keys(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(r["time"], r["vessel"], r["lat"], r["lon"]) for r in rows]


def test_the_endpoint_streams_what_the_query_reads(live: Callable[..., Live], db: Database,
                                                   reports: list[Report]) -> None:
    server = live()
    params = {"bbox": "-45,110,-10,160", "from": "2026-12-01", "to": "2026-12-02",
              "sample": "15m", "format": "ndjson"}
    with server.client.stream("GET", "/api/tracks", params=params) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["content-type"].startswith("application/x-ndjson")
        chunks = list(response.iter_raw())
    lines = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
    assert len(chunks) > 1  # rows left in pieces, not as one body at the end
    with db.connect() as conn:
        q = Query.parse(bbox=params["bbox"], start=params["from"], end=params["to"],
                        sample="15m")
        expected = [{**r, "time": r["time"].strftime("%Y-%m-%dT%H:%M:%S.000Z")}
                    for r in run(conn, q).rows]
    assert lines and _keys(lines) == _keys(expected)


@pytest.mark.parametrize("fmt", ["json", "geojson", "ndjson", "csv"])
def test_pages_follow_the_cursor_to_the_end(live: Callable[..., Live], reports: list[Report],
                                            fmt: str) -> None:
    server = live()
    params: dict[str, str] = {"id": "mmsi=503000002", "format": fmt, "limit": "100"}
    total, pages = 0, 0
    while True:
        response = server.get("/api/tracks", params=params)
        assert response.status_code == 200, response.text
        pages += 1
        if fmt == "json":
            body = response.json()
            total += len(body["reports"])
            token = body["next"]
        elif fmt == "geojson":
            body = response.json()
            assert {f["geometry"]["type"] for f in body["features"]} <= {"Point"}
            total += len(body["features"])
            token = body["next"]
        elif fmt == "ndjson":
            lines = [json.loads(x) for x in response.text.splitlines()]
            token = lines[-1].get("next")
            total += len(lines) - (token is not None)
        else:
            lines = response.text.splitlines()
            token = lines[-1].removeprefix("# next=") if lines[-1].startswith("#") else None
            total += len(lines) - 1 - (token is not None)
        if token is None:
            break
        params["cursor"] = token
    expected = sum(1 for r in reports if dict(r.ids)["mmsi"] == "503000002")
    assert total == expected and pages == expected // 100 + 1


@pytest.mark.parametrize(("query", "message"), [
    ("bbox=1,2", "four numbers"), ("sample=3h", "not offered"), ("format=xml", "format"),
    ("limit=0", "limit"), ("cursor=zzz", "malformed"), ("from=tomorrow", "ISO 8601"),
])
def test_bad_parameters_answer_400_in_the_error_shape(live: Callable[..., Live], db: Database,
                                                      query: str, message: str) -> None:
    response = live().get("/api/tracks?" + query)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


@pytest.mark.browser
def test_the_page_draws_one_line_per_vessel(live: Callable[..., Live], reports: list[Report],
                                            page: Page, tmp_path: Path) -> None:
    server = live()
    page.goto(server.url + "/tracks?sample=5m&from=2026-12-01&to=2026-12-02")
    page.wait_for_selector("#tracks-map[data-done=true]", timeout=30_000)
    vessels = {dict(r.ids)["mmsi"] for r in reports}
    lines = page.locator("#tracks-map polyline.track")
    assert lines.count() == len(vessels)
    assert "503" in (lines.first.locator("title").text_content() or "")
    assert "vessels" in page.locator("#tracks-status").inner_text()
    shot = tmp_path / "tracks.png"
    page.locator("#tracks-map").screenshot(path=str(shot))
    width, height, pixels = decode_png(shot.read_bytes())
    colours = {pixels[i:i + 3] for i in range(0, len(pixels), 4)}
    assert width > 300 and height > 200 and len(colours) >= 4
    assert page.console_errors == []  # type: ignore[attr-defined]
    assert page.hosts == {server.url.split("/")[2]}  # type: ignore[attr-defined]


@pytest.mark.browser
def test_the_page_shows_a_bad_parameter(live: Callable[..., Live], db: Database,
                                        page: Page) -> None:
    server = live()
    page.goto(server.url + "/tracks?bbox=1,2")
    assert "four numbers" in page.locator("#tracks-error").inner_text()


def test_a_box_crossing_the_antimeridian_is_answered(live: Callable[..., Live], db: Database,
                                                     reports: list[Report]) -> None:
    server = live()
    params = {"bbox": "-90,100,90,-100", "format": "json"}  # lon >= 100 or <= -100
    response = server.client.get("/api/tracks", params=params)
    assert response.status_code == 200
    got = response.json()
    rows = got["reports"]
    with db.connect() as conn:
        expected = list(run(conn, Query.parse(bbox=params["bbox"]), limit=len(rows)).rows)
    assert rows and [(r["vessel"], r["lat"], r["lon"]) for r in rows] == [
        (r["vessel"], r["lat"], r["lon"]) for r in expected]
    assert all(r["lon"] >= 100 or r["lon"] <= -100 for r in rows)
