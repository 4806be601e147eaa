"""UTFGrids of a tile: one per hierarchy of region types, painted by the C loop.

``paint`` is ``renderer._utfgrid.paint`` (built from ``ext/utfgrid.c``) when it imports,
else its pure-Python twin ``renderer._utfgrid_py.paint``; ``RENDERER_NO_EXT=1`` forces the
twin. ``IMPLEMENTATION`` says which is in use.

A tile carries one grid per hierarchy, a chain of types from a root of the type DAG to a
leaf (``Country > Province > Division`` and ``Country > Province > ElectoralDistrict``):
the regions of the chain's types are painted larger first, so the smallest region under a
cell wins. A grid with no region is dropped, a grid identical to an earlier one is dropped
(its hierarchy is added to the earlier one's ``hierarchies``), and a grid with a single key
is collapsed to one cell. Keys are region keys (``"Province-11"``), ``""`` for no region.

The default resolution is 4 pixels per character: a 64 x 64 grid (4,096 characters) where 1
pixel would take 65,536; the mouse's own precision is a few pixels, and it is UTFGrid's usual
resolution (mapnik's and TileStache's default), so every client expects it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from renderer import _utfgrid_py, kernels

__all__ = ["IMPLEMENTATION", "RESOLUTION", "Paint", "chains", "decode", "grid",
           "implementations", "paint", "tile_grids"]

RESOLUTION = 4
Paint = Callable[..., tuple[list[str], list[int]]]


paint: Paint
paint, IMPLEMENTATION = kernels.pick("_utfgrid", "paint", _utfgrid_py.paint)


def implementations() -> dict[str, Paint]:
    """Every implementation available here (the C one whenever it imports)."""
    return kernels.both("_utfgrid", "paint", _utfgrid_py.paint)


def grid(shapes: Sequence[bytes | None], keys: Sequence[str], *, size: int = 256,
         resolution: int = RESOLUTION, painter: Paint | None = None) -> dict[str, Any] | None:
    """The UTFGrid 1.2 object of ``shapes`` (painted in order) keyed by ``keys``; None when
    no cell has a region; one cell when a single region fills every cell."""
    rows, order = (painter or paint)(shapes, size, resolution)
    if order == [-1]:
        return None
    names = [keys[i] if i >= 0 else "" for i in order]
    if len(names) == 1:
        return {"grid": [rows[0][0]], "keys": names}
    return {"grid": rows, "keys": names}


def decode(utfgrid: Mapping[str, Any]) -> list[list[str]]:
    """The key of every cell (a collapsed grid gives one cell)."""
    ids = {_utfgrid_py.codepoint(i): key for i, key in enumerate(utfgrid["keys"])}
    return [[ids[ord(ch)] for ch in row] for row in utfgrid["grid"]]


def chains(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every root-to-leaf path of the type DAG (roots first), in a stable order."""
    children: dict[str, list[str]] = {t: [] for t in graph}
    for child, parents in graph.items():
        for parent in parents:
            children.setdefault(parent, []).append(child)
    roots = sorted(t for t in children if not graph.get(t))
    paths: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        below = sorted(children.get(node, []))
        if not below:
            paths.append(path)
        for child in below:
            walk(child, [*path, child])

    for root in roots:
        walk(root, [root])
    return paths


def tile_grids(pieces: Sequence[tuple[str, str, bytes | None]], hierarchies: Sequence[list[str]],
               *, resolution: int = RESOLUTION) -> list[dict[str, Any]]:
    """The grids of one tile from its pieces (key, type, WKB in tile pixels or None for
    covering), ordered larger region first, one per hierarchy, deduplicated."""
    out: list[dict[str, Any]] = []
    for chain in hierarchies:
        wanted = set(chain)
        mine = [(key, wkb) for key, kind, wkb in pieces if kind in wanted]
        if not mine:
            continue
        g = grid([w for _, w in mine], [k for k, _ in mine], resolution=resolution)
        if g is None:
            continue
        name = " > ".join(chain)
        for earlier in out:
            if earlier["grid"] == g["grid"] and earlier["keys"] == g["keys"]:
                earlier["hierarchies"].append(name)
                break
        else:
            out.append({**g, "hierarchies": [name]})
    return out
