"""The map-tiles pipeline, declared in one place: its two stages and how one asks for the
other, the run offered over HTTP and the run-until-idle batch (``renderer tiles render
--wait``). No default schedules: renders are started by ``renderer tiles render`` or
``POST /api/runs`` (``{"pipeline": "tiles", "stage": "render", "max_zoom": 8}``).

::

    maptiles-shapes (key: the deepest zoom of a band of zooms, payload ``first_zoom``: its
        first) --one per block of 16 x 16 tiles the band's shapes touch-->
        maptiles-block (key: z/bx/by)

Both stages are idempotent (a rerun replaces its output) and take everything from the item:
zoom or block from the key, the render options from the payload, the connection of its
transaction (``job.conn``).

This module and what it imports stay free of pyogrio (GDAL): every worker imports every
profile at start, and GDAL's import costs seconds on a busy machine. The region-type helpers
the stages need live in :mod:`.types` for that reason; only :mod:`.regions` and
:mod:`.sample` (the import commands) read files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from renderer import db, queue
from renderer.config import Settings
from renderer.errors import InputError
from renderer.maptiles.slice import Block, RenderOptions, blocks, prepare, render_block
from renderer.maptiles.zooms import build_band, zoom_bands
from renderer.profile import Batch, Finished, Next, Offer, Profile, Stage, Submitted, Then

__all__ = ["BLOCK_KIND", "KINDS", "MAX_ZOOM", "PROFILE", "SHAPES_KIND", "RenderRun",
           "RenderSummary", "Zoom", "plan_render", "render_options", "summary"]

log = logging.getLogger(__name__)

SHAPES_KIND = "maptiles-shapes"
BLOCK_KIND = "maptiles-block"
KINDS = [SHAPES_KIND, BLOCK_KIND]
MAX_ZOOM = 22


@dataclass(frozen=True)
class Zoom:
    """A ``maptiles-shapes`` key: one zoom level, ``"0"`` .. ``"22"``."""

    z: int

    @property
    def key(self) -> str:
        return str(self.z)

    @classmethod
    def parse(cls, key: str) -> Zoom:
        z = int(key)
        if not 0 <= z <= MAX_ZOOM:
            raise ValueError(f"zoom {z} is outside 0..{MAX_ZOOM}")
        return cls(z)


@dataclass(frozen=True)
class RenderRun:
    """What :func:`plan_render` enqueued."""

    set_id: str
    min_zoom: int
    max_zoom: int
    arcs: int
    enqueued: int


@dataclass(frozen=True)
class RenderSummary:
    """What ``renderer tiles render --wait`` did: the run planned, the items worked, the
    tiles now rendered per zoom."""

    run: RenderRun
    items_done: int
    items_failed: int
    seconds: float
    tiles: dict[int, int]


def render_options(min_zoom: int, max_zoom: int, resolution: int = 4) -> RenderOptions:
    """The options of a render, checked (InputError naming the fix)."""
    for name, value in (("min zoom", min_zoom), ("max zoom", max_zoom)):
        if not isinstance(value, int) or isinstance(value, bool) \
                or not 0 <= value <= MAX_ZOOM:
            raise InputError(f"invalid {name} {value!r}", f"use a zoom in 0..{MAX_ZOOM}")
    if min_zoom > max_zoom:
        raise InputError(f"min zoom {min_zoom} is above max zoom {max_zoom}",
                         "give a min zoom <= the max zoom")
    if not isinstance(resolution, int) or isinstance(resolution, bool) \
            or not 1 <= resolution <= 256 or 256 % resolution:
        raise InputError(f"UTFGrid resolution {resolution!r} does not divide 256",
                         "use 1, 2, 4, 8, ...")
    return RenderOptions(resolution=resolution)


def plan_render(conn: db.Connection, min_zoom: int, max_zoom: int,
                options: RenderOptions | None = None, *,
                priority: int = queue.PRIORITY_BATCH) -> RenderRun:
    """Zoom levels and arcs now, then one ``maptiles-shapes`` item per band of zooms (keyed
    by its deepest zoom, the first in the payload), in the caller's transaction (a crash
    before commit leaves neither)."""
    options = options or RenderOptions()
    arcs = prepare(conn, min_zoom, max_zoom, options.rules)
    set_id = queue.create_set(conn, f"maptiles {datetime.now(UTC):%Y-%m-%dT%H:%M:%S}",
                              {"min_zoom": min_zoom, "max_zoom": max_zoom})
    items = [queue.NewItem(SHAPES_KIND, Zoom(top).key,
                           {**options.to_payload(), "first_zoom": first}, set_id=set_id,
                           priority=priority, force=True)
             for first, top in zoom_bands(min_zoom, max_zoom, options.rules.band)]
    enqueued = queue.enqueue_many(conn, items)
    return RenderRun(set_id, min_zoom, max_zoom, arcs, enqueued)


# -- the stages -------------------------------------------------------------------------------

def handle_shapes(job: queue.Job) -> list[Block]:
    """The shapes of a band of zooms (the key its deepest, ``first_zoom`` in the payload
    its first; one zoom without it); its outcome is the blocks they touch (the
    successors)."""
    top = Zoom.parse(job.key).z
    first = Zoom.parse(str(job.payload.get("first_zoom", top))).z
    if first > top:
        raise ValueError(f"first zoom {first} is below the band's deepest {top}")
    options = RenderOptions.from_payload(job.payload)
    found = []
    for zoom, n in sorted(build_band(job.conn, first, top, options.rules).items()):
        here = [Block(zoom, bx, by) for bx, by in blocks(job.conn, zoom, options)]
        log.info("zoom %d: %d shapes, %d blocks", zoom, n, len(here))
        found.extend(here)
    return found


def blocks_of_zoom(job: queue.Job, found: list[Block]) -> Iterator[Next]:
    """One ``maptiles-block`` item per block the zoom's shapes touch, same options."""
    payload = {k: v for k, v in job.payload.items() if k != "first_zoom"}
    for block in found:
        yield Next(block.key, payload)


def handle_block(job: queue.Job) -> None:
    """One block of tiles."""
    render_block(job.conn, Block.parse(job.key), RenderOptions.from_payload(job.payload))


# -- the run offered to POST /api/runs, and the batch ---------------------------------------

def start_render(conn: db.Connection, spec: dict[str, Any], settings: Settings) -> str:
    """Render zooms ``min_zoom`` (default 0) .. ``max_zoom`` (default 14), on demand."""
    lo, hi = spec.get("min_zoom", 0), spec.get("max_zoom", 14)
    options = render_options(lo, hi)
    return plan_render(conn, lo, hi, options, priority=queue.PRIORITY_ON_DEMAND).set_id


def submit(conn: db.Connection, options: dict[str, Any], settings: Settings) -> Submitted:
    """Plan a render (``options``: ``min_zoom``, ``max_zoom``, ``resolution``)."""
    lo, hi = options.get("min_zoom", 0), options.get("max_zoom", 14)
    run = plan_render(conn, lo, hi, render_options(lo, hi, options.get("resolution", 4)))
    return Submitted(run.set_id, run.enqueued > 0, run)


def summarize(conn: db.Connection, finished: Finished) -> RenderSummary:
    """The run, the worker's counts and the tiles per zoom now in the database."""
    stats = finished.stats
    tiles = {r["z"]: r["tiles"] for r in conn.execute(db.query("maptiles.tiles_per_zoom"))}
    return RenderSummary(finished.submitted.detail, getattr(stats, "done", 0),
                         getattr(stats, "failed", 0), finished.seconds, tiles)


def summary(conn: db.Connection) -> dict[str, Any]:
    """Regions per type (with their zoom range) and tiles per zoom."""
    return {"types": list(conn.execute(db.query("maptiles.summary"))),
            "tiles": list(conn.execute(db.query("maptiles.tiles_per_zoom")))}


PROFILE = Profile(
    "tiles",
    stages=(
        Stage(SHAPES_KIND, handle_shapes, time_limit=3600, max_attempts=3, key=Zoom, then=(
            Then(BLOCK_KIND, blocks_of_zoom, force=True,
                 when="one per block of 16 x 16 tiles the band's shapes touch"),)),
        Stage(BLOCK_KIND, handle_block, time_limit=1800, max_attempts=3, key=Block),
    ),
    runs=(Offer("render", frozenset({"min_zoom", "max_zoom"}), start_render),),
    batch=Batch(submit, summarize),
)
