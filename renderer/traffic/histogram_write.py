"""Writing binned (tile, hour) prefixes: the ledger rows, bins, segment lengths and rejected
rows of a whole batch of histogram items, in a handful of statements.

The histogram stage prepares each item alone (read, gunzip, bin: :class:`Pending`) and its
end-of-batch hook hands every prepared item of the claimed batch to :func:`write`, which, in
the caller's transaction:

1. records the files of every item in the ledger in one statement (``ON CONFLICT DO
   NOTHING``: a file that another attempt recorded, and committed, first is skipped, and its
   item is refused: its ledger rows are taken out again and nothing else of it is written),
   and gets the week partitions of the batch's hours;
2. appends the bins of every item left with one binary COPY per week partition (usually
   one), their segment lengths with one COPY (a (segment, length) reported by several items
   summed into one row), and the rejected rows with one INSERT.

A concurrent attempt on the same files (a zombie) waits on the first one's ledger rows; once
that commits, the second is refused instead of counting a file twice. Nothing here commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from renderer import binning
from renderer.clip import clip
from renderer.db import Connection, query, sql, tuple_row
from renderer.errors import AlreadyExists
from renderer.traffic.layout import Prefix

__all__ = ["Pending", "write"]

_HEADER = len(b"PGCOPY\n\xff\r\n\0") + 8  # signature, flags, header extension length
_TRAILER = 2  # the -1 field count that ends binary COPY data
_NO_ROWS = b"PGCOPY\n\xff\r\n\0" + bytes(8) + b"\xff\xff"


@dataclass
class Pending:
    """One prefix's files, binned and not yet written: the ledger rows (one JSON parameter,
    encoded in C), the rejected rows, and the binning's COPY payloads."""

    prefix: Prefix
    binned: binning.PrefixResult | None = None
    ledger: list[dict[str, Any]] = field(default_factory=list)
    rejects: dict[str, list[Any]] = field(default_factory=lambda: {
        k: [] for k in ("keys", "lines", "raws", "reasons")})

    def add(self, key: str, size: int, checksum: str, result: binning.BinResult) -> None:
        """A file's ledger row and rejected rows."""
        self.ledger.append({
            "key": key, "size": size, "checksum": checksum, "tile_level": self.prefix.level,
            "tile_index": self.prefix.index, "hour": self.prefix.hour,
            "status": "rejected" if result.file_error else "consumed",
            "reason": result.file_error, "rows_read": result.rows_read,
            "rows_accepted": result.rows_accepted, "rows_rejected": len(result.rejects),
            "observations": result.observations})
        for line, raw, reason in result.rejects:
            self.rejects["keys"].append(key)
            self.rejects["lines"].append(line)
            self.rejects["raws"].append(clip(raw))  # a 10 MB line is kept as 8 KB
            self.rejects["reasons"].append(reason)


def _body(payload: bytes) -> memoryview:
    """The rows of a binary COPY payload, without its header and trailer."""
    return memoryview(payload)[_HEADER:len(payload) - _TRAILER]


def _joined(payloads: Sequence[bytes]) -> bytes:
    """One binary COPY payload holding the rows of several."""
    if len(payloads) == 1:
        return payloads[0]
    return b"".join([_NO_ROWS[:_HEADER], *(_body(p) for p in payloads), _NO_ROWS[_HEADER:]])


def _record(conn: Connection, batch: Sequence[Pending]) -> tuple[dict[int, AlreadyExists],
                                                                  dict[str, str]]:
    """Record the batch's files in the ledger; return the refused positions and the week
    partition of each week."""
    hours: dict[str, int] = {}
    for p in batch:
        hours.setdefault(p.prefix.week, p.prefix.hour)
    ledger = [row for p in batch for row in p.ledger]
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query("traffic_ingest.record_batch"),
                    {"files": json.dumps(ledger), "hours": list(hours.values())})
        row = cur.fetchone()
        assert row is not None
        recorded, partitions = set(row[0]), dict(zip(hours, row[1], strict=True))
        refused: dict[int, AlreadyExists] = {}
        if len(recorded) == len(ledger):
            return refused, partitions
        mine: list[dict[str, Any]] = []
        for n, p in enumerate(batch):
            taken = [r["key"] for r in p.ledger if r["key"] not in recorded]
            if taken:
                refused[n] = AlreadyExists(
                    f"{taken[0]} is in the consumed-files ledger already: another attempt "
                    "consumed it first", "nothing of this attempt was written")
                mine.extend(r for r in p.ledger if r["key"] in recorded)
        if mine:
            cur.execute(query("traffic_ingest.unrecord_files"), {
                "keys": [r["key"] for r in mine], "sizes": [r["size"] for r in mine],
                "checksums": [r["checksum"] for r in mine]})
    return refused, partitions


def write(conn: Connection, batch: Sequence[Pending]) -> dict[int, AlreadyExists]:
    """Write the prepared prefixes of a batch in ``conn``'s transaction (see the module
    docstring); return the refused ones by position, for which nothing was written."""
    if not batch:
        return {}
    refused, partitions = _record(conn, batch)
    kept = [p for n, p in enumerate(batch) if n not in refused]
    bins: dict[str, list[bytes]] = {}
    lengths: list[bytes] = []
    rejects: dict[str, list[Any]] = {k: [] for k in ("keys", "lines", "raws", "reasons")}
    for p in kept:
        if p.binned is not None and p.binned.bins:
            bins.setdefault(partitions[p.prefix.week], []).append(p.binned.bins_copy)
        if p.binned is not None and p.binned.lengths:
            lengths.append(p.binned.lengths_copy)
        for k, values in p.rejects.items():
            rejects[k].extend(values)
    with conn.cursor() as cur:
        for partition, payloads in bins.items():
            copy_bins = sql.SQL(query("traffic_histogram.copy_bins")).format(
                partition=sql.Identifier(partition))
            with cur.copy(copy_bins) as copy:
                copy.write(_joined(payloads))
        if lengths:  # a segment recurs in every hour of a batch: its rows summed once
            with cur.copy(query("traffic_histogram.copy_lengths")) as copy:
                copy.write(binning.merge_lengths(lengths)[1] if len(lengths) > 1
                           else lengths[0])
        if rejects["keys"]:
            cur.execute(query("traffic_ingest.record_rejects"), rejects)
    return refused
