"""The write endpoints against a real server: every refused request is a 4xx with a clear
message in the one error shape, and leaves the queue untouched."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from renderer import queue, tokens
from renderer.db import Database
from renderer.web import auth
from tests.test_web_server import Live, live, queue_total

__all__ = ["live"]

SECRET = "correct horse battery staple"
OLD_SECRET = "the secret before rotation"
RUN = json.dumps({"pipeline": "traffic", "stage": "speedtiles", "week": "2026-W47"}).encode()
EVENT = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
    "bucket": {"name": "b"}, "object": {"key": "1477872000_1477875599/0/3105/r.csv"}}}]}).encode()


def _sets(db: Database) -> int:
    with db.connect() as conn:
        return len(queue.list_sets(conn))


def _error(response: httpx.Response, status: int, *needles: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    message: str = body["error"]["message"]
    for needle in needles:
        assert needle in message, message
    return message


@pytest.fixture
def signed(live: Callable[..., Live]) -> Live:
    return live(web_secrets=f"{SECRET},{OLD_SECRET}", web_max_body=4096)


@pytest.fixture
def untouched(db: Database) -> Iterator[None]:
    """The test must leave no queue item and no set behind."""
    yield
    assert queue_total(db) == 0
    assert _sets(db) == 0


@pytest.mark.parametrize("path,body", [("/api/runs", RUN), ("/hooks/s3", EVENT)])
def test_with_nothing_configured_writes_are_refused(live: Callable[..., Live], path: str,
                                                    body: bytes, untouched: None) -> None:
    server = live()
    response = server.post(path, content=body,
                           headers=auth.signed_headers("anything", body))
    _error(response, 403, "write endpoints are disabled", "RENDERER_WEB_SECRETS",
           "renderer tokens create")


@pytest.mark.parametrize("path,body", [("/api/runs", RUN), ("/hooks/s3", EVENT)])
def test_unsigned_requests_are_refused(signed: Live, path: str, body: bytes,
                                       untouched: None) -> None:
    response = signed.post(path, content=body)
    _error(response, 401, "missing credentials", "X-Signature-256", "Bearer")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_wrong_signature_is_refused(signed: Live, untouched: None) -> None:
    headers = auth.signed_headers("not the secret", RUN)
    _error(signed.post("/api/runs", content=RUN, headers=headers), 401, "does not match")
    tampered = auth.signed_headers(SECRET, RUN)
    body = RUN.replace(b"2026-W47", b"2026-W48")
    _error(signed.post("/api/runs", content=body, headers=tampered), 401, "does not match")


def test_a_stale_timestamp_is_refused(signed: Live, untouched: None) -> None:
    headers = auth.signed_headers(SECRET, RUN, timestamp=int(time.time()) - 301)
    _error(signed.post("/api/runs", content=RUN, headers=headers), 401,
           "outside the 300 s replay window")


def test_a_replayed_request_is_refused_and_enqueues_nothing(signed: Live, db: Database) -> None:
    headers = auth.signed_headers(SECRET, RUN)
    first = signed.post("/api/runs", content=RUN, headers=headers)
    assert first.status_code == 201, first.text
    assert _sets(db) == 1
    _error(signed.post("/api/runs", content=RUN, headers=headers), 401, "replayed request")
    assert _sets(db) == 1


def test_both_secrets_work_during_a_rotation(signed: Live, db: Database) -> None:
    for secret in (SECRET, OLD_SECRET):
        response = signed.post("/api/runs", content=RUN, headers=auth.signed_headers(secret, RUN))
        assert response.status_code == 201, response.text
    assert _sets(db) == 2


def test_an_oversized_body_is_refused_before_it_is_read(signed: Live, untouched: None) -> None:
    body = b'{"pipeline": "' + b"x" * 5000 + b'"}'
    _error(signed.post("/api/runs", content=body, headers=auth.signed_headers(SECRET, body)),
           413, "exceeds the limit of 4096 bytes", "RENDERER_WEB_MAX_BODY")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b" " * 1000

    _error(signed.post("/hooks/s3", content=chunks()), 413, "exceeds the limit")


@pytest.mark.parametrize("body,message", [
    (b'{"pipeline": "traffic",', "malformed JSON"),
    (b"\xff\xfe", "malformed JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b"", "empty body"),
])
def test_malformed_bodies_are_refused(signed: Live, body: bytes, message: str,
                                      untouched: None) -> None:
    response = signed.post("/api/runs", content=body, headers=auth.signed_headers(SECRET, body))
    _error(response, 400, message)


@pytest.mark.parametrize("spec,message", [
    ({"pipeline": "traffic", "stage": "nope"}, "unknown pipeline/stage 'traffic/nope'"),
    ({"pipeline": "sensors", "stage": "bogus"},
     "known: sensors/etl, tiles/render, traffic/speedtiles"),
    ({"pipeline": "tiles", "stage": "render", "max_zoom": 99}, "invalid max zoom 99"),
    ({"pipeline": "sensors", "stage": "etl", "from": "yesterday"}, "invalid from"),
    ({"pipeline": "sensors", "stage": "etl", "format": "xls"}, "unknown export format"),
    ({"pipeline": "traffic", "stage": "speedtiles", "week": "2026-47"}, "invalid week"),
    ({"pipeline": "traffic", "stage": "speedtiles", "bbox": [10, 20, 5, 10]}, "invalid bbox"),
    ({"pipeline": "traffic", "stage": "speedtiles", "bbox": [10, 10, 200, 20]}, "invalid bbox"),
    ({"pipeline": "traffic", "stage": "speedtiles", "level": 7}, "invalid level"),
    ({"pipeline": "traffic", "stage": "speedtiles", "colour": "red"}, "unknown field(s) colour"),
])
def test_bad_runs_are_refused(signed: Live, spec: dict[str, object], message: str,
                              untouched: None) -> None:
    body = json.dumps(spec).encode()
    response = signed.post("/api/runs", content=body, headers=auth.signed_headers(SECRET, body))
    _error(response, 400, message)


def test_an_s3_hook_without_records_is_refused(signed: Live, untouched: None) -> None:
    body = b'{"hello": "world"}'
    response = signed.post("/hooks/s3", content=body, headers=auth.signed_headers(SECRET, body))
    _error(response, 400, "not an S3 event notification")


def test_bearer_tokens(live: Callable[..., Live], db: Database) -> None:
    with db.connect() as conn:
        plaintext, _ = tokens.create(conn, "ci")
        conn.commit()
    server = live()  # no secret: the token alone enables writes
    ok = server.post("/api/runs", content=RUN, headers={"Authorization": f"Bearer {plaintext}"})
    assert ok.status_code == 201, ok.text
    _error(server.post("/api/runs", content=RUN,
                       headers={"Authorization": f"Bearer {plaintext}x"}), 401, "invalid")
    _error(server.post("/api/runs", content=RUN, headers={"Authorization": "Basic eDp5"}),
           401, "Bearer <token>")
    with db.connect() as conn:
        tokens.create(conn, "other")
        tokens.revoke(conn, "ci")
        conn.commit()
    _error(server.post("/api/runs", content=RUN, headers={"Authorization": f"Bearer {plaintext}"}),
           401, "invalid or revoked")
    assert _sets(db) == 1


def test_secrets_never_reach_the_logs_or_answers(signed: Live,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [signed.post("/api/runs", content=RUN, headers=auth.signed_headers(SECRET, RUN)),
               signed.post("/api/runs", content=RUN, headers=auth.signed_headers("guess", RUN)),
               signed.get("/api"), signed.get("/readyz")]
    for text in [caplog.text, *(a.text for a in answers)]:
        assert SECRET not in text and OLD_SECRET not in text
