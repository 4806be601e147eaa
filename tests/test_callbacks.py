"""Status back to the requester: a run names a callback URL; when its set ends a `notify`
item POSTs a signed status to a real receiver on loopback, retried after a 500; hosts not
allowed are refused with 422; the set page shows where the notice stands."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from renderer import callbacks, pipelines, queue
from renderer.config import Settings
from renderer.db import Connection, Database
from renderer.profile import Offer, Profile, Stage
from renderer.queue import PRIORITY_ON_DEMAND, Job
from renderer.traffic.sample import generate
from renderer.web import auth
from renderer.worker import run_worker
from tests.test_web_api import _event
from tests.test_web_server import Live, live

__all__ = ["live"]

SECRET = "incoming-secret"
CB_SECRET = "callback-secret-never-logged"
ERROR = "disk full on item 0"


def fail_or_pass(job: Job) -> None:
    if job.payload.get("fail"):
        raise OSError(ERROR)


def start_test_run(conn: Connection, spec: dict[str, Any], settings: Settings) -> str:
    set_id = queue.create_set(conn, f"callback test {uuid.uuid4().hex[:6]}")
    for i in range(3):
        queue.enqueue(conn, "t_callback", f"{set_id}/{i}", {"fail": i == 0 and spec.get("fail")},
                      set_id=set_id, priority=PRIORITY_ON_DEMAND)
    return set_id


PROFILE = Profile("cbtest", stages=(Stage("t_callback", fail_or_pass, max_attempts=1),),
                  runs=(Offer("go", frozenset({"fail"}), start_test_run),))


@pytest.fixture
def test_profile() -> Iterator[None]:
    pipelines.add(PROFILE)
    yield
    pipelines.PROFILES.pop(PROFILE.name, None)


@dataclass
class Receiver:
    """A real HTTP receiver on loopback: answers the queued codes (then 200), records all."""

    url: str
    host: str
    codes: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = state["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            me.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            time.sleep(me.delay)
            code = me.codes.pop(0) if me.codes else 200
            self.send_response(code)
            if code in (301, 302, 307):
                self.send_header("Location", "http://elsewhere.example.org/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    state["r"] = Receiver(f"http://127.0.0.1:{port}/status?run=1", f"127.0.0.1:{port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["r"]
    server.shutdown()
    thread.join(timeout=10)


def _post(server: Live, path: str, value: object) -> httpx.Response:
    body = json.dumps(value).encode()
    return server.post(path, content=body, headers=auth.signed_headers(SECRET, body))


def _serve(live: Callable[..., Live], receiver: Receiver, **more: Any) -> Live:
    return live(web_secrets=SECRET, callbacks_allowed_hosts=f"example.net,{receiver.host}",
                callbacks_secret=CB_SECRET, web_public_url="https://renderer.test", **more)


def verify(headers: dict[str, str], body: bytes) -> None:
    """The notice is signed as incoming hooks are, under the callbacks' own secret."""
    auth.check_signature([CB_SECRET], headers["x-signature-256"],
                         headers["x-renderer-timestamp"], body, window=300)
    with pytest.raises(auth.AuthFailure):
        auth.check_signature([SECRET], headers["x-signature-256"],
                             headers["x-renderer-timestamp"], body, window=300)


def test_a_finished_set_is_posted_signed_and_retried_after_a_500(
        live: Callable[..., Live], receiver: Receiver, db: Database, test_profile: None,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = _serve(live, receiver)
    receiver.codes = [500]  # the first notice fails, the retry succeeds
    answer = _post(server, "/api/runs", {"pipeline": "cbtest", "stage": "go", "fail": True,
                                         "callback": receiver.url})
    assert answer.status_code == 201, answer.text
    set_id = answer.json()["set_id"]
    assert answer.json()["callback"] == receiver.url
    with db.connect(autocommit=True) as conn:
        assert callbacks.sweep(conn) == []  # the set has not ended: nothing to say yet
        assert callbacks.get(conn, set_id)["state"] == "waiting"  # type: ignore[index]
    run_worker(db.url, kinds=["t_callback"], until_empty=True, settings=server.settings)
    with db.connect(autocommit=True) as conn:
        queue.enqueue(conn, callbacks.SWEEP_KIND, "now")
    run_worker(db.url, kinds=[callbacks.SWEEP_KIND, callbacks.NOTIFY_KIND], until_empty=True,
               settings=server.settings)
    assert len(receiver.received) == 2
    for headers, body in receiver.received:
        verify(headers, body)
        assert headers["content-type"] == "application/json"
    notice = json.loads(receiver.received[-1][1])
    assert notice["set_id"] == set_id and notice["status"] == "failed"
    assert notice["counts"] == {**dict.fromkeys(queue.STATES, 0), "done": 2, "failed": 1}
    assert notice["failures"] == [{"kind": "t_callback", "key": f"{set_id}/0", "attempts": 1,
                                   "first_error": ERROR}]
    assert notice["duration_seconds"] is not None and notice["duration_seconds"] >= 0
    assert notice["links"]["page"] == f"https://renderer.test/sets/{quote(set_id)}"
    with db.connect() as conn:
        record = callbacks.get(conn, set_id)
    assert record is not None and record["state"] == "sent" and record["response"] == 200
    shown = server.get(f"/api/sets/{quote(set_id)}").json()["callback"]
    assert shown["state"] == "sent" and shown["outcome"] == "failed"
    assert len(shown["failed_attempts"]) == 1 and "500" in shown["failed_attempts"][0]["error"]
    page = server.get(f"/sets/{quote(set_id)}").text
    assert 'id="callback"' in page and "answered 200" in page and "answered 500" in page
    assert CB_SECRET not in caplog.text  # never logged


def test_a_host_not_allowed_is_refused_with_422(live: Callable[..., Live], receiver: Receiver,
                                               db: Database, test_profile: None) -> None:
    server = _serve(live, receiver)
    for url, why in (("http://evil.example.org/hook", "callback host evil.example.org is not "
                                                      "allowed"),
                     (f"http://u:p@{receiver.host}/", "must not carry credentials"),
                     (f"ftp://{receiver.host}/", "not an http:// or https:// URL"),
                     ("https://example.net:8443/x", None),  # the host is allowed on any port
                     (42, "callback must be an http(s) URL")):
        answer = _post(server, "/api/runs", {"pipeline": "cbtest", "stage": "go",
                                             "callback": url})
        if why is None:
            assert answer.status_code == 201, answer.text
            continue
        assert answer.status_code == 422, answer.text
        assert why in answer.json()["error"]["message"], answer.text
    with db.connect() as conn:  # only the allowed run enqueued anything
        assert queue.status(conn)["total"]["pending"] == 3
    bare = live(web_secrets=SECRET)  # callbacks not configured: every callback refused
    answer = _post(bare, "/api/runs", {"pipeline": "cbtest", "stage": "go",
                                       "callback": receiver.url})
    assert answer.status_code == 422 and "not enabled" in answer.text


def test_the_s3_hook_takes_a_callback_for_its_set(live: Callable[..., Live],
                                                 receiver: Receiver, db: Database) -> None:
    server = _serve(live, receiver)
    generate(server.source, tiles=1, days=1, seed=3)
    key = sorted(str(p.relative_to(server.source)) for p in server.source.rglob("*.csv*"))[0]
    event = _event(("s3:ObjectCreated:Put", "any", key))
    refused = _post(server, "/hooks/s3?callback=" + quote("http://evil.example.org/"), event)
    assert refused.status_code == 422, refused.text
    answer = _post(server, "/hooks/s3?callback=" + quote(receiver.url), event)
    assert answer.status_code == 202, answer.text
    set_id = answer.json()["set_id"]
    assert answer.json()["enqueued"] == 1 and answer.json()["callback"] == receiver.url
    with db.connect() as conn:
        assert callbacks.get(conn, set_id)["url"] == receiver.url  # type: ignore[index]
        assert queue.status(conn)["sets"][set_id]["pending"] == 1


def test_a_slow_receiver_times_out_and_a_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.delay = 3.0
    with pytest.raises(callbacks.CallbackFailed, match="unreachable"):
        callbacks.post(receiver.url, b"{}", CB_SECRET, timeout=0.3)
    receiver.delay = 0.0
    receiver.codes = [302]
    with pytest.raises(callbacks.CallbackFailed, match="answered 302"):
        callbacks.post(receiver.url, b"{}", CB_SECRET, timeout=5)
    assert len(receiver.received) == 2  # the redirect's target was never asked
