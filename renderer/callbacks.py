"""Status back to the requester: a run may name a callback URL, posted a signed JSON status
when its set ends (done, failed or cancelled).

``POST /api/runs`` (a ``"callback"`` field) and the S3 hook (``?callback=`` on its URL) check
the URL with :func:`check_url` (http or https, no credentials, a host of ``[callbacks]
allowed_hosts``; anything else is :class:`CallbackRefused`, answered 422) and record it with
:func:`register` in the transaction that enqueues the run. The ``callbacks-sweep`` stage (every
minute, a default schedule; its ticks are skipped while no callback waits, so an idle system
gains no queue items) finds the recorded sets that have ended and, in its transaction,
enqueues one ``notify`` item per set (outside any set, so that it does not keep its own set
open). The ``notify`` item POSTs :func:`status_body`, signed as the incoming hooks are
(:mod:`renderer.hmacsign`) under ``[callbacks] secret``, with a timeout; a refusal or no answer
fails the attempt and the queue retries it with its backoff. A worker is never held longer
than the timeout; redirects are not followed (they could lead off the allowed hosts). The set
page shows where the notice stands.

Example
-------
>>> check_url("https://ci.example.org/status/42", settings)  # allowed_hosts = ci.example.org
'https://ci.example.org/status/42'
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from renderer import db, queue
from renderer.config import Settings
from renderer.db import Connection
from renderer.errors import InputError, RendererError
from renderer.hmacsign import signed_headers
from renderer.queue import PRIORITY_ON_DEMAND, Job

__all__ = ["NOTIFY_KIND", "SWEEP_KIND", "CallbackFailed", "CallbackRefused", "check_url",
           "get", "notify", "register", "status_body", "sweep", "sweep_stage", "view",
           "waiting"]

log = logging.getLogger(__name__)

NOTIFY_KIND = "notify"
SWEEP_KIND = "callbacks-sweep"
FAILURES_LISTED = 20  # failed items a notice names (their total is in the counts)
EVENT_HEADER = "X-Renderer-Event"


class CallbackRefused(InputError):
    """A callback URL the service will not post to (answered 422)."""


class CallbackFailed(RendererError):
    """The receiver did not accept a notice (retried by the queue)."""


def allowed_hosts(settings: Settings) -> list[str]:
    return [h.strip().lower() for h in settings.callbacks_allowed_hosts.split(",") if h.strip()]


def check_url(url: object, settings: Settings) -> str:
    """``url`` if the service may post a run's status to it, else :class:`CallbackRefused`."""
    hosts = allowed_hosts(settings)
    if not hosts:
        raise CallbackRefused("callbacks are not enabled on this service",
                              "set [callbacks] allowed_hosts (RENDERER_CALLBACKS_ALLOWED_HOSTS)")
    if not settings.callbacks_secret:
        raise CallbackRefused("callbacks are not enabled: no secret to sign them with",
                              "set [callbacks] secret (RENDERER_CALLBACKS_SECRET)")
    if not isinstance(url, str) or not url.strip() or len(url) > 2000:
        raise CallbackRefused("callback must be an http(s) URL of at most 2000 characters")
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError as exc:
        raise CallbackRefused(f"callback URL {url!r} has an invalid port") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused(f"callback URL {url!r} is not an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback URL must not carry credentials",
                              "the notice is signed; drop user:password@")
    host = parts.hostname.lower()
    named = f"[{host}]" if ":" in host else host
    if named not in hosts and (port is None or f"{named}:{port}" not in hosts):
        raise CallbackRefused(f"callback host {named}{f':{port}' if port else ''} is not "
                              "allowed", "allowed: " + ", ".join(hosts))
    return url.strip()


def register(conn: Connection, set_id: str, url: str, requested_by: str = "") -> None:
    """Record the callback of a set (in the caller's transaction, with the run's items)."""
    conn.execute(db.query("ops.register_callback"),
                 {"set_id": set_id, "url": url, "requested_by": requested_by})


def get(conn: Connection, set_id: str) -> dict[str, Any] | None:
    """A set's callback and where its notice stands (None: the run named none)."""
    with conn.cursor(row_factory=db.dict_row) as cur:
        return cur.execute(db.query("ops.get_callback"), {"set_id": set_id}).fetchone()


def view(conn: Connection, set_id: str) -> dict[str, Any] | None:
    """What the set page shows of a set's callback: its record, the ``notify`` item's state,
    its failed attempts (receiver's answer or why it was unreachable) and the next one."""
    found = get(conn, set_id)
    if found is None:
        return None
    item = queue.item_history(conn, NOTIFY_KIND, set_id)
    failures = [{"at": a["at"], "error": a["message"]} for a in (item or {}).get("attempts", [])
                if a.get("message")]
    state = (item or {}).get("state")
    return {**found, "notify_state": state, "failed_attempts": failures,
            "next_attempt_at": (item or {}).get("run_after") if state == "pending" else None}


def _outcome(counts: dict[str, Any]) -> str | None:
    """``done``, ``failed`` or ``cancelled`` once nothing of the set is open, else None."""
    if any(int(counts.get(s, 0)) for s in queue.OPEN_STATES):
        return None
    if not any(int(counts.get(s, 0)) for s in queue.STATES):
        return None  # no item counted (yet): nothing has ended
    if counts.get("state") == "cancelled" or int(counts.get("cancelled", 0)):
        return "cancelled"
    return "failed" if int(counts.get("failed", 0)) else "done"


def waiting(conn: Connection) -> bool:
    """Whether any recorded callback waits for its set to end (else a sweep has nothing to
    do, and its schedule's tick is skipped: no queue items on an idle system)."""
    return bool(db.scalar(conn, "ops.any_waiting_callback"))


def sweep(conn: Connection) -> list[str]:
    """Queue a ``notify`` item for every recorded set that has ended; return their ids."""
    with conn.cursor(row_factory=db.dict_row) as cur:
        waiting = cur.execute(db.query("ops.waiting_callbacks")).fetchall()
    if not waiting:
        return []
    sets = queue.status(conn, sets=[row["set_id"] for row in waiting])["sets"]
    queued = []
    for row in waiting:
        outcome = _outcome(sets.get(row["set_id"], {}))
        if outcome is None:
            continue
        conn.execute(db.query("ops.mark_queued"), {"set_id": row["set_id"], "outcome": outcome})
        queue.enqueue(conn, NOTIFY_KIND, row["set_id"], {"outcome": outcome},
                      priority=PRIORITY_ON_DEMAND, force=True)
        queued.append(row["set_id"])
    return queued


def _first_error(conn: Connection, failure: dict[str, Any]) -> str | None:
    history = queue.item_history(conn, failure["kind"], failure["key"]) or {}
    messages = [a["message"] for a in history.get("attempts", []) if a.get("message")]
    return messages[0] if messages else failure.get("last_error")


def base_url(settings: Settings) -> str:
    """Where the service's pages are, for links sent away."""
    return (settings.web_public_url or f"http://{settings.web_host}:{settings.web_port}"
            ).rstrip("/")


def status_body(conn: Connection, set_id: str, outcome: str,
                settings: Settings) -> dict[str, Any]:
    """The notice: the set, its outcome and counts, its failures with their first error,
    its duration and links to its page."""
    counts = queue.status(conn, sets=[set_id])["sets"].get(set_id, {})
    failed = queue.list_failed(conn, set_id=set_id, limit=FAILURES_LISTED)
    runs = [t["run"] for t in queue.timings(conn, set_id).values() if "run" in t]
    started = min((t.first_at for t in runs), default=None)
    finished = max((t.last_at for t in runs), default=None)
    base = base_url(settings)
    return {
        "event": "run.finished", "set_id": set_id, "status": outcome,
        "counts": {s: int(counts.get(s, 0)) for s in queue.STATES},
        "failures": [{"kind": f["kind"], "key": f["key"], "attempts": f["attempt"],
                      "first_error": _first_error(conn, f)} for f in failed],
        "failures_total": int(counts.get("failed", 0)),
        "started_at": started.isoformat() if started else None,
        "finished_at": finished.isoformat() if finished else None,
        "duration_seconds": ((finished - started).total_seconds()
                             if started and finished else None),
        "links": {"page": f"{base}/sets/{quote(set_id)}",
                  "api": f"{base}/api/sets/{quote(set_id)}"},
        "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer, not an invitation to post elsewhere


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, secret: str, timeout: float) -> int:
    """POST a signed JSON body; the receiver's status, or :class:`CallbackFailed`."""
    headers = {"Content-Type": "application/json", "User-Agent": "renderer-callback",
               EVENT_HEADER: "run.finished", **signed_headers(secret, body)}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise CallbackFailed(f"callback {url} answered {exc.code} {exc.reason}",
                             "retried with backoff; see the set page") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CallbackFailed(f"callback {url} unreachable: {reason}",
                             "retried with backoff; see the set page") from None


# -- the stages ------------------------------------------------------------------------------

def sweep_stage(job: Job) -> None:
    """``callbacks-sweep``: queue the notices of the sets that have ended."""
    queued = sweep(job.conn)
    if queued:
        log.info("callbacks: queued the notices of %s", ", ".join(queued))


def notify(job: Job) -> None:
    """``notify``: post the set's status to its callback (key: the set id)."""
    found = get(job.conn, job.key)
    if found is None or found["state"] == "sent":
        return
    secret = job.settings.callbacks_secret
    if not secret:
        raise CallbackFailed("no callbacks secret configured: the notice cannot be signed",
                             "set [callbacks] secret (RENDERER_CALLBACKS_SECRET)")
    outcome = found["outcome"] or job.payload.get("outcome") or "done"
    body = json.dumps(status_body(job.conn, job.key, outcome, job.settings)).encode()
    code = post(found["url"], body, secret, job.settings.callbacks_timeout)
    job.conn.execute(db.query("ops.mark_sent"), {"set_id": job.key, "response": code})
    log.info("callback of set %s: %s answered %d", job.key, found["url"], code)
