"""Reading histograms back: one (tile, hour) as a JSON-ready dict, and the FlatBuffers export.

The export writes one file per (tile, hour) at ``{Y}/{M}/{D}/{H}/{level}/{index}.fb`` (UTC),
in the format of ``renderer/formats/histogram.fbs`` (read it with
:func:`renderer.formats.histograms.decode_histogram`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from renderer import tiles
from renderer.binning import duration_seconds, duration_step
from renderer.db import Connection, dict_row, query
from renderer.formats.histograms import encode_histogram
from renderer.storage import Store
from renderer.traffic.weeks import format_hour, hour_start

__all__ = ["ExportResult", "export_histograms", "export_key", "hour_histogram"]

log = logging.getLogger(__name__)

_ALL_HOURS = (0, 2**31 - 1)


def hour_histogram(conn: Connection, tile: tiles.Tile, hour: int,
                   mode: str | None = None) -> dict[str, Any]:
    """The histogram of one tile and hour as a dict for JSON.

    Keys: ``tile`` (``level/index``), ``hour`` (``2016-11-01T18``), ``epoch_hour``, ``mode``
    (None: every mode), ``observations`` (sum of counts), ``bins`` (number of cells) and
    ``segments``: per (mode, segment) its ``nexts``, each with ``next_segment_id`` (None: no
    next segment), ``observations`` and ``bins`` of ``duration_code``, ``duration_seconds``
    (bucket lower bound), ``duration_step``, ``queue_code``, ``count``.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query("traffic_histogram.hour_rows"), {
            "hour": hour, "tile_id": tiles.tile_id(tile),
            "mode": mode.upper() if mode else None}).fetchall()
    segments = []
    for (m, segment_id), seg_rows in groupby(rows, key=lambda r: (r["mode"], r["segment_id"])):
        nexts = []
        for next_id, next_rows in groupby(seg_rows, key=lambda r: r["next_segment_id"]):
            bins = [{"duration_code": r["duration_code"],
                     "duration_seconds": duration_seconds(r["duration_code"]),
                     "duration_step": duration_step(r["duration_code"]),
                     "queue_code": r["queue_code"], "count": r["count"]} for r in next_rows]
            nexts.append({"next_segment_id": next_id,
                          "observations": sum(b["count"] for b in bins), "bins": bins})
        segments.append({"mode": m, "segment_id": segment_id,
                         "segment_index": tiles.segment_index(segment_id),
                         "observations": sum(n["observations"] for n in nexts), "nexts": nexts})
    return {
        "tile": f"{tile.level}/{tile.index}",
        "hour": format_hour(hour),
        "epoch_hour": hour,
        "mode": mode.upper() if mode else None,
        "observations": sum(r["count"] for r in rows),
        "bins": len(rows),
        "segments": segments,
    }


def export_key(tile: tiles.Tile, hour: int) -> str:
    """``{Y}/{M}/{D}/{H}/{level}/{index}.fb`` of a (tile, hour).

    Examples
    --------
    >>> export_key(tiles.Tile(0, 3105), 410562)
    '2016/11/01/18/0/3105.fb'
    """
    return f"{hour_start(hour):%Y/%m/%d/%H}/{tile.level}/{tile.index}.fb"


@dataclass(frozen=True)
class ExportResult:
    files: int
    rows: int
    observations: int
    bytes: int


def _stream(conn: Connection, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    # A server-side cursor: the export streams any number of rows in constant memory.
    with conn.cursor(name="export_histograms", row_factory=dict_row) as cur:
        cur.itersize = 20_000
        cur.execute(query("traffic_histogram.export_rows"), params)
        yield from cur


def export_histograms(conn: Connection, store: Store, *,
                      tile: tiles.Tile | None = None, first_hour: int | None = None,
                      end_hour: int | None = None,
                      progress: Callable[[str], None] | None = None) -> ExportResult:
    """Write one FlatBuffers histogram per (tile, hour) that has rows into ``store``.

    Optionally only one tile, and only hours ``first_hour <= h < end_hour``. Runs in
    ``conn``'s transaction (a consistent snapshot). ``progress`` is called with each key.
    """
    params = {
        "tile_id": tiles.tile_id(tile) if tile else None,
        "first_hour": _ALL_HOURS[0] if first_hour is None else first_hour,
        "end_hour": _ALL_HOURS[1] if end_hour is None else end_hour,
    }
    files = rows = observations = size = 0
    for (tile_id, hour), group in groupby(_stream(conn, params),
                                          key=lambda r: (r["tile_id"], r["hour"])):
        t = tiles.from_tile_id(tile_id)
        cells = [(r["mode"], r["segment_id"], r["next_segment_id"], r["duration_code"],
                  r["queue_code"], r["count"]) for r in group]
        data = encode_histogram(t.level, t.index, hour, cells)
        key = export_key(t, hour)
        store.put(key, data, content_type="application/octet-stream")
        files += 1
        rows += len(cells)
        observations += sum(c[5] for c in cells)
        size += len(data)
        if progress:
            progress(key)
    log.info("exported %d histograms (%d rows) to %s", files, rows, store.url)
    return ExportResult(files, rows, observations, size)
