"""The packed columns of ``traffic_speeds``: fixed-width big-endian records in ``bytea``.

A row keeps ``hours``, ``observations`` and ``speeds`` as arrays (what SQL reads: the
reference tiles, the web pages, the run summary) and the rest packed, so that writing a
tile-week takes no per-element parse (the binary array format gives every element its own
length word; ~38M elements for a 50k-segment tile-week, BENCHMARKS.md):

- ``hour_values``: per hour, parallel to ``hours``, 10 bytes: mean speed int2, speed
  variance int4, prevalence int2, and the hour's number of records in ``nexts`` int2
  (OpenTraffic's nextSegmentCounts; derived, kept so that SQL need not count);
- ``nexts``: per (hour, next segment) of the published hours, 42 bytes: hour of week int2,
  next segment id int8 (``NO_NEXT`` = none), count int8, delay int4, delay variance int8,
  queue length int4, queue length variance int8;
- ``total_observations``: the sum of ``observations``.

Big-endian, as PostgreSQL's ``int2send``/``int4send``/``int8send`` write them, so the SQL
engine builds the same bytes (``sql/traffic_speedtile.sql``) and SQL reads a field with
``renderer.traffic_packed_int`` (``sql/traffic_tables.sql``). ext/speedtile.c writes them for
the C engine and ext/speedtile_pack.c reads them back.

Example
-------
>>> hour_values, nexts = pack_week({"hours": [5], "mean_speeds": [30], "speed_variances": [4],
...     "prevalences": [2], "next_hours": [5], "next_ids": [None], "next_counts": [3],
...     "delays": [0], "delay_variances": [1], "queue_lengths": [0],
...     "queue_length_variances": [0]})
>>> len(hour_values), len(nexts)
(10, 42)
>>> unpack_row({"hour_values": hour_values, "nexts": nexts})["next_ids"]
[None]
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Mapping
from typing import Any

from renderer import _speedtile  # type: ignore[attr-defined]

__all__ = ["HOUR_COLUMNS", "HOUR_FORMAT", "NEXT_COLUMNS", "NEXT_FORMAT", "NO_NEXT",
           "pack_week", "unpack_records", "unpack_row"]

HOUR_COLUMNS = ("mean_speeds", "speed_variances", "prevalences", "next_segments")
"""The per-hour values packed in ``hour_values``, in record order (``next_segments``
derived from ``next_hours``)."""
HOUR_FORMAT = struct.Struct(">hihh")
NEXT_COLUMNS = ("next_hours", "next_ids", "next_counts", "delays", "delay_variances",
                "queue_lengths", "queue_length_variances")
"""The per-(hour, next segment) values packed in ``nexts``, in record order."""
NEXT_FORMAT = struct.Struct(">hqqiqiq")
NO_NEXT = -(1 << 63)
"""The packed next segment id of the "no next segment" group (NULL in the twin)."""

def pack_week(week: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """``(hour_values, nexts)`` of a week given by its ``hours`` and per-hour and per-next
    lists (a :class:`~renderer.traffic.speedtile.SegmentWeek`'s fields, by name)."""
    counts = Counter(week["next_hours"])
    hour_values = b"".join(HOUR_FORMAT.pack(*values, counts[how]) for how, *values in
                           zip(week["hours"], *(week[c] for c in HOUR_COLUMNS[:3]),
                               strict=True))
    nexts = b"".join(
        NEXT_FORMAT.pack(how, NO_NEXT if nid is None else nid, *rest)
        for how, nid, *rest in zip(*(week[c] for c in NEXT_COLUMNS), strict=True))
    return hour_values, nexts


def unpack_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``traffic_speeds`` row (a dict) with its packed columns as the lists they hold,
    by the names of :data:`HOUR_COLUMNS` and :data:`NEXT_COLUMNS` (NULL next ids as None);
    the other columns as they are. Unpacked in C (ext/speedtile_pack.c ``unpack``: the export
    reads millions of records); :func:`unpack_records` is its plain twin."""
    out = {k: v for k, v in row.items() if k not in ("hour_values", "nexts")}
    lists = _speedtile.unpack(row["hour_values"], row["nexts"])
    out.update(zip((*HOUR_COLUMNS, *NEXT_COLUMNS), lists, strict=True))
    return out


def unpack_records(hour_values: bytes, nexts: bytes) -> dict[str, list[Any]]:
    """The lists of the packed columns, record by record with :mod:`struct`: the plain twin
    of :func:`unpack_row`'s C loop (tests hold them equal)."""
    out: dict[str, list[Any]] = {}
    hours = list(zip(*HOUR_FORMAT.iter_unpack(hour_values), strict=True))
    for k, name in enumerate(HOUR_COLUMNS):
        out[name] = list(hours[k]) if hours else []
    records = list(zip(*NEXT_FORMAT.iter_unpack(nexts), strict=True))
    for k, name in enumerate(NEXT_COLUMNS):
        out[name] = list(records[k]) if records else []
    out["next_ids"] = [None if n == NO_NEXT else n for n in out["next_ids"]]
    return out
