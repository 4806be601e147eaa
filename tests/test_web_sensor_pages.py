"""The sensor pages on the sensors sample, in headless Chromium and through their JSON
twins: the days -> a day's detectors ranked by jam minutes -> a detector's chart; and the
empty cases (a day not enriched, a detector without rows)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

from renderer.db import Database
from renderer.sensors import sample
from renderer.sensors.day import DAY_KIND, plan_etl
from renderer.sensors.enrich import pending_days
from renderer.sensors.ingest import ingest
from renderer.web.sensor_pages import jams
from renderer.worker import run_worker
from tests.test_pages import browser, page
from tests.test_web_server import Live, live
from tests.test_web_traffic_pages import shot

__all__ = ["browser", "live", "page"]

DAY = "2026-01-05"  # the sample's first day


@pytest.fixture
def enriched(db: Database, tmp_path: Path) -> sample.SampleStats:
    """Three detectors over two days of the sample, ingested and enriched."""
    made = sample.generate(tmp_path / "detectors", detectors=3, days=2, seed=5)
    ingest(db, [str(p) for p in made.files])
    with db.connect() as conn:
        plan_etl(conn, pending_days(conn), export=None)
        conn.commit()
    assert run_worker(db.url, kinds=[DAY_KIND], until_empty=True).failed == 0
    return made


def test_days_to_a_day_to_a_detector_in_chromium(live: Callable[..., Live], page: Page,
                                                 enriched: sample.SampleStats,
                                                 tmp_path: Path) -> None:
    server = live()
    page.goto(server.url + "/sensors")
    assert page.locator("#sensor-days a.day-link").count() == 2
    page.locator("a.day-link", has_text=DAY).click()
    page.wait_for_url(f"**/sensors/days/{DAY}")
    ranking = server.get(f"/api/sensors/days/{DAY}").json()
    assert ranking["available"] and ranking["detectors_total"] == 3
    assert ranking["from_summary"]  # written by the day items (tests/test_sensors_summary.py)
    minutes = [d["jam_minutes"] for d in ranking["detectors"]]
    assert minutes == sorted(minutes, reverse=True) and minutes[0] > 0
    rows = page.locator("#ranking tbody tr")
    assert rows.count() == 3
    assert [int(t.replace(",", "")) for t in
            page.locator("#ranking td.jam-minutes").all_inner_texts()] == minutes
    assert page.locator("#ranking svg.sparkline polyline").count() >= 3
    assert all(len(d["mean_by_10_minutes"]) == 144 for d in ranking["detectors"])
    shot(page, "sensors-day.png", tmp_path)

    top = ranking["detectors"][0]["detector"]
    page.locator("a.detector-link", has_text=str(top)).click()
    page.wait_for_url(f"**/sensors/detectors/{top}?day={DAY}")
    data = server.get(f"/api/sensors/detectors/{top}", params={"day": DAY}).json()
    assert data["available"] and len(data["minutes"]) == 1440
    assert data["jam_minutes"] == ranking["detectors"][0]["jam_minutes"]
    chart = page.locator("#detector-chart svg")
    for cls in ("speed", "mean2", "mean10"):
        assert chart.locator(f"polyline.{cls}").count() >= 1, cls
    assert chart.locator(":scope > rect.jam").count() == len(data["jams"]) > 0
    assert page.locator("#jams tbody tr").count() == len(data["jams"])
    assert f"{data['jam_minutes']} jam minutes" in page.locator("#jam-total").inner_text()
    ET.fromstring(chart.evaluate("e => e.outerHTML"))
    shot(page, "sensors-detector.png", tmp_path)
    # without a day: its latest
    latest = server.get(f"/api/sensors/detectors/{top}").json()
    assert latest["day"] == "2026-01-06" and latest["days"] == ["2026-01-06", DAY]
    assert page.console_errors == []  # type: ignore[attr-defined]
    assert page.hosts == {server.url.split("/")[2]}  # type: ignore[attr-defined]


def test_empty_cases_say_what_exists(live: Callable[..., Live], page: Page,
                                     enriched: sample.SampleStats, tmp_path: Path) -> None:
    server = live()
    page.goto(server.url + "/sensors/days/2026-02-01")
    assert "no sensor rows on 2026-02-01" in page.locator("#no-data").inner_text()
    assert page.locator("p.weeks a", has_text=DAY).count() == 1
    assert server.get("/api/sensors/days/2026-02-01").json()["available"] is False
    page.goto(server.url + "/sensors/detectors/99")
    assert "no enriched rows of detector 99" in page.locator("#no-data").inner_text()
    assert page.locator("#detector-chart").count() == 0
    shot(page, "sensors-detector-no-data.png", tmp_path)
    page.goto(f"{server.url}/sensors/detectors/{enriched.detectors[0]}?day=2026-02-01")
    assert "its days are listed below" in page.locator("#no-data").inner_text()
    assert page.locator("#detector-days a").count() == 2
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_no_day_at_all(live: Callable[..., Live], page: Page) -> None:
    server = live()
    page.goto(server.url + "/sensors")
    assert "No enriched day yet" in page.locator("#no-days").inner_text()
    assert server.get("/api/sensors").json() == {"days": []}


def test_bad_ids_and_days_are_400(live: Callable[..., Live]) -> None:
    server = live()
    for path in ("/api/sensors/days/yesterday", "/api/sensors/detectors/x",
                 "/api/sensors/detectors/-1", "/api/sensors/detectors/1053?day=2026-13-01"):
        answer = server.get(path)
        assert answer.status_code == 400, (path, answer.text)
        assert set(answer.json()) == {"error"}


def test_jams_are_runs_of_the_indicator() -> None:
    assert jams([]) == []
    assert jams([1, 1, 0, -1, 1, None, 1]) == [(0, 2), (4, 5), (6, 7)]
    assert jams([1] * 1440) == [(0, 1440)]

