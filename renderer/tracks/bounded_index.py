"""The size-bounded variant of the static index: objects of at most ``m`` reports.

For each sample period and each block no smaller than it, and each block start with reports,
the geohash tree of that block's sampled reports is packed (largest blocks first):

- a node (a geohash cell; the root is ``ALL``) of at most ``m`` reports is one object;
- a larger node is split into its children: children above ``m`` are split in turn, the
  small ones are packed into the fewest objects of at most ``m`` reports (first fit,
  largest first); a full-length cell (10 characters) above ``m`` is cut in time order;
- a node already inside an object of a larger block (same sample, the block containing this
  one) is not written again: the smaller block points to that object.

Each (sample, block, start) gets a manifest
``bounded-<m>/sample-<s>/block-<b>/<start>.json``: ``{"cells": {cell: [object keys]},
"objects": {key: reports}}``, where a reader takes the longest prefix of its cell found in
``cells`` (a pointed-to object holds more than the cell: filter by cell and time). Objects
are ``bounded-<m>/sample-<s>/block-<b>/<start>/<n>``, BinaryFixes records in time order.

This interpretation of the original's description ("each tree node's reports in objects of
at most m reports; small children partitioned into the fewest objects; smaller blocks point
to the chosen object") is ours; the layout above is what a reader needs to know.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from renderer import db
from renderer.storage import Store
from renderer.tracks.geohash_index import ALL, BLOCKS, _iso, _record

__all__ = ["BoundedResult", "export_bounded", "pack"]

Row = tuple[int, int, str, bytes]  # (t seconds, vessel, geohash, record)


@dataclass(frozen=True)
class BoundedResult:
    day: date
    reports: int
    objects: int
    manifests: int


def pack(rows: list[int], hashes: list[str], m: int, length: int = 0,
         cell: str = "") -> list[tuple[list[str], list[int]]]:
    """Objects of at most ``m`` rows for the node ``cell``: (cells it holds, row indices in
    time order), by the rules of the module."""
    if len(rows) <= m:
        return [([cell or ALL], rows)]
    if length == 10:
        return [([cell], rows[i:i + m]) for i in range(0, len(rows), m)]
    children: dict[str, list[int]] = defaultdict(list)
    for i in rows:
        children[hashes[i][:length + 1]].append(i)
    out: list[tuple[list[str], list[int]]] = []
    bins: list[tuple[list[str], list[int]]] = []
    for child, members in sorted(children.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if len(members) > m:
            out.extend(pack(members, hashes, m, length + 1, child))
            continue
        for cells, held in bins:
            if len(held) + len(members) <= m:
                cells.append(child)
                held.extend(members)
                break
        else:
            bins.append(([child], list(members)))
    return out + [(cells, sorted(held)) for cells, held in bins]


def _holder(geohash: str, chosen: dict[str, list[str]]) -> tuple[str, ...]:
    """The objects a larger block's manifest gives for a report's geohash (longest prefix)."""
    for n in range(len(geohash), -1, -1):
        found = chosen.get(geohash[:n] or ALL)
        if found is not None:
            return tuple(found)
    return ()


def export_bounded(conn: db.Connection, store: Store, day: date, m: int) -> BoundedResult:
    """Write the bounded index of a day (one process; a day is one work item)."""
    found = conn.execute(db.query("tracks.index_reports"), {"day": day, "prefix": None}
                         ).fetchall()
    rows: list[Row] = [(r["t_ms"] // 1000, r["vessel_id"], r["geohash"], _record(r))
                       for r in found]
    hashes = [r[2] for r in rows]
    objects = manifests = 0
    for sample, s in BLOCKS.items():
        first: dict[tuple[int, int], int] = {}
        for i, (t, vessel, _, _) in enumerate(rows):
            first.setdefault((vessel, t // s), i)
        sampled = sorted(first.values())
        larger: list[tuple[int, dict[int, dict[str, list[str]]]]] = []  # (seconds, start->cells)
        for block, b in sorted(((k, v) for k, v in BLOCKS.items() if v >= s),
                               key=lambda kv: -kv[1]):
            starts: dict[int, list[int]] = defaultdict(list)
            for i in sampled:
                starts[rows[i][0] // b * b].append(i)
            chosen_here: dict[int, dict[str, list[str]]] = {}
            for start, members in starts.items():
                base = f"bounded-{m}/sample-{sample}/block-{block}/{_iso(start)}"
                cells: dict[str, list[str]] = {}
                sizes: dict[str, int] = {}
                # larger blocks that contain this one whole (8 h is not inside a 12 h block)
                outer = [chosen[start // lb * lb] for lb, chosen in larger
                         if lb % b == 0 and start // lb * lb in chosen]
                packs = pack(members, hashes, m)
                for held_cells, held in packs:
                    pointed = None
                    for chosen_cells in outer[-1:]:  # the nearest larger block
                        holders = {_holder(hashes[i], chosen_cells) for i in held}
                        if len(holders) == 1 and len(only := holders.pop()) == 1:
                            pointed = list(only)  # all of them lie in one larger object
                    if pointed is None:
                        key = f"{base}/{len(sizes)}"
                        store.put(key, b"".join(rows[i][3] for i in held),
                                  content_type="application/octet-stream")
                        sizes[key] = len(held)
                        objects += 1
                        pointed = [key]
                    for c in held_cells:
                        cells.setdefault(c, []).extend(k for k in pointed
                                                       if k not in cells.get(c, []))
                store.put(f"{base}.json", json.dumps({"cells": cells, "objects": sizes},
                                                     sort_keys=True).encode(),
                          content_type="application/json")
                manifests += 1
                chosen_here[start] = cells
            larger.append((b, chosen_here))
    return BoundedResult(day, len(rows), objects, manifests)
