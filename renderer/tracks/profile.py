"""The tracks pipeline, declared in one place: the static index export, one stage.

::

    tracks_index (a leaf: nothing fans in after it; no schedule, a day stays open for late
    satellite data, so the index is exported on demand: ``renderer tracks export-index``)

The items of a run are planned by :func:`plan_index` in a set of their own. The output
root is the run's choice (``--out``), so it travels in each item's payload rather than being
the configured store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from renderer import db, queue
from renderer.profile import Profile, Stage
from renderer.storage import open_store
from renderer.tracks.bounded_index import export_bounded
from renderer.tracks.geohash_index import export_item, item_key, parse_item_key, prefixes

__all__ = ["INDEX_KIND", "PROFILE", "IndexRun", "index_item", "plan_index"]

INDEX_KIND = "tracks_index"


@dataclass(frozen=True)
class IndexRun:
    set_id: str
    day: date
    items: int


def index_item(job: queue.Job) -> Any:
    """Write the static index objects of one (geohash prefix, day), or the size-bounded
    index of a day (key ``bounded-<m>/<day>``), under the run's output root."""
    prefix, day = parse_item_key(job.key)
    store = open_store(job.payload["out"])
    if prefix.startswith("bounded-"):
        return export_bounded(job.conn, store, day, int(prefix.removeprefix("bounded-")))
    return export_item(job.conn, store, prefix, day)


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
    set_id = queue.create_set(conn, f"tracks index {day} @{stamp}",
                              {"day": day.isoformat(), "out": out})
    n = queue.enqueue_many(conn, [
        queue.NewItem(kind=INDEX_KIND, key=item_key(p, day), payload={"out": out},
                      set_id=set_id, force=True)
        for p in found])
    return IndexRun(set_id, day, n)


PROFILE = Profile(
    "tracks",
    stages=(Stage(INDEX_KIND, index_item, time_limit=3600, max_attempts=3),),
)
