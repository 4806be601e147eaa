"""Stage 4 of the traffic pipeline: the coverage GeoJSON, refreshed when reference tiles
change.

The document is one SQL statement, the function ``renderer.traffic_coverage_geojson_v2()``
(migration 0014): a FeatureCollection with one polygon per tile, at every level, that has
reference data in any mode, with the properties of OpenTraffic's coverage map (``tileid``,
``rangeStart``, ``rangeEnd``, ``rangeStartDate``, ``rangeEndDate``) plus our own ``level``,
``segments``, ``observations`` (summed over modes) and ``modes``.

OpenTraffic's map (its ``make_coverage_map.py``) listed level-1 tiles only, each with styling
properties for map viewers (``fillOpacity``, ``color``, ``fill``, ``fillColor``,
``contour``, ``opacity``, ``fill-opacity``). Ours lists every level by default, since data
that is all level 0 (highways only) would otherwise show nothing; ``levels=[1]`` and
``opentraffic_style=True`` give OpenTraffic's selection and styling (``renderer traffic
coverage --levels 1 --opentraffic-style``). The styling is opt-in: the stored
``coverage.geojson`` and the ``/coverage`` page keep the plain document, whose bytes (and
so its etag) stay what they were. It reads only the per-tile summaries
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from renderer.db import Connection, one, query
from renderer.errors import InputError
from renderer.profile import Next
from renderer.queue import Job
from renderer.storage import Store

__all__ = ["CONTENT_TYPE", "KEY", "KIND", "LEVELS", "OBJECT_KEY", "STYLE", "Refresh",
           "for_reference", "geojson", "handle", "parse_levels", "refresh"]

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


LEVELS = (0, 1, 2)
STYLE = {"fillOpacity": 0.33, "color": "#50bf40", "fill": "#50bf40", "fillColor": "#50bf40",
         "contour": 15, "opacity": 0.33, "fill-opacity": 0.33}
"""OpenTraffic's styling properties, as its coverage map wrote them on every feature."""


def parse_levels(text: str) -> list[int]:
    """``"0,1"`` -> ``[0, 1]``: a subset of the tile levels, sorted, without repeats.

    >>> parse_levels("1, 0,1")
    [0, 1]
    """
    found = set()
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) not in LEVELS:
            raise InputError(f"--levels {text!r}: {part!r} is not a tile level",
                             "give levels among 0, 1, 2, e.g. --levels 1 or --levels 0,1")
        found.add(int(part))
    return sorted(found)


def geojson(conn: Connection, levels: Sequence[int] | None = None,
            opentraffic_style: bool = False) -> tuple[str, int]:
    """The coverage FeatureCollection as GeoJSON text, and its number of features: the tiles
    of ``levels`` (None: every level), with OpenTraffic's styling properties (:data:`STYLE`)
    on every feature when ``opentraffic_style``."""
    row = one(conn, "traffic_coverage.geojson",
              {"levels": None if levels is None else list(levels),
               "opentraffic_style": opentraffic_style})
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
