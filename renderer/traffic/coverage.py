"""Stage 4 of the traffic pipeline: the coverage GeoJSON, refreshed when reference tiles
change.

The document is one SQL statement, the function ``renderer.traffic_coverage_geojson()``
(migration 0004): a FeatureCollection with one polygon per tile, at every level, that has
reference data in any mode, with OpenTraffic's properties (``tileid``, ``level``,
``rangeStart``, ``rangeEnd``, ``rangeStartDate``, ``rangeEndDate``) plus ``segments``,
``observations`` (summed over modes) and ``modes``. It reads only the per-tile summaries
that reference tile builds keep up to date, so a refresh costs one small query however many
tiles exist; OpenTraffic instead crawled and HEADed every reference object in S3
(datastore#40). The refresh is incremental in what it touches: it runs only after reference
tiles changed (the ``coverage`` item, key ``coverage``, asked for by every ``reftile``, many
requests merging into one pending item), and it rewrites ``coverage.geojson`` only when its
bytes differ from what the store holds.

Example
-------
>>> refresh(conn, open_store("file:///srv/tiles"))  # doctest: +SKIP
Refresh(key='coverage.geojson', written=True, features=17, etag='9a0b...', bytes=8123)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from renderer.db import Connection, one, query
from renderer.profile import Next
from renderer.queue import Job
from renderer.storage import Store

__all__ = ["CONTENT_TYPE", "KEY", "KIND", "OBJECT_KEY", "Refresh", "for_reference", "geojson",
           "handle", "refresh"]

log = logging.getLogger(__name__)

KIND = "coverage"
KEY = "coverage"
OBJECT_KEY = "coverage.geojson"
CONTENT_TYPE = "application/geo+json"


@dataclass(frozen=True)
class Refresh:
    """What a refresh did: ``written`` False when the store already held these bytes."""

    key: str
    written: bool
    features: int
    etag: str
    bytes: int


def geojson(conn: Connection) -> tuple[str, int]:
    """The coverage FeatureCollection as GeoJSON text, and its number of features."""
    row = one(conn, "traffic_coverage.geojson")
    return row["geojson"], row["features"]


def refresh(conn: Connection, store: Store, *, force: bool = False) -> Refresh:
    """Build the coverage GeoJSON and write it to the store unless it is unchanged."""
    params: dict[str, Any] = {"key": OBJECT_KEY}
    conn.execute(query("traffic_coverage.lock"), params)
    text, features = geojson(conn)
    data = text.encode()
    etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
    state = conn.execute(query("traffic_coverage.state"), params).fetchone()
    if not force and state is not None and state["etag"] == etag:
        head = store.head(OBJECT_KEY)
        if head is not None and head.etag == etag:
            return Refresh(OBJECT_KEY, False, features, etag, len(data))
    store.put(OBJECT_KEY, data, content_type=CONTENT_TYPE)
    conn.execute(query("traffic_coverage.record"),
                 {**params, "etag": etag, "features": features})
    return Refresh(OBJECT_KEY, True, features, etag, len(data))


def for_reference(job: Job, built: object) -> list[Next]:
    """The coverage refresh a changed reference tile asks for (always the one item).

    A plain enqueue (forced, in the profile: a done refresh runs again), not a group rule:
    while a refresh is pending every further request merges into it (the queue's upsert),
    and one running is re-run once after. A rule over all reference tiles would let a
    single failed tile hold back the coverage of the world.
    """
    return [Next(KEY)]


def handle(job: Job) -> Refresh:
    """Refresh ``coverage.geojson`` in the configured store."""
    result = refresh(job.conn, job.store, force=bool(job.item.payload.get("force")))
    log.info("coverage: %d tiles, %s", result.features,
             "written" if result.written else "unchanged")
    return result
