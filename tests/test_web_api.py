"""The API and the pages against a real server: hooks enqueue, runs answer a set, the pages
and their JSON twins show what the queue holds, user data is escaped."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from renderer import queue
from renderer.db import Database
from renderer.queue import PRIORITY_ON_DEMAND, Job, NewItem
from renderer.traffic.sample import generate
from renderer.web import auth
from renderer.web.hooks import created_objects
from renderer.worker import run_worker
from tests.factories import add_sensor_days
from tests.test_web_server import Live, live

__all__ = ["live"]

SECRET = "s3cret"
EVIL_KEY = 'a/<script>alert("key")</script>/b'
EVIL_ERROR = "<img src=x onerror=alert('error')>"


@queue.register("web_test", max_attempts=1, backoff_seconds=0.01)
def web_test(job: Job) -> None:
    """Fails with payload['error'] when given, else succeeds."""
    if job.item.payload.get("error"):
        raise ValueError(job.item.payload["error"])


def _post(server: Live, path: str, value: object, *,
          timestamp: int | None = None) -> httpx.Response:
    body = json.dumps(value).encode()
    return server.post(path, content=body,
                       headers=auth.signed_headers(SECRET, body, timestamp=timestamp))


def _event(*records: tuple[str, str, str]) -> dict[str, object]:
    return {"Records": [{"eventVersion": "2.0", "eventSource": "minio:s3", "eventName": name,
                         "s3": {"bucket": {"name": bucket},
                                "object": {"key": quote(key, safe="/"), "size": 10}}}
                        for name, bucket, key in records]}


def test_the_s3_hook_enqueues_histograms_at_on_demand_priority(live: Callable[..., Live],
                                                               db: Database) -> None:
    server = live(web_secrets=SECRET)
    generate(server.source, tiles=1, days=1, seed=3)
    keys = sorted(str(p.relative_to(server.source)) for p in server.source.rglob("*.csv*"))
    hours = sorted({k.split("/")[0] for k in keys})[:2]
    chosen = [next(k for k in keys if k.startswith(h)) for h in hours]
    event = _event(("s3:ObjectCreated:Put", "any", chosen[0]),
                   ("s3:ObjectCreated:CompleteMultipartUpload", "any", chosen[1]),
                   ("s3:ObjectRemoved:Delete", "any", keys[-1]),
                   ("s3:ObjectCreated:Put", "any", "notes/readme.txt"))
    signed_at = int(time.time())
    response = _post(server, "/hooks/s3", event, timestamp=signed_at)
    assert response.status_code == 202, response.text
    assert response.json() == {"records": 4, "objects": 3, "enqueued": 2}
    with db.connect() as conn:
        rows = conn.execute("SELECT kind, priority FROM work_queue ORDER BY key").fetchall()
    assert [(r["kind"], r["priority"]) for r in rows] == [("histogram", PRIORITY_ON_DEMAND)] * 2
    # The same request again, byte for byte: a replay, refused.
    replay = _post(server, "/hooks/s3", event, timestamp=signed_at)
    assert replay.status_code == 401 and "replayed request" in replay.text, replay.text
    # The same files signed anew (another time stamp inside the window): accepted, nothing new.
    again = _post(server, "/hooks/s3", event, timestamp=signed_at - 1)
    assert again.status_code == 202, again.text
    assert again.json()["enqueued"] == 0


def test_the_s3_hook_without_a_traffic_source(live: Callable[..., Live]) -> None:
    server = live(web_secrets=SECRET, traffic_source=False)
    response = _post(server, "/hooks/s3", _event(("s3:ObjectCreated:Put", "b", "k")))
    assert response.status_code == 503
    assert "RENDERER_TRAFFIC_SOURCE" in response.json()["error"]["message"]


def test_s3_records_decode_keys_and_filter_by_bucket() -> None:
    event = _event(("s3:ObjectCreated:Put", "src", "a b/c+d.csv"),
                   ("s3:ObjectCreated:Put", "other", "x.csv"))
    assert created_objects(event, "src") == ["a b/c+d.csv"]
    assert created_objects(event, None) == ["a b/c+d.csv", "x.csv"]
    assert created_objects({"Event": "s3:TestEvent", "Service": "Amazon S3"}, "src") == []


def test_a_run_answers_its_set(live: Callable[..., Live], db: Database) -> None:
    server = live(web_secrets=SECRET)
    response = _post(server, "/api/runs",
                     {"pipeline": "traffic", "stage": "speedtiles", "week": "2026-W47",
                      "bbox": [5.0, 45.0, 10.0, 50.0], "level": 0})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["pipeline"] == "traffic" and body["set_id"]
    assert body["links"]["api"] == f"/api/sets/{quote(body['set_id'])}"
    with db.connect() as conn:
        assert [s["id"] for s in queue.list_sets(conn)] == [body["set_id"]]
    assert server.get(body["links"]["api"]).status_code == 200


def test_a_sensors_run_enqueues_its_days(live: Callable[..., Live], db: Database) -> None:
    server = live(web_secrets=SECRET)
    nothing = _post(server, "/api/runs", {"pipeline": "sensors", "stage": "etl"})
    assert nothing.status_code == 201, nothing.text
    assert nothing.json()["set_id"] is None
    with db.connect() as conn:
        add_sensor_days(conn, {date(2026, 1, 5): 1})
        conn.commit()
    response = _post(server, "/api/runs", {"pipeline": "sensors", "stage": "etl",
                                           "from": "2026-01-01", "to": "2026-01-31",
                                           "format": "csv"})  # another body: no replay
    assert response.status_code == 201, response.text
    set_id = response.json()["set_id"]
    twin = server.get(f"/api/sets/{quote(set_id)}").json()
    assert twin["set"]["pending"] == 1


@pytest.fixture
def worked(db: Database) -> str:
    """A set with two done items and two failed ones (one with a hostile key and error)."""
    with db.connect() as conn:
        set_id = queue.create_set(conn, "web test <set>")
        queue.enqueue_many(conn, [
            NewItem("web_test", "ok/1", set_id=set_id),
            NewItem("web_test", "ok/2", set_id=set_id),
            NewItem("web_test", "bad/1", {"error": "disk full"}, set_id=set_id),
            NewItem("web_test", EVIL_KEY, {"error": EVIL_ERROR}, set_id=set_id),
        ])
        conn.commit()
    stats = run_worker(db.url, kinds=["web_test"], until_empty=True)
    assert stats.done == 2 and stats.failed == 2
    return set_id


def test_json_twins_show_the_queue(live: Callable[..., Live], worked: str) -> None:
    server = live()
    home = server.get("/api").json()
    [kind] = [k for k in home["kinds"] if k["kind"] == "web_test"]
    assert (kind["done"], kind["failed"], kind["pending"]) == (2, 2, 0)
    assert sum(h["done"] for h in home["throughput"]) == 2
    assert [s["id"] for s in home["sets"]] == [worked]

    [listed] = server.get("/api/sets").json()["sets"]
    assert (listed["total"], listed["done"], listed["failed"]) == (4, 2, 2)

    one = server.get(f"/api/sets/{quote(worked)}").json()
    assert one["set"]["id"] == worked and one["set"]["elapsed_seconds"] is not None
    errors = sorted(f["error"] for f in one["failures"])
    assert "disk full" in errors[1] and EVIL_ERROR in errors[0]
    assert one["kinds"][0]["done"] == 2 and one["kinds"][0]["mean_seconds"] is not None

    item = server.get("/api/items/web_test/bad/1").json()
    assert item["item"]["state"] == "failed"
    assert [a["message"] for a in item["attempts"]] == ["disk full"]
    assert server.get("/api/items/web_test/none").status_code == 404


def test_pages_escape_keys_and_error_texts(live: Callable[..., Live], worked: str) -> None:
    server = live()
    pages = {path: server.get(path) for path in (
        "/", "/sets", f"/sets/{quote(worked)}", f"/items/web_test/{quote(EVIL_KEY, safe='/')}")}
    for path, page in pages.items():
        assert page.status_code == 200, (path, page.text)
        assert page.headers["content-type"].startswith("text/html")
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
    set_page = pages[f"/sets/{quote(worked)}"].text
    assert "&lt;script&gt;alert(&#34;key&#34;)&lt;/script&gt;" in set_page
    assert "&lt;img src=x onerror=alert(&#39;error&#39;)&gt;" in set_page
    assert "web test &lt;set&gt;" in set_page
    item_page = pages[f"/items/web_test/{quote(EVIL_KEY, safe='/')}"].text
    assert "&lt;img src=x onerror" in item_page


def test_coverage_twin_reads_the_store(live: Callable[..., Live], tmp_path: Path) -> None:
    server = live()
    assert server.get("/api/coverage").json()["available"] is False
    assert "No <code>coverage.geojson</code>" in server.get("/coverage").text
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    (store / "coverage.geojson").write_text(json.dumps(COVERAGE))
    twin = server.get("/api/coverage").json()
    assert twin["available"] is True and [t["tileid"] for t in twin["tiles"]] == [3105, 49862]
    assert "2016-10-31" in twin["tiles"][0]["tooltip"]
    page = server.get("/coverage").text
    assert page.count('<path class="tile') == 2


def _polygon(west: float, south: float, size: float) -> dict[str, object]:
    ring = [[west, south], [west + size, south], [west + size, south + size],
            [west, south + size], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


COVERAGE = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "geometry": _polygon(8.0, 44.0, 4.0),
     "properties": {"tileid": 3105, "level": 0, "rangeStart": 1477872000,
                    "rangeEnd": 1478476800, "rangeStartDate": "2016-10-31 00:00:00",
                    "rangeEndDate": "2016-11-07 00:00:00", "segments": 120,
                    "observations": 4090, "modes": ["AUTO"]}},
    {"type": "Feature", "geometry": _polygon(9.0, 45.0, 1.0),
     "properties": {"tileid": 49862, "level": 1, "rangeStart": 1477872000,
                    "rangeEnd": 1478476800, "segments": 40}},
]}


def test_a_run_over_a_source_outside_its_layout_is_unprocessable(
        live: Callable[..., Live], tmp_path: Path) -> None:
    """A submit pointed above the hour folders holds files but none in the layout: the
    request is wrong (422, saying where the layout was found), not the server (500)."""
    root = tmp_path / "feed"
    hour = root / "data" / "1479999600_1480003199" / "0" / "3105"
    hour.mkdir(parents=True)
    (hour / "obs.csv").write_text("x\n")
    server = live(web_secrets=SECRET, traffic_source=False, traffic_allowed_sources=str(root))
    response = _post(server, "/api/runs",
                     {"pipeline": "traffic", "stage": "submit", "source": str(root)})
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "none in the layout" in message
    assert f"point the source at {root.as_uri()}/data" in message
