"""Slicing: the shapes of a zoom cut into tiles, one block of tiles per work item.

A block is the 16 x 16 tiles of zoom z under one tile of zoom z - 4 (the whole zoom below
zoom 4). Per block, in the item's transaction, one statement (``cut_block``) cuts the shapes
into tile pieces (``ST_TileEnvelope`` with a margin of a few pixels, ``ST_ClipByBox2D`` to
the block once, the boxes of ``ST_Subdivide``'s parts to find the tiles of huge polygons,
``ST_ClipByBox2D`` per tile; a shape covering a tile is recorded as ``covers``, once,
without geometry), writes the pieces and their feature text (one ``tile_regions`` row a
tile), and returns the pieces in tile pixels, which are painted into UTFGrids
(:mod:`.utfgrid`); the tiles' rows are copied in. A rerun replaces the block.

Example
-------
>>> with db.transaction(url) as conn:
...     prepare(conn, 0, 8)                      # zoom levels and shared arcs
...     build_shapes(conn, 5)                    # one zoom's shapes
...     for bx, by in blocks(conn, 5): render_block(conn, 5, bx, by)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from renderer import db
from renderer.maptiles import utfgrid
from renderer.maptiles.types import type_graph
from renderer.maptiles.zooms import WORLD, ZoomRules, build_arcs, digits, set_min_zooms

__all__ = ["BLOCK_LEVELS", "Block", "RenderOptions", "blocks", "cut_block", "paint_block",
           "prepare", "render_block"]

log = logging.getLogger(__name__)

BLOCK_LEVELS = 4  # a block is 2^4 x 2^4 tiles


@dataclass(frozen=True)
class RenderOptions:
    """How tiles are cut and painted."""

    margin_px: float = 4.0             # pixels of neighbouring tiles a piece keeps
    resolution: int = utfgrid.RESOLUTION
    rules: ZoomRules = field(default_factory=ZoomRules)

    def to_payload(self) -> dict[str, Any]:
        return {"margin_px": self.margin_px, "resolution": self.resolution}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> RenderOptions:
        return cls(margin_px=float(payload.get("margin_px", 4.0)),
                   resolution=int(payload.get("resolution", utfgrid.RESOLUTION)))


@dataclass(frozen=True)
class Block:
    """The tiles x0..x1, y0..y1 of zoom z under tile (z - k, bx, by)."""

    z: int
    bx: int
    by: int

    @property
    def k(self) -> int:
        return min(self.z, BLOCK_LEVELS)

    @property
    def key(self) -> str:
        return f"{self.z}/{self.bx}/{self.by}"

    @classmethod
    def parse(cls, key: str) -> Block:
        z, bx, by = (int(p) for p in key.split("/"))
        return cls(z, bx, by)

    def params(self, options: RenderOptions) -> dict[str, Any]:
        side = 2**self.k
        size = WORLD / 2**self.z
        margin = options.margin_px / 256
        return {"z": self.z, "k": self.k, "bx": self.bx, "by": self.by,
                "x0": self.bx * side, "x1": self.bx * side + side - 1,
                "y0": self.by * side, "y1": self.by * side + side - 1,
                "size": size, "margin": margin, "pad": margin * size,
                "tile_area": (size * (1 + 2 * margin)) ** 2,
                "digits": digits(self.z, options.rules.grid_px)}


def prepare(conn: db.Connection, min_zoom: int, max_zoom: int,
            rules: ZoomRules | None = None) -> int:
    """Zoom levels, shared arcs, and the zooms' earlier output removed; returns the number
    of arcs."""
    set_min_zooms(conn, rules or ZoomRules())
    conn.execute(db.query("maptiles.delete_zooms"), {"min_zoom": min_zoom, "max_zoom": max_zoom})
    return build_arcs(conn)


def blocks(conn: db.Connection, zoom: int, options: RenderOptions | None = None
           ) -> list[tuple[int, int]]:
    """The blocks of ``zoom`` that some shape touches (``build_shapes`` first)."""
    options = options or RenderOptions()
    k = min(zoom, BLOCK_LEVELS)
    size = WORLD / 2 ** (zoom - k)
    rows = conn.execute(db.query("maptiles.blocks_at_zoom"), {
        "zoom": zoom, "k": k, "size": size, "n": 2 ** (zoom - k),
        "margin": options.margin_px / 256, "pad": options.margin_px / 256 * WORLD / 2**zoom})
    return [(r["block_x"], r["block_y"]) for r in rows]


def render_block(conn: db.Connection, block: Block,
                 options: RenderOptions | None = None) -> int:
    """Pieces, feature text and UTFGrids of one block; returns the number of tiles."""
    options = options or RenderOptions()
    pieces = cut_block(conn, block, options)
    return paint_block(conn, block, pieces, utfgrid.chains(type_graph(conn)),
                       options.resolution)


def cut_block(conn: db.Connection, block: Block, options: RenderOptions) -> list[Any]:
    """The block's earlier output replaced by its pieces and feature text; returns the
    pieces in tile pixels, tuples (``x``, ``y``, ``key``, ``type``, ``wkb``), for
    :func:`paint_block`, tile by tile, larger regions first."""
    params = block.params(options)
    conn.execute(db.query("maptiles.delete_block"), params)
    # tuples, in binary: the WKB comes as bytes (not hex text the server writes and the
    # client decodes)
    with conn.cursor(row_factory=db.tuple_row) as cur:
        return cur.execute(db.query("maptiles.cut_block"), params, binary=True).fetchall()


def paint_block(conn: db.Connection, block: Block, pieces: list[Any],
                hierarchies: list[list[str]], resolution: int) -> int:
    """The UTFGrids of the block's tiles from their pieces, copied in (the COPY rows of
    every tile made by ``utfgrid.tiles_copy`` in one call); returns the tiles."""
    rows = utfgrid.tiles_copy(pieces, utfgrid.chain_sets(hierarchies), block.z,
                              resolution=resolution)
    with conn.cursor() as cur, cur.copy(db.query("maptiles.copy_tiles")) as copy:
        copy.write(rows)
    return rows.count(b"\n")
