"""Tables of speeds for analysts: their columns, and writers that stream them to CSV,
Parquet or JSON.

A table is a tuple of :class:`Column` and an iterable of row tuples in that order. Columns
that carry a field of OpenTraffic's ``SpeedTile`` protobuf keep its name (``speeds``,
``speedVariances``, ``prevalences``, ``nextSegmentCounts``, ``nextSegmentIds``,
``referenceSpeeds20``, ...): one value per row where the protobuf has one array entry per
(segment, hour of week) or per next-segment entry. Columns the protobuf has no field for
are snake case (``segment_id``, ``hour_of_week``, ``mean_speed``); ``level`` and ``index``
are the tile's, as in the protobuf header.

Writers take rows in batches, so that neither a week of a continent nor a decoded subtile
of 1.68 million slots is ever held whole; a file is written beside its final name and
renamed into place when complete, so an interrupted export leaves no half file.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from renderer.errors import InputError, RendererError

__all__ = ["EXPORT_COLUMNS", "FORMATS", "NEXT_COLUMNS", "REFERENCE_COLUMNS", "SPEED_COLUMNS",
           "Column", "TableWriter", "batched", "names", "open_table"]

FORMATS = ("csv", "parquet", "json")
BATCH = 50_000
"""Rows per Parquet row group write (and per fetch from the database)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType


_TILE = (Column("level", pa.uint8()), Column("index", pa.uint32()))
_SEGMENT = (Column("segment_id", pa.int64()), Column("segment_index", pa.uint32()),
            Column("hour_of_week", pa.uint8()))

SPEED_COLUMNS = (*_TILE, *_SEGMENT,
                 Column("speeds", pa.uint32()), Column("speedVariances", pa.uint32()),
                 Column("prevalences", pa.uint32()), Column("nextSegmentIndices", pa.uint32()),
                 Column("nextSegmentCounts", pa.uint32()))
"""A decoded ``.spd`` file: one row per (segment, hour of week) with data."""

NEXT_COLUMNS = (*_TILE, Column("entry", pa.uint32()), *_SEGMENT,
                Column("nextSegmentIds", pa.uint64()), Column("nextSegmentDelays", pa.uint32()),
                Column("nextSegmentDelayVariances", pa.uint32()),
                Column("nextSegmentQueueLengths", pa.uint32()),
                Column("nextSegmentQueueLengthVariances", pa.uint32()))
"""A decoded ``.nex`` file: one row per next-segment entry (``entry``: its position in the
file's arrays); segment and hour come from the ``.spd`` file beside it, else are empty."""

REFERENCE_COLUMNS = (*_TILE, *_SEGMENT, Column("speeds", pa.uint32()),
                     *(Column(f"referenceSpeeds{p}", pa.uint32()) for p in (20, 40, 60, 80)))
"""A decoded ``.ref`` file: one row per (segment, hour of week) with a mean speed, the
segment's percentiles repeated on each."""

EXPORT_COLUMNS = (Column("mode", pa.string()), Column("week", pa.string()), *_TILE, *_SEGMENT,
                  Column("speeds", pa.uint32()), Column("speedVariances", pa.uint32()),
                  Column("prevalences", pa.uint32()), Column("nextSegmentCounts", pa.uint32()),
                  Column("observations", pa.int64()), Column("mean_speed", pa.uint32()),
                  Column("length", pa.int32()))
"""``renderer traffic export-speeds``: the published hours of a week from the database, the
``.spd`` fields plus what the files do not carry (true counts, mean speed, length)."""


def names(columns: Sequence[Column]) -> list[str]:
    return [c.name for c in columns]


def batched(rows: Iterable[tuple[Any, ...]], size: int = BATCH) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class TableWriter(Protocol):
    def write(self, rows: Sequence[tuple[Any, ...]]) -> None: ...


class _Csv:
    def __init__(self, out: IO[str], columns: Sequence[Column]) -> None:
        self.out = csv.writer(out, lineterminator="\n")
        self.out.writerow(names(columns))

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.out.writerows(rows)  # None is written as an empty field


class _Json:
    """A JSON array of objects, one a line, written as the rows come."""

    def __init__(self, out: IO[str], columns: Sequence[Column]) -> None:
        self.out, self.names, self.first = out, names(columns), True
        out.write("[")

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        for row in rows:
            self.out.write("\n" if self.first else ",\n")
            self.out.write(json.dumps(dict(zip(self.names, row, strict=True))))
            self.first = False

    def close(self) -> None:
        self.out.write("\n]\n" if not self.first else "]\n")


class _Parquet:
    def __init__(self, path: Path, columns: Sequence[Column]) -> None:
        self.schema = pa.schema([(c.name, c.type) for c in columns])
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        arrays = [pa.array(values, type=field.type)
                  for values, field in zip(zip(*rows, strict=True), self.schema, strict=True)]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> str:
    if fmt not in allowed:
        raise InputError(f"unknown table format {fmt!r}", f"use {' or '.join(allowed)}")
    return fmt


@contextmanager
def open_table(out: str, columns: Sequence[Column], fmt: str) -> Iterator[TableWriter]:
    """A writer of ``fmt`` rows to ``out``: a path, or ``-`` for stdout (csv and json).

    The file appears, complete, only when the block ends without an error."""
    check_format(fmt)
    if out == "-":
        if fmt == "parquet":
            raise InputError("Parquet is written to a file", "give --out PATH")
        writer: Any = _Csv(sys.stdout, columns) if fmt == "csv" else _Json(sys.stdout, columns)
        yield writer
        if fmt == "json":
            writer.close()
        sys.stdout.flush()
        return
    path = Path(out).expanduser()
    partial = path.with_name(f".{path.name}.partial")
    text: IO[str] | None = None
    try:
        if fmt == "parquet":
            writer = _Parquet(partial, columns)
        else:
            # closed below, after the rename or on an error (not a with: the caller's
            # block runs between)
            text = open(partial, "w", newline="", encoding="utf-8")  # noqa: SIM115
            writer = _Csv(text, columns) if fmt == "csv" else _Json(text, columns)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}",
                         "give a writable path") from exc
    try:
        yield writer
        if hasattr(writer, "close"):
            writer.close()
        if text is not None:
            text.close()
        os.replace(partial, path)
    except OSError as exc:  # a full disk, a lost mount: not the caller's to fix
        raise RendererError(f"writing {out} failed: {exc.strerror or exc}") from exc
    finally:
        if text is not None and not text.closed:
            text.close()
        partial.unlink(missing_ok=True)
