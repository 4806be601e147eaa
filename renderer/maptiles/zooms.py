"""Zoom levels and per-zoom shapes (the bulk work is in ``sql/maptiles.sql``).

A region appears from the zoom at which it covers about 400 square pixels of a 256-px tile
(its geodesic area at its latitude's scale); siblings (regions of one type with the same
first parent) appear together, when their average does; a child never before its parent.

Per zoom, shapes are simplified so that shared borders stay shared. PostGIS 3.4's
``ST_CoverageSimplify`` would do it, but Debian 12 ships PostGIS 3.3, so the arcs are
shared explicitly: every boundary of every type is noded once and merged into arcs between
junctions (a border of two provinces, or of a province and its county, is one arc); per
zoom each arc is simplified once (half a pixel) and snapped to a quarter pixel, and each
type's arcs are noded again and polygonized into faces, which partition the plane: a face
goes to the region it lies in. Neighbours therefore never overlap, and a gap can only be
where there was no region. Islands under 6x6 px are dropped (each region keeps its largest
part). PostGIS topology (``postgis_topology``, in Debian's package too) would keep borders
shared as well, with a topology schema to build and maintain; it was not tried: the arcs are
the part of it this needs. On the sample (3,500 regions, 7,000 arcs) the arcs take about 1 s
and one zoom's shapes 0.3-0.5 s of CPU.

Zooms are simplified in bands of ``ZoomRules.band`` (2): the shapes are built once, for the
band's deepest zoom, and the zooms above it in the band take them with only their own
islands dropped and their own regions kept (``copy_shapes``, a few percent of a build). A
zoom of a band so gets half its own pixel's tolerance and coordinates to an eighth of its
pixel (finer than its own rules, never coarser; its borders are the deeper zoom's, so they
stay shared), and about 5 % more vertices (zoom 11 of the sample: 47,525 points for
45,181). A zoom whose types the deeper zoom does not draw (a type capped between the two)
is built on its own.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from renderer import db
from renderer.maptiles.types import check_dag, type_graph

__all__ = ["WORLD", "ZoomRules", "build_arcs", "build_band", "build_shapes", "pixel_m",
           "set_min_zooms", "zoom_bands"]

log = logging.getLogger(__name__)

WORLD = 40075016.68557849  # Web Mercator's width in metres (256 * 2^z pixels at zoom z)


@dataclass(frozen=True)
class ZoomRules:
    """The thresholds of the zoom levels and of simplification, in pixels."""

    min_px: float = 400.0       # area from which a region (its siblings' average) appears
    island_px: float = 36.0     # area under which a secondary part is dropped (6x6 px)
    tolerance_px: float = 0.5   # Douglas-Peucker tolerance of the shared arcs
    grid_px: float = 0.25       # coordinates kept to a quarter pixel
    band: int = 2               # zooms sharing one simplification (their deepest zoom's)


def pixel_m(zoom: int) -> float:
    """The size of a pixel in Web Mercator metres at ``zoom`` (256-px tiles)."""
    return WORLD / (256 * 2**zoom)


def digits(zoom: int, grid_px: float = 0.25) -> int:
    """Decimals of a longitude that keep ``grid_px`` of a pixel at ``zoom``."""
    return max(0, math.ceil(math.log10(256 * 2**zoom / (360 * grid_px))))


def set_min_zooms(conn: db.Connection, rules: ZoomRules | None = None) -> None:
    """Give every region its ``min_zoom``, types parents first."""
    rules = rules or ZoomRules()
    for region_type in check_dag(type_graph(conn)):
        conn.execute(db.query("maptiles.zoom_type"),
                     {"type": region_type, "min_px": rules.min_px})


def build_arcs(conn: db.Connection) -> int:
    """Rebuild the shared arcs of every region boundary; returns their number."""
    conn.execute(db.query("maptiles.build_arcs"))
    return int(db.scalar(conn, "maptiles.arc_count"))


def zoom_bands(min_zoom: int, max_zoom: int, band: int = 2) -> list[tuple[int, int]]:
    """The bands of zooms min..max as (first, deepest), deepest first: each band's shapes
    are built once, for its deepest zoom (:func:`build_band`)."""
    if band < 1:
        raise ValueError(f"a band of {band} zooms")
    return [(max(min_zoom, top - band + 1), top)
            for top in range(max_zoom, min_zoom - 1, -band)]


def _visible_types(conn: db.Connection, zoom: int) -> list[str]:
    return [r["type"] for r in conn.execute(db.query("maptiles.visible_types"), {"zoom": zoom})]


def build_band(conn: db.Connection, first: int, deepest: int,
               rules: ZoomRules | None = None) -> dict[int, int]:
    """Rebuild the shapes of zooms ``first``..``deepest``: built for ``deepest``, taken
    from it by the zooms above (their islands dropped, their regions kept); a zoom whose
    types ``deepest`` does not draw is built on its own. Returns the shapes per zoom."""
    rules = rules or ZoomRules()
    counts = {deepest: build_shapes(conn, deepest, rules)}
    drawn = set(_visible_types(conn, deepest))
    for zoom in range(deepest - 1, first - 1, -1):
        types = _visible_types(conn, zoom)
        if not set(types) <= drawn:
            counts[zoom] = build_shapes(conn, zoom, rules)
            continue
        conn.execute(db.query("maptiles.delete_shapes"), {"zoom": zoom})
        counts[zoom] = conn.execute(db.query("maptiles.copy_shapes"), {
            "zoom": zoom, "source": deepest, "types": types,
            "island": rules.island_px * pixel_m(zoom) ** 2}).rowcount if types else 0
    return counts


def build_shapes(conn: db.Connection, zoom: int, rules: ZoomRules | None = None) -> int:
    """Rebuild the shapes of every region visible at ``zoom``; returns their number."""
    rules = rules or ZoomRules()
    types = _visible_types(conn, zoom)
    conn.execute(db.query("maptiles.delete_shapes"), {"zoom": zoom})
    if not types:
        return 0
    px = pixel_m(zoom)
    cur = conn.execute(db.query("maptiles.shapes_at_zoom"), {
        "zoom": zoom, "types": types, "tolerance": rules.tolerance_px * px,
        "grid": rules.grid_px * px, "island": rules.island_px * px * px})
    return cur.rowcount
