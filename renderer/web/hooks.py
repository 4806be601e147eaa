"""Write endpoints: ``POST /hooks/s3`` (bucket notifications) and ``POST /api/runs``.

Each request passes the same gate, in this order: body size (413, before the body is read
whole), credentials (403 when none are configured, 401 when missing or wrong), content type
(415 unless ``application/json``, which MinIO's webhook sends too), then JSON (400, also when
nested deeper than :data:`MAX_JSON_DEPTH`). The replay record of a signed
request and the work it enqueues commit in one transaction, so a refused or failed request
leaves nothing behind.

Example
-------
$ body='{"pipeline": "traffic", "stage": "speedtiles", "week": "2026-W47"}'
$ ts=$(date +%s); sig=$(printf '%s.%s' "$ts" "$body" |
      openssl dgst -sha256 -hmac "$SECRET" | cut -d' ' -f2)
$ curl -H "Content-Type: application/json" -H "X-Renderer-Timestamp: $ts" \
       -H "X-Signature-256: sha256=$sig" -d "$body" http://127.0.0.1:8080/api/runs
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from renderer import callbacks, tokens
from renderer.db import Connection, query
from renderer.queue import PRIORITY_ON_DEMAND
from renderer.traffic import ingest
from renderer.web import auth, runs
from renderer.web.deps import WebError, WebState, state

log = logging.getLogger(__name__)
router = APIRouter()

MAX_JSON_DEPTH = 32
"""Nesting a request body may have: a run spec is flat and an S3 event four levels deep;
a body nested 100,000 levels deep would exhaust the parser's recursion."""


def _require_json(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise WebError(415, f"unsupported content type {media or 'none'!r}: "
                            "send the body as application/json")


async def limited_body(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed the limit."""
    limit = state(request).settings.web_max_body
    too_big = (f"request body exceeds the limit of {limit} bytes "
               "(send fewer records per request, or raise RENDERER_WEB_MAX_BODY)")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise WebError(400, "invalid Content-Length header")
        if int(length) > limit:
            raise WebError(413, too_big)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # chunked bodies announce no length
            raise WebError(413, too_big)
    return bytes(body)


def authorize(web: WebState, conn: Connection, request: Request,
              body: bytes) -> str:
    """Who is calling (``token:<name>`` or ``signature``), or raise AuthFailure.

    Must run inside the transaction that does the work: a signed request's digest is
    recorded there, so the same request presented again is refused as a replay.
    """
    if not web.secrets and not tokens.any_active(conn):
        raise auth.AuthFailure(403, auth.NOT_CONFIGURED)
    presented = auth.bearer_token(request.headers.get("authorization"))
    if presented is not None:
        token = tokens.verify(conn, presented)
        if token is None:
            raise auth.AuthFailure(401, "invalid or revoked bearer token "
                                        "(see `renderer tokens list`)")
        return f"token:{token.name}"
    signature = request.headers.get(auth.SIGNATURE_HEADER)
    timestamp = request.headers.get(auth.TIMESTAMP_HEADER)
    if signature is None and timestamp is None:
        raise auth.AuthFailure(401, "missing credentials: send Authorization: Bearer <token>, "
                                    f"or sign the body ({auth.SIGNATURE_HEADER} and "
                                    f"{auth.TIMESTAMP_HEADER})")
    digest = auth.check_signature(web.secrets, signature, timestamp, body,
                                  window=web.settings.web_replay_seconds)
    fresh = conn.execute(query("web.signature_seen"),
                         {"digest": digest, "window": web.settings.web_replay_seconds}).fetchone()
    if fresh is None:
        raise auth.AuthFailure(401, "replayed request: this signature was already accepted "
                                    "(sign each request with a fresh timestamp)")
    return "signature"


def parse_json(request: Request, body: bytes) -> dict[str, Any]:
    """The body as a JSON object: 415 unless sent as JSON, 400 when malformed or too deep."""
    _require_json(request)
    if not body.strip():
        raise WebError(400, "empty body: expected a JSON object")
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebError(400, f"malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise WebError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise WebError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(value, dict):
        raise WebError(400, f"expected a JSON object, got {type(value).__name__}")
    return value


def _depth(value: Any) -> int:
    """How deeply containers nest in a parsed JSON value (without recursion)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        children = (item.values() if isinstance(item, dict)
                    else item if isinstance(item, list) else None)
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH:
            pending.extend((child, level + 1) for child in children)
    return deepest


def created_objects(event: dict[str, Any], bucket: str | None) -> list[str]:
    """Object keys of the ObjectCreated records of an S3/MinIO notification.

    Keys arrive URL-encoded (``+`` for a space) as S3 sends them; records of other event
    types, and of another bucket than ``bucket`` when given, are left out.
    """
    records = event.get("Records")
    if records is None and event.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(records, list):
        raise WebError(400, 'not an S3 event notification: expected {"Records": [...]}')
    keys: list[str] = []
    for number, record in enumerate(records):
        try:
            name = str(record.get("eventName", ""))
            s3 = record["s3"]
            record_bucket = s3.get("bucket", {}).get("name")
            key = unquote_plus(str(s3["object"]["key"]))
        except (AttributeError, KeyError, TypeError) as exc:
            raise WebError(400, f"record {number} has no s3.object.key") from exc
        if "ObjectCreated" not in name:
            continue
        if bucket is not None and record_bucket != bucket:
            continue
        keys.append(key)
    return keys


@router.post("/hooks/s3", status_code=202)
def s3_hook(request: Request, body: bytes = Depends(limited_body)) -> JSONResponse:
    """Enqueue the histogram items of newly created traffic source objects; with
    ``?callback=URL`` in a set of their own, whose status is posted there when it ends."""
    web = state(request)
    callback = request.query_params.get("callback")
    with web.connection() as conn, conn.transaction():
        caller = authorize(web, conn, request, body)
        event = parse_json(request, body)
        url = None if callback is None else runs.check_callback(callback, web.settings)
        # enqueueing into it creates the set (nothing enqueued: no set)
        set_id = (None if url is None
                  else f"s3-hook {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {uuid.uuid4().hex[:8]}")
        if web.traffic_source is None:
            raise WebError(503, "no traffic source is configured "
                                "(set RENDERER_TRAFFIC_SOURCE to the source root URL)")
        source = urlsplit(web.traffic_source)
        keys = created_objects(event, source.netloc if source.scheme == "s3" else None)
        enqueued = 0
        if keys:
            enqueued = ingest.enqueue_objects(conn, web.traffic_source, keys,
                                              priority=PRIORITY_ON_DEMAND,
                                              after=web.settings.traffic_after, set_id=set_id)
        if set_id is not None and enqueued:
            callbacks.register(conn, set_id, str(url), caller)
    log.info("s3 hook from %s: %d records, %d keys, %d items enqueued", caller,
             len(event.get("Records") or []), len(keys), enqueued)
    answer: dict[str, Any] = {"records": len(event.get("Records") or []), "objects": len(keys),
              "enqueued": enqueued}
    if url is not None:  # nothing enqueued: no set to watch, no notice
        answer |= {"set_id": set_id if enqueued else None, "callback": url if enqueued else None}
    return JSONResponse(answer, status_code=202)


@router.post("/api/runs", status_code=201)
def start_run(request: Request, body: bytes = Depends(limited_body)) -> JSONResponse:
    """Enqueue a named run and answer its set id."""
    web = state(request)
    context = runs.Context(web.settings, web.traffic_source)
    with web.connection() as conn, conn.transaction():
        caller = authorize(web, conn, request, body)
        spec = parse_json(request, body)
        result = runs.start(conn, spec, context, caller)  # with the replay record, or neither
    log.info("run %s/%s from %s: set %s", spec.get("pipeline"), spec.get("stage"), caller,
             result["set_id"])
    return JSONResponse(result, status_code=201)
