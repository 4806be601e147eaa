"""Write endpoints under attack: JSON nested 100,000 levels deep, bodies that are not JSON,
and traffic submits of server-local folders outside the configured source."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from renderer.db import Database
from renderer.web import auth
from tests.test_web_security import EVENT, SECRET, _error, _sets, untouched
from tests.test_web_server import Live, live

__all__ = ["live", "untouched"]

REPORTER = "1477872000_1477875599/0/3105/r.csv"


def _signed_post(server: Live, path: str, body: bytes, content_type: str) -> object:
    headers = {**auth.signed_headers(SECRET, body), "Content-Type": content_type}
    return server.post(path, content=body, headers=headers)


@pytest.mark.parametrize("path", ["/api/runs", "/hooks/s3"])
@pytest.mark.parametrize("depth", [100_000, 40])
def test_deeply_nested_json_is_a_400(live: Callable[..., Live], path: str, depth: int,
                                     untouched: None) -> None:
    server = live(web_secrets=SECRET)
    body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    response = server.post(path, content=body, headers=auth.signed_headers(SECRET, body))
    _error(response, 400, "nested deeper than 32 levels")


@pytest.mark.parametrize("path", ["/api/runs", "/hooks/s3"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml",
                                          "application/x-www-form-urlencoded", ""])
def test_bodies_that_are_not_json_are_a_415(live: Callable[..., Live], path: str,
                                            content_type: str, untouched: None) -> None:
    server = live(web_secrets=SECRET)
    body = json.dumps({"pipeline": "traffic", "stage": "speedtiles"}).encode()
    response = _signed_post(server, path, body, content_type)
    _error(response, 415, "application/json")  # type: ignore[arg-type]


def test_json_with_a_charset_and_minios_hook_request_are_accepted(live: Callable[..., Live],
                                                                  db: Database) -> None:
    server = live(web_secrets=SECRET)
    run = json.dumps({"pipeline": "traffic", "stage": "speedtiles", "week": "2026-W47"})
    ok = _signed_post(server, "/api/runs", run.encode(), "application/json; charset=utf-8")
    assert ok.status_code == 201, ok.text  # type: ignore[attr-defined]
    # MinIO's webhook target posts its event with exactly this content type
    hook = _signed_post(server, "/hooks/s3", EVENT, "application/json")
    assert hook.status_code == 202, hook.text  # type: ignore[attr-defined]


def _reporter_folder(root: Path) -> Path:
    path = root / REPORTER
    path.parent.mkdir(parents=True)
    path.write_text("not even a reporter file\n")
    return path


def _submit(server: Live, source: str) -> object:
    body = json.dumps({"pipeline": "traffic", "stage": "submit", "source": source}).encode()
    return server.post("/api/runs", content=body, headers=auth.signed_headers(SECRET, body))


def test_a_submit_of_a_folder_outside_the_source_is_refused(live: Callable[..., Live],
                                                            tmp_path: Path,
                                                            untouched: None) -> None:
    server = live(web_secrets=SECRET)
    elsewhere = tmp_path / "elsewhere"
    victim = _reporter_folder(elsewhere)
    os.symlink(elsewhere, server.source / "link-out")
    for source in (str(elsewhere), elsewhere.as_uri(), str(server.source / "link-out"),
                   f"{server.source}/../elsewhere", "s3://another-bucket/traffic"):
        _error(_submit(server, source), 400, "not under the traffic source")  # type: ignore
    assert victim.exists()


def test_a_submit_inside_the_source_or_an_allowed_root_is_accepted(
        live: Callable[..., Live], tmp_path: Path, db: Database) -> None:
    extra = tmp_path / "extra"
    _reporter_folder(extra)
    server = live(web_secrets=SECRET, traffic_allowed_sources=f"s3://b/x,{extra}")
    _reporter_folder(server.source / "sub")
    _reporter_folder(server.source)  # a root holding only sub/ is refused (test_sources.py)
    for source in (str(server.source), str(server.source / "sub"), extra.as_uri()):
        response = _submit(server, source)
        assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    assert _sets(db) == 3
