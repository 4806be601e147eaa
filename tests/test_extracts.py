"""Downloadable extracts: regions, what traffic and sensors contribute, the archive and its
manifest (on a folder and on S3), skipping what did not change, and /extracts with its JSON
twin and downloads (checked against the manifest; the page in Chromium)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import Page

from renderer import config, tiles
from renderer.config import Settings
from renderer.errors import ConfigError, InputError
from renderer.extracts import archive
from renderer.extracts.regions import CONTINENTS, parse_regions
from renderer.extracts.stage import collect_all, planned
from renderer.sensors.export import SCHEMA, day_key
from renderer.storage import FileStore, Store
from renderer.traffic.export import reference_key, speed_keys
from tests.test_pages import browser, page
from tests.test_storage import store
from tests.test_web_server import Live, live

__all__ = ["browser", "live", "page", "store"]  # fixtures: a folder and an S3 store

REGIONS = "europe=-10,35,30,60; south-america=-80,-50,-35,10; nothing=100,-10,110,0"
WEEKS = ["2026-W42", "2026-W43", "2026-W44", "2026-W45"]


PARIS, LIMA, TOKYO = (tiles.tile(2.3, 48.9, 0), tiles.tile(-77.0, -12.0, 0),
                      tiles.tile(139.7, 35.7, 0))


def _settings(store: Store, **overrides: object) -> Settings:
    return dataclasses.replace(Settings(storage=store.url, extracts_weeks=2,
                                        extracts_regions=REGIONS), **overrides)


def fill_traffic(store: Store) -> None:
    """Speed tiles of four weeks in Paris, Lima and Tokyo (AUTO; BUS in Paris), a level-1
    tile, reference tiles with their range, and the coverage."""
    for week in WEEKS:
        for tile in (PARIS, LIMA, TOKYO):
            for key in speed_keys("AUTO", week, tile, 0):
                store.put(key, f"gz {key}".encode(), content_type="application/gzip")
        store.put(speed_keys("BUS", week, PARIS, 1)[0], b"bus", content_type="application/gzip")
        store.put(speed_keys("AUTO", week, tiles.Tile(1, 50000), 0)[0], b"level 1")
    for tile in (PARIS, LIMA):
        store.put(reference_key("AUTO", tile), f"ref {tile}".encode(),
                  metadata={"rangeStart": "1760000000", "rangeEnd": "1762000000"})
    store.put("coverage.geojson", b'{"type": "FeatureCollection", "features": []}')


def check_zip(data: bytes, manifest: dict[str, object]) -> dict[str, bytes]:
    """The archive's files, each checked against the manifest (size and SHA-256)."""
    download = manifest["download"]
    assert isinstance(download, dict)
    assert len(data) == download["size"]
    assert hashlib.sha256(data).hexdigest() == download["sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        bodies = {name: z.read(name) for name in z.namelist()}
    inside = json.loads(bodies.pop(archive.MANIFEST))
    assert inside["files"] == manifest["files"]
    listed = {f["path"]: f for f in manifest["files"]}  # type: ignore[attr-defined]
    assert set(listed) == set(bodies)
    for name, body in bodies.items():
        assert listed[name]["size"] == len(body)
        assert listed[name]["sha256"] == hashlib.sha256(body).hexdigest()
    return bodies


# -- regions ---------------------------------------------------------------------------------

def test_regions_default_to_the_continents_and_parse_named_boxes() -> None:
    assert parse_regions("") == CONTINENTS
    assert "europe" in {r.name for r in CONTINENTS}
    assert [r.name for r in parse_regions(REGIONS)] == ["europe", "south-america", "nothing"]
    assert parse_regions("pacific=170,-10,-170,10")[0].bbox.crosses_antimeridian
    for bad in ("europe", "Europe=0,0,1,1", "a=0,0,1", "a=0,0,1,1;a=2,2,3,3", "a=0,10,1,5"):
        with pytest.raises(InputError):
            parse_regions(bad)


def test_the_setting_is_validated() -> None:
    assert config.load({"RENDERER_EXTRACTS_REGIONS": "alps=5,43,17,48"}).extracts_regions
    with pytest.raises(ConfigError, match="extracts_regions"):
        config.load({"RENDERER_EXTRACTS_REGIONS": "alps=5,43,17"})
    with pytest.raises(ConfigError, match="extracts_weeks"):
        config.load({"RENDERER_EXTRACTS_WEEKS": "0"})


# -- traffic ---------------------------------------------------------------------------------

def test_traffic_extract_per_region_with_its_manifest(store: Store) -> None:
    fill_traffic(store)
    published = {p.name: p for p in collect_all(store, _settings(store))}
    assert set(published) == {"traffic/europe", "traffic/south-america"}  # none for "nothing"
    manifest = archive.read_manifest(store, "traffic/europe")
    assert manifest is not None and manifest == published["traffic/europe"].manifest
    assert manifest["download"]["key"].startswith("extracts/traffic/europe/")
    bodies = check_zip(store.get(manifest["download"]["key"]), manifest)
    paris = [speed_keys("AUTO", w, PARIS, 0) for w in WEEKS[-2:]]
    expected = {k for pair in paris for k in pair} | {
        speed_keys("BUS", w, PARIS, 1)[0] for w in WEEKS[-2:]} | {
        reference_key("AUTO", PARIS), "coverage.geojson"}
    assert set(bodies) == expected  # the latest 2 weeks, level 0, inside the box only
    assert manifest["info"]["weeks"] == WEEKS[-2:]
    ranges = manifest["time_ranges"]
    assert ranges["speed"] == {"start": "2026-10-26T00:00:00+00:00",
                               "end": "2026-11-09T00:00:00+00:00"}
    assert ranges["reference"]["start"] == datetime.fromtimestamp(1760000000, UTC).isoformat()
    generated = datetime.fromisoformat(manifest["generated_at"])
    assert abs((datetime.now(UTC) - generated).total_seconds()) < 3600


def test_an_unchanged_extract_is_skipped_and_a_changed_one_replaced(store: Store) -> None:
    fill_traffic(store)
    settings = _settings(store)
    first = {p.name: p.manifest for p in collect_all(store, settings)}
    again = collect_all(store, settings)
    assert [p.skipped for p in again] == [True, True]
    assert archive.read_manifest(store, "traffic/europe") == first["traffic/europe"]
    store.put(speed_keys("AUTO", WEEKS[-1], PARIS, 0)[0], b"rebuilt this week")
    later = datetime(2030, 1, 1, tzinfo=UTC)
    results = {p.name: p for p in (archive.publish(store, e, now=later)
                                   for e in planned(store, settings))}
    assert results["traffic/south-america"].skipped
    assert not results["traffic/europe"].skipped
    new = archive.read_manifest(store, "traffic/europe")
    assert new is not None
    old_key = first["traffic/europe"]["download"]["key"]  # type: ignore[index]
    assert new["download"]["key"] != old_key
    assert not store.exists(old_key)  # the previous download is gone
    check_zip(store.get(new["download"]["key"]), new)


# -- sensors ---------------------------------------------------------------------------------

def _day_table(day: datetime, n: int) -> bytes:
    rows = [{"uniqueid": i, "recordtimestamp": day, "currentspeed": 50.0 + i,
             "bezettingsgraad": 1.0, "previousspeed": 49.0, "trafficjamindicator": 0,
             **{f"trafficintensityclass{c}": 1 for c in range(1, 6)},
             "speeddiffindicator": 0, "avgspeed2minutes": 50.0, "avgspeed10minutes": 50.0}
            for i in range(n)]
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), out)
    return out.getvalue()


def test_sensors_one_parquet_extract_per_month(store: Store) -> None:
    days = [datetime(2026, 1, 5, 7, tzinfo=UTC), datetime(2026, 1, 6, 7, tzinfo=UTC),
            datetime(2026, 2, 1, 7, tzinfo=UTC)]
    for i, day in enumerate(days):
        store.put(day_key(day.date(), "parquet", "sensors"), _day_table(day, i + 2))
    published = {p.name: p for p in collect_all(store, _settings(store))}
    assert set(published) == {"sensors/2026-01", "sensors/2026-02"}
    manifest = archive.read_manifest(store, "sensors/2026-01")
    assert manifest is not None
    data = store.get(manifest["download"]["key"])
    assert hashlib.sha256(data).hexdigest() == manifest["download"]["sha256"]
    assert manifest["files"][0]["sha256"] == manifest["download"]["sha256"]
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 2 + 3 and table.schema.equals(SCHEMA)
    assert manifest["time_ranges"]["data"] == {"start": "2026-01-01T00:00:00+00:00",
                                               "end": "2026-02-01T00:00:00+00:00"}
    assert len(manifest["sources"]) == 2


# -- the page, its twin and the downloads ----------------------------------------------------

@pytest.fixture
def served(live: Callable[..., Live], tmp_path: Path) -> Iterator[Live]:
    server = live()
    store = FileStore(tmp_path / "store")
    fill_traffic(store)
    store.put(day_key(datetime(2026, 1, 5).date(), "parquet", "sensors"),
              _day_table(datetime(2026, 1, 5, tzinfo=UTC), 3))
    collect_all(store, _settings(store))
    yield server


def test_an_extract_downloaded_over_http_matches_its_manifest(served: Live) -> None:
    listed = {e["name"]: e for e in served.get("/api/extracts").json()["extracts"]}
    assert set(listed) == {"traffic/europe", "traffic/south-america", "sensors/2026-01"}
    europe = listed["traffic/europe"]
    manifest = served.get(europe["manifest"]).json()
    response = served.get(europe["download"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    bodies = check_zip(response.content, manifest)
    assert europe["size"] == len(response.content) and europe["files"] == len(bodies)
    assert served.get("/extracts/files/../coverage.geojson").status_code == 404
    assert served.get("/extracts/files/traffic/nowhere.zip").status_code == 404


@pytest.mark.browser
def test_the_extracts_page_lists_sizes_dates_and_links(served: Live, page: Page) -> None:
    page.goto(served.url + "/extracts")
    assert page.locator("h1").inner_text() == "Extracts"
    rows = page.locator("#extracts tbody tr")
    assert rows.count() == 3
    text = page.locator("#extracts").inner_text()
    assert "traffic/europe" in text and "sensors/2026-01" in text
    assert "speed 2026-10-26" in text  # the time range of the weeks carried
    assert " B" in text or " kB" in text
    with page.expect_download() as info:
        page.locator("tr", has_text="traffic/europe").locator("a.download").click()
    assert info.value.suggested_filename.startswith("traffic-europe-")
    assert page.console_errors == []  # type: ignore[attr-defined]
    assert page.hosts == {served.url.split("/")[2]}  # type: ignore[attr-defined]
