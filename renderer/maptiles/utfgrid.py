"""UTFGrids of a tile: one per hierarchy of region types, painted by the C loop.

``paint`` is ``renderer._utfgrid.paint`` (built from ``ext/utfgrid.c``) when it imports,
else its pure-Python twin ``renderer._utfgrid_py.paint``; ``RENDERER_NO_EXT=1`` forces the
twin. ``IMPLEMENTATION`` says which is in use. ``tiles_copy`` does a block's tiles at once,
their grids' JSON written as the COPY rows of ``tiles`` (``renderer._utfgrid.tiles_copy``,
twin :func:`tiles_copy_py`): no Python per tile around the painter (grouping, the grids'
dicts, ``json.dumps``, a COPY row each).

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

import json
from collections.abc import Callable, Mapping, Sequence
from itertools import groupby
from typing import Any

from renderer import _utfgrid_py, kernels

__all__ = ["IMPLEMENTATION", "RESOLUTION", "Chain", "Paint", "TilesCopy", "chain_sets", "chains",
           "copy_field", "decode", "grid", "implementations", "paint", "tile_grids", "tiles_copy",
           "tiles_copy_implementations", "tiles_copy_py"]

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


Chain = tuple[str, frozenset[str]]
TilesCopy = Callable[..., bytes]


def chain_sets(hierarchies: Sequence[list[str]]) -> list[Chain]:
    """Each hierarchy as (its name, ``"A > B"``; the set of its types)."""
    return [(" > ".join(chain), frozenset(chain)) for chain in hierarchies]


def tile_grids(pieces: Sequence[tuple[str, str, bytes | None]], hierarchies: Sequence[list[str]],
               *, resolution: int = RESOLUTION, painter: Paint | None = None
               ) -> list[dict[str, Any]]:
    """The grids of one tile from its pieces (key, type, WKB in tile pixels or None for
    covering), ordered larger region first, one per hierarchy, deduplicated."""
    return _grids(pieces, chain_sets(hierarchies), 256, resolution, painter)


def _grids(pieces: Sequence[tuple[str, str, bytes | None]], chains: Sequence[Chain], size: int,
           resolution: int, painter: Paint | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, wanted in chains:
        mine = [(key, wkb) for key, kind, wkb in pieces if kind in wanted]
        if not mine:
            continue
        g = grid([w for _, w in mine], [k for k, _ in mine], size=size, resolution=resolution,
                 painter=painter)
        if g is None:
            continue
        for earlier in out:
            if earlier["grid"] == g["grid"] and earlier["keys"] == g["keys"]:
                earlier["hierarchies"].append(name)
                break
        else:
            out.append({**g, "hierarchies": [name]})
    return out


def copy_field(text: str) -> str:
    """Text as a field of COPY's text format."""
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


def tiles_copy_py(pieces: Sequence[Sequence[Any]], chains: Sequence[Chain], z: int,
                  size: int = 256, resolution: int = RESOLUTION,
                  painter: Paint | None = None) -> bytes:
    """The COPY rows (text format, UTF-8: ``z, x, y, utfgrids``) of the tiles of a block's
    pieces: tuples ``(x, y, key, type, wkb, ...)``, a tile's pieces together, larger region
    first; each tile's :func:`tile_grids` as compact JSON (``json.dumps`` with
    ``separators=(",", ":")``, ``ensure_ascii=False``). The twin of
    ``renderer._utfgrid.tiles_copy``, byte for byte."""
    out = []
    for (x, y), rows in groupby(pieces, key=lambda r: (r[0], r[1])):
        grids = _grids([(r[2], r[3], r[4]) for r in rows], chains, size, resolution,
                       painter or _utfgrid_py.paint)
        text = json.dumps(grids, ensure_ascii=False, separators=(",", ":"))
        out.append(f"{z}\t{x}\t{y}\t{copy_field(text)}\n")
    return "".join(out).encode()


tiles_copy: TilesCopy
tiles_copy, _ = kernels.pick("_utfgrid", "tiles_copy", tiles_copy_py)


def tiles_copy_implementations() -> dict[str, TilesCopy]:
    """Every implementation of :func:`tiles_copy` available here."""
    return kernels.both("_utfgrid", "tiles_copy", tiles_copy_py)
