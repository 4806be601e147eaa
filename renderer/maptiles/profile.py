"""The map-tiles profile: the one module coupling the pipeline to the engine.

What the profile declares (for the engine's profiles when they land):

- kinds: ``maptiles-shapes`` (key: the zoom) builds one zoom's shapes, then enqueues its
  blocks (successor: ``maptiles-block``); ``maptiles-block`` (key ``z/bx/by``) cuts,
  writes feature text and paints UTFGrids for 16 x 16 tiles. Both idempotent: a rerun
  replaces its output.
- schedules: none (renders are started by ``renderer tiles render``).
- HTTP runs: none yet; the tiles are served by ``renderer.web.tiles``.
- run summary: :func:`summary` (regions per type and zoom range, tiles per zoom).

Handlers take everything from the item (zoom, block, options in the payload) and the
connection of its transaction; nothing from the environment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from renderer import db, queue
from renderer.maptiles.slice import Block, RenderOptions, blocks, prepare, render_block
from renderer.maptiles.zooms import build_shapes

__all__ = ["BLOCK_KIND", "KINDS", "SHAPES_KIND", "RenderRun", "plan_render", "summary"]

log = logging.getLogger(__name__)

SHAPES_KIND = "maptiles-shapes"
BLOCK_KIND = "maptiles-block"
KINDS = [SHAPES_KIND, BLOCK_KIND]
SUCCESSORS = {SHAPES_KIND: [BLOCK_KIND], BLOCK_KIND: []}


@dataclass(frozen=True)
class RenderRun:
    """What :func:`plan_render` enqueued."""

    set_id: str
    min_zoom: int
    max_zoom: int
    arcs: int
    enqueued: int


def plan_render(conn: db.Connection, min_zoom: int, max_zoom: int,
                options: RenderOptions | None = None) -> RenderRun:
    """Zoom levels and arcs now, then one ``maptiles-shapes`` item per zoom, in the caller's
    transaction (a crash before commit leaves neither)."""
    options = options or RenderOptions()
    arcs = prepare(conn, min_zoom, max_zoom, options.rules)
    set_id = queue.create_set(conn, f"maptiles {datetime.now(UTC):%Y-%m-%dT%H:%M:%S}",
                              {"min_zoom": min_zoom, "max_zoom": max_zoom})
    items = [queue.NewItem(SHAPES_KIND, str(z), options.to_payload(), set_id=set_id, force=True)
             for z in range(min_zoom, max_zoom + 1)]
    enqueued = queue.enqueue_many(conn, items)
    return RenderRun(set_id, min_zoom, max_zoom, arcs, enqueued)


@queue.register(SHAPES_KIND, time_limit=3600, max_attempts=3)
def shapes_item(job: queue.Job) -> None:
    """One zoom's shapes, then its blocks."""
    zoom = int(job.key)
    options = RenderOptions.from_payload(job.payload)
    n = build_shapes(job.conn, zoom, options.rules)
    found = blocks(job.conn, zoom, options)
    for bx, by in found:
        job.enqueue(BLOCK_KIND, Block(zoom, bx, by).key, job.payload, force=True)
    log.info("zoom %d: %d shapes, %d blocks", zoom, n, len(found))


@queue.register(BLOCK_KIND, time_limit=1800, max_attempts=3)
def block_item(job: queue.Job) -> None:
    """One block of tiles."""
    render_block(job.conn, Block.parse(job.key), RenderOptions.from_payload(job.payload))


def summary(conn: db.Connection) -> dict[str, Any]:
    """Regions per type (with their zoom range) and tiles per zoom."""
    return {"types": list(conn.execute(db.query("maptiles.summary"))),
            "tiles": list(conn.execute(db.query("maptiles.tiles_per_zoom")))}
