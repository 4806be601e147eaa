"""Status pages, each with a JSON twin under ``/api``: home, sets, a set, an item, coverage.

The data comes from the queue's own read functions (:func:`renderer.queue.status`,
``list_sets``, ``list_failed``, ``item_history``), which read counters, never COUNT(*);
``sql/web.sql`` holds the little the queue does not expose (hourly throughput). A set's
durations come from the queue's timing histograms (:func:`renderer.queue.timings`).
Pages are rendered with autoescaping: keys and error texts are user data.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from renderer import callbacks, queue
from renderer.db import Connection, query
from renderer.errors import ObjectNotFound
from renderer.storage import open_store
from renderer.web.coverage import CoverageView, coverage_view
from renderer.web.deps import WebError, WebState, state

router = APIRouter()
HOURS = 12  # the queue keeps a day of per-minute rates; half a day reads well as bars
COVERAGE_KEY = "coverage.geojson"
SETS_PAGE = 50  # sets per page of /sets: a keyset page, as cheap deep as at the top
STATES = queue.STATES


def _zero() -> dict[str, Any]:
    return {**dict.fromkeys(STATES, 0), "throughput_per_s": 0.0, "eta_s": None,
            "oldest_pending_s": None}


def _set_row(info: dict[str, Any], counts: dict[str, Any] | None) -> dict[str, Any]:
    c = {**_zero(), **(counts or {})}
    total = sum(int(c[s]) for s in STATES)
    # An active set with nothing left to run is done (its items done, failed or cancelled):
    # say so instead of "active" with an ETA of 0 ms.
    finished = total > 0 and not any(int(c[s]) for s in ("pending", "running", "held"))
    status = "done" if finished and info.get("state") == "active" else info.get("state")
    if finished:
        c["eta_s"] = None
    return {"id": info["id"], "name": (info.get("info") or {}).get("name") or info["id"],
            "state": info.get("state"), "status": status, "info": info.get("info") or {},
            "created_at": info.get("created_at"), "changed_at": info.get("changed_at"),
            "total": total, **{s: int(c[s]) for s in STATES},
            "throughput_per_s": c["throughput_per_s"], "eta_s": c["eta_s"],
            "oldest_pending_s": c["oldest_pending_s"],
            "throttle": {k: info.get(k) for k in ("in_flight", "per_hour") if info.get(k)}}


def home_data(conn: Connection, *, hours: int = HOURS) -> dict[str, Any]:
    recent = queue.list_sets(conn, limit=10)
    st = queue.status(conn, sets=[s["id"] for s in recent])
    kinds = [{"kind": name, **counts} for name, counts in sorted(st["kinds"].items())]
    throughput = conn.execute(query("web.throughput_hours"), {"hours": hours}).fetchall()
    sets = [_set_row(s, st["sets"].get(s["id"])) for s in recent]
    total = {**_zero(), **st["total"]}
    # Work waiting and no worker alive: nothing will happen until one starts (a schedule's
    # tick under `renderer serve` alone waits forever); the page says so.
    idle = bool(total["pending"]) and not st["workers_alive"]
    return {"at": st["at"], "total": total, "kinds": kinds,
            "hours": hours, "throughput": throughput, "workers": st["workers"],
            "workers_alive": st["workers_alive"], "nothing_working": idle, "sets": sets}


def _cursor(before: str | None) -> tuple[datetime, str] | None:
    """A page cursor, ``<created_at ISO>|<set id>`` of the last set of the previous page."""
    if not before:
        return None
    at, sep, last = before.partition("|")
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        when = None
    if not sep or when is None or when.tzinfo is None:
        raise WebError(400, f"bad page cursor {before!r}", "follow the page's own links")
    return when, last


def sets_data(conn: Connection, *, before: str | None = None,
              limit: int = SETS_PAGE) -> dict[str, Any]:
    """A page of sets, newest first, after the cursor ``before``; ``next`` is the cursor of
    the page after it (None on the last page)."""
    found = queue.list_sets(conn, limit=limit + 1, before=_cursor(before))
    page = found[:limit]
    st = queue.status(conn, sets=[s["id"] for s in page])
    last = page[-1] if len(found) > limit else None
    return {"sets": [_set_row(s, st["sets"].get(s["id"])) for s in page],
            "before": before or None,
            "next": f"{last['created_at'].isoformat()}|{last['id']}" if last else None}


def set_data(conn: Connection, set_id: str) -> dict[str, Any]:
    found = queue.list_sets(conn, set_id=set_id)
    if not found:
        raise WebError(404, f"no set {set_id!r}")
    st = queue.status(conn, sets=[set_id])
    row = _set_row(found[0], st["sets"].get(set_id))
    runs = {kind: t["run"] for kind, t in queue.timings(conn, set_id).items() if "run" in t}
    failures = queue.list_failed(conn, set_id=set_id, limit=500)
    kinds = sorted({*runs, *(f["kind"] for f in failures)})
    row["first_started"] = min((t.first_at for t in runs.values()), default=None)
    row["last_finished"] = max((t.last_at for t in runs.values()), default=None)
    end = (row["last_finished"] if row["pending"] + row["running"] + row["held"] == 0
           else datetime.now(UTC))
    start = row["first_started"]
    row["elapsed_seconds"] = (end - start).total_seconds() if start and end else None
    failed_by_kind: dict[str, int] = {}
    for f in failures:
        failed_by_kind[f["kind"]] = failed_by_kind.get(f["kind"], 0) + 1
    return {"set": row,
            "kinds": [{"kind": k, "failed": failed_by_kind.get(k, 0), **_run_stats(runs.get(k))}
                      for k in kinds],
            "failures": [{**f, "error": f.get("last_error")} for f in failures],
            "callback": callbacks.view(conn, set_id)}


def _run_stats(run: queue.Timing | None) -> dict[str, Any]:
    """Completions and run times of one kind; the percentiles are bucket estimates."""
    if run is None:
        return {"done": 0, "mean_seconds": None, "p50_seconds": None, "p95_seconds": None,
                "max_seconds": None}
    return {"done": run.count, "mean_seconds": run.mean_seconds,
            "p50_seconds": run.quantile(0.5), "p95_seconds": run.quantile(0.95),
            "max_seconds": run.max_seconds}


def item_data(conn: Connection, kind: str, key: str) -> dict[str, Any]:
    item = queue.item_history(conn, kind, key)
    if item is None:
        raise WebError(404, f"no item {kind} {key}")
    attempts = item.pop("attempts", [])
    return {"kind": kind, "key": key, "item": item, "attempts": attempts}


class _CoverageCache:
    """The parsed coverage, kept until the object's etag changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.etag: str | None = None
        self.data: tuple[dict[str, Any], CoverageView] | None = None


_coverage_cache = _CoverageCache()


def coverage_data(web: WebState) -> tuple[dict[str, Any] | None, CoverageView | None]:
    store = open_store(web.settings.store_url)
    info = store.head(COVERAGE_KEY)
    if info is None:
        return None, None
    with _coverage_cache.lock:
        if _coverage_cache.etag == info.etag and _coverage_cache.data is not None:
            return _coverage_cache.data
    try:
        document = json.loads(store.get(COVERAGE_KEY))
    except ObjectNotFound:
        return None, None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebError(502, f"{COVERAGE_KEY} in the store is not JSON: {exc}") from exc
    view = coverage_view(document)
    with _coverage_cache.lock:
        _coverage_cache.etag, _coverage_cache.data = info.etag, (document, view)
    return document, view


def _page(request: Request, template: str, title: str, api_url: str,
          **context: Any) -> HTMLResponse:
    html = state(request).templates.get_template(template).render(
        title=title, api_url=api_url, now=datetime.now(UTC), **context)
    return HTMLResponse(html)


# -- pages -----------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    with state(request).connection() as conn:
        data = home_data(conn)
    return _page(request, "home.html", "Queue", "/api", **data)


@router.get("/sets", response_class=HTMLResponse)
def sets_page(request: Request, before: str | None = None) -> HTMLResponse:
    with state(request).connection() as conn:
        data = sets_data(conn, before=before)
    return _page(request, "sets.html", "Sets", "/api/sets", **data)


@router.get("/sets/{set_id:path}", response_class=HTMLResponse)
def set_page(request: Request, set_id: str) -> HTMLResponse:
    with state(request).connection() as conn:
        data = set_data(conn, set_id)
    return _page(request, "set.html", f"Set {set_id}", f"/api/sets/{set_id}", **data)


@router.get("/items/{kind}/{key:path}", response_class=HTMLResponse)
def item_page(request: Request, kind: str, key: str) -> HTMLResponse:
    with state(request).connection() as conn:
        data = item_data(conn, kind, key)
    return _page(request, "item.html", f"{kind} {key}", f"/api/items/{kind}/{key}", **data)


@router.get("/coverage", response_class=HTMLResponse)
def coverage_page(request: Request) -> HTMLResponse:
    _, view = coverage_data(state(request))
    levels = sorted({t.level for t in view.tiles if t.level is not None}) if view else []
    return _page(request, "coverage.html", "Coverage", "/api/coverage", view=view,
                 levels=levels)


@router.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    """The HTTP API from its OpenAPI document, rendered here: FastAPI's Swagger page loads
    its scripts from a CDN, which our Content-Security-Policy (rightly) blocks."""
    spec = request.app.openapi()
    endpoints = [{"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                  "description": op.get("description", ""),
                  "parameters": [{"name": p["name"], "in": p["in"],
                                  "required": p.get("required", False),
                                  "description": p.get("description", "")}
                                 for p in op.get("parameters", [])],
                  "body": "requestBody" in op}
                 for path, ops in sorted(spec.get("paths", {}).items())
                 for method, op in ops.items() if isinstance(op, dict)]
    return _page(request, "api_docs.html", "HTTP API", "/api/openapi.json",
                 endpoints=endpoints, version=spec.get("info", {}).get("version", ""))


# -- JSON twins ------------------------------------------------------------------------------

@router.get("/api")
def home_api(request: Request) -> dict[str, Any]:
    with state(request).connection() as conn:
        return home_data(conn)


@router.get("/api/sets")
def sets_api(request: Request, before: str | None = None) -> dict[str, Any]:
    """A page of sets, newest first; ``next`` is the ``before`` of the following page."""
    with state(request).connection() as conn:
        return sets_data(conn, before=before)


@router.get("/api/sets/{set_id:path}")
def set_api(request: Request, set_id: str) -> dict[str, Any]:
    with state(request).connection() as conn:
        return set_data(conn, set_id)


@router.get("/api/items/{kind}/{key:path}")
def item_api(request: Request, kind: str, key: str) -> dict[str, Any]:
    with state(request).connection() as conn:
        return item_data(conn, kind, key)


@router.get("/api/coverage")
def coverage_api(request: Request) -> dict[str, Any]:
    document, view = coverage_data(state(request))
    if view is None or document is None:
        return {"available": False, "key": COVERAGE_KEY, "tiles": []}
    return {"available": True, "key": COVERAGE_KEY, "bbox": view.bbox,
            "tiles": [t.properties | {"tooltip": t.tooltip} for t in view.tiles]}
