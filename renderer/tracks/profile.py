"""The tracks pipeline's coupling to the engine: its queue kind and what its profile declares.

This is the one module of ``renderer.tracks`` that knows the engine. Today it registers the
export item's handler with :func:`renderer.queue.register` and plans a day's items with
:func:`renderer.queue.enqueue_many`; when pipelines become profiles, :data:`PROFILE` lists
what the tracks profile declares (its kinds, handlers, successors, schedules, HTTP runs and
run summary) and the handler takes its store from the job context instead of the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from renderer import db, queue
from renderer.storage import open_store
from renderer.tracks.bounded_index import export_bounded
from renderer.tracks.geohash_index import export_item, item_key, parse_item_key, prefixes

__all__ = ["INDEX_KIND", "PROFILE", "IndexRun", "index_item", "plan_index"]

INDEX_KIND = "tracks_index"

PROFILE: dict[str, Any] = {
    "name": "tracks",
    "kinds": {
        INDEX_KIND: {
            "key": "<geohash prefix | ALL>/<UTC day>",
            "handler": "renderer.tracks.profile.index_item",
            "time_limit": 3600, "max_attempts": 3, "batch_size": 1,
            "successors": [],  # the index of a day is a leaf: nothing fans in after it
        },
    },
    "schedules": [],  # a day stays open for late satellite data: export on demand
    "http_runs": {"tracks-index": "renderer.tracks.profile.plan_index (day, out)"},
    "run_summary": "items done per day; reports, objects and bytes per item (ItemResult)",
    "commands": "renderer.cli.tracks (ingest, rejects, query, sample, export-index)",
    "web": "renderer.web.tracks.include (GET /api/tracks, /tracks)",
    "schema": "sql/schema/tracks.sql (migration 0011)",
}


@dataclass(frozen=True)
class IndexRun:
    set_id: str
    day: date
    items: int


@queue.register(INDEX_KIND, time_limit=3600, max_attempts=3)
def index_item(job: queue.Job) -> None:
    """Write the static index objects of one (geohash prefix, day), or the size-bounded
    index of a day (key ``bounded-<m>/<day>``)."""
    prefix, day = parse_item_key(job.key)
    store = open_store(job.payload["out"])
    if prefix.startswith("bounded-"):
        export_bounded(job.conn, store, day, int(prefix.removeprefix("bounded-")))  # type: ignore[arg-type]
    else:
        export_item(job.conn, store, prefix, day)  # type: ignore[arg-type]


def plan_index(conn: db.Connection, day: date, out: str,
               max_reports: int | None = None) -> IndexRun:
    """Enqueue the export items of a day (one per geohash prefix with reports, and ``ALL``;
    or, with ``max_reports``, the one item of the size-bounded index) in a set of their own,
    in the caller's transaction; a rerun rewrites the objects."""
    found = prefixes(conn, day)
    if found and max_reports is not None:
        found = [f"bounded-{max_reports}"]
    if not found:
        return IndexRun("", day, 0)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    set_id = queue.create_set(conn, f"tracks index {day} @{stamp}",  # type: ignore[arg-type]
                              {"day": day.isoformat(), "out": out})
    n = queue.enqueue_many(conn, [  # type: ignore[arg-type]
        queue.NewItem(kind=INDEX_KIND, key=item_key(p, day), payload={"out": out},
                      set_id=set_id, force=True)
        for p in found])
    return IndexRun(set_id, day, n)
