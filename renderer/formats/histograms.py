"""Read and write one (tile, hour) histogram in our FlatBuffers format (``histogram.fbs``).

A histogram is a set of rows ``(mode, segment_id, next_segment_id, duration_code, queue_code,
count)``; ``next_segment_id`` is None when the observations had no next segment. The file
stores them grouped by mode, segment and next segment, so the rows come back in a canonical
order (:func:`row_order`) whatever order they went in.

Malformed input raises ``ValueError``; callers that read a user's file wrap it with the file's
name into :class:`renderer.errors.InputError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby, pairwise
from operator import itemgetter
from typing import NamedTuple

import flatbuffers

from renderer import tiles
from renderer.formats.histogram import Bin as _bin
from renderer.formats.histogram import Histogram as _histogram
from renderer.formats.histogram import Mode as _mode
from renderer.formats.histogram import Next as _next
from renderer.formats.histogram import Segment as _segment

__all__ = [
    "FILE_IDENTIFIER",
    "HistogramRow",
    "HourHistogram",
    "decode_histogram",
    "encode_histogram",
    "row_order",
]

FILE_IDENTIFIER = b"RHST"
"""The four bytes after the root offset of every histogram (``file_identifier`` in the schema)."""

_MAX_UINT32 = (1 << 32) - 1


class HistogramRow(NamedTuple):
    """One cell of a histogram: ``count`` observations of ``mode`` on a segment."""

    mode: str
    segment_id: int
    next_segment_id: int | None
    duration_code: int
    queue_code: int
    count: int  # type: ignore[assignment]  # the field shadows tuple.count on purpose


@dataclass(frozen=True)
class HourHistogram:
    """A decoded histogram: its tile, its epoch hour and its rows in :func:`row_order`."""

    level: int
    index: int
    hour: int
    rows: tuple[HistogramRow, ...]

    @property
    def tile(self) -> tiles.Tile:
        return tiles.Tile(self.level, self.index)


def row_order(row: HistogramRow) -> tuple[str, int, bool, int, int, int]:
    """Sort key of the canonical row order: mode, segment, "no next" first, next, codes.

    Examples
    --------
    >>> rows = [HistogramRow("auto", 8, 16, 0, 0, 1), HistogramRow("auto", 8, None, 0, 0, 1)]
    >>> [r.next_segment_id for r in sorted(rows, key=row_order)]
    [None, 16]
    """
    mode, segment_id, next_id, duration, queue, _ = row
    return (mode, segment_id, next_id is not None, next_id or 0, duration, queue)


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if type(value) is not int and not hasattr(value, "__index__"):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    number = int(value)  # type: ignore[call-overload]
    if not low <= number <= high:
        raise ValueError(f"{name} must be in {low}..{high}, not {number}")
    return number


def _check_row(row: Iterable[object]) -> HistogramRow:
    mode, segment_id, next_id, duration, queue, count = row
    if not isinstance(mode, str) or not mode:
        raise ValueError(f"mode must be a non-empty string, not {mode!r}")
    return HistogramRow(
        mode,
        _check_int("segment_id", segment_id, 0, tiles.MAX_SEGMENT_ID),
        None if next_id is None
        else _check_int("next_segment_id", next_id, 0, tiles.MAX_SEGMENT_ID),
        _check_int("duration_code", duration, 0, 255),
        _check_int("queue_code", queue, 0, 255),
        _check_int("count", count, 1, _MAX_UINT32),
    )


def _vector(builder: flatbuffers.Builder, start: object, offsets: list[int]) -> int:
    start(builder, len(offsets))  # type: ignore[operator]
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def encode_histogram(level: int, index: int, hour: int, rows: Iterable[Iterable[object]]) -> bytes:
    """The FlatBuffers bytes of one (tile, hour) histogram.

    Parameters
    ----------
    level, index : int
        The tile (see :mod:`renderer.tiles`).
    hour : int
        Epoch hour, ``floor(epoch / 3600)``.
    rows : iterable of (mode, segment_id, next_segment_id or None, duration_code, queue_code, count)
        The cells, in any order; each (mode, segment, next, codes) at most once, counts >= 1.

    Examples
    --------
    >>> data = encode_histogram(0, 2140, 491_000, [("auto", 17120, None, 3, 0, 2)])
    >>> decode_histogram(data).rows
    (HistogramRow(mode='auto', segment_id=17120, next_segment_id=None, duration_code=3, \
queue_code=0, count=2),)
    """
    tile = tiles.Tile(level, index)
    tiles.bounds(tile)  # validates level and index
    hour = _check_int("hour", hour, 0, _MAX_UINT32)
    cells = sorted((_check_row(r) for r in rows), key=row_order)
    for a, b in pairwise(cells):
        if row_order(a) == row_order(b):
            raise ValueError(f"duplicate histogram cell {a[:5]}: merge the counts first")

    builder = flatbuffers.Builder(64 + 16 * len(cells))
    modes = []
    for mode, mode_rows in groupby(cells, key=itemgetter(0)):
        segments = []
        for segment_id, segment_rows in groupby(mode_rows, key=itemgetter(1)):
            nexts = []
            for next_id, next_rows in groupby(segment_rows, key=itemgetter(2)):
                bins = list(next_rows)
                _next.StartBinsVector(builder, len(bins))
                for b in reversed(bins):
                    _bin.CreateBin(builder, b.duration_code, b.queue_code, b.count)
                bins_vector = builder.EndVector()
                _next.Start(builder)
                if next_id is not None:
                    _next.AddNextSegmentId(builder, next_id)
                    _next.AddHasNext(builder, True)
                _next.AddBins(builder, bins_vector)
                nexts.append(_next.End(builder))
            nexts_vector = _vector(builder, _segment.StartNextsVector, nexts)
            _segment.Start(builder)
            _segment.AddSegmentId(builder, segment_id)
            _segment.AddNexts(builder, nexts_vector)
            segments.append(_segment.End(builder))
        segments_vector = _vector(builder, _mode.StartSegmentsVector, segments)
        name = builder.CreateString(mode)
        _mode.Start(builder)
        _mode.AddMode(builder, name)
        _mode.AddSegments(builder, segments_vector)
        modes.append(_mode.End(builder))
    modes_vector = _vector(builder, _histogram.StartModesVector, modes)
    _histogram.Start(builder)
    _histogram.AddLevel(builder, level)
    _histogram.AddIndex(builder, index)
    _histogram.AddHour(builder, hour)
    _histogram.AddModes(builder, modes_vector)
    builder.Finish(_histogram.End(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def _rows(root: _histogram.Histogram) -> Iterator[HistogramRow]:
    for i in range(root.ModesLength()):
        mode_table = root.Modes(i)
        mode = mode_table.Mode()
        if mode is None:
            raise ValueError("histogram has a mode without a name")
        mode = mode.decode("utf-8")
        for j in range(mode_table.SegmentsLength()):
            segment = mode_table.Segments(j)
            segment_id = segment.SegmentId()
            for k in range(segment.NextsLength()):
                nxt = segment.Nexts(k)
                next_id = nxt.NextSegmentId() if nxt.HasNext() else None
                for m in range(nxt.BinsLength()):
                    cell = nxt.Bins(m)
                    yield HistogramRow(
                        mode,
                        segment_id,
                        next_id,
                        cell.DurationCode(),
                        cell.QueueCode(),
                        cell.Count(),
                    )


def decode_histogram(data: bytes) -> HourHistogram:
    """The histogram in FlatBuffers bytes made by :func:`encode_histogram`.

    Raises ``ValueError`` for bytes that are not such a histogram.

    Examples
    --------
    >>> decode_histogram(encode_histogram(1, 7, 10, [])).tile
    Tile(level=1, index=7)
    """
    if len(data) < 8 or not _histogram.Histogram.HistogramBufferHasIdentifier(data, 0):
        raise ValueError(f"not a histogram: no {FILE_IDENTIFIER.decode()} file identifier")
    try:
        root = _histogram.Histogram.GetRootAs(data, 0)
        rows = tuple(_rows(root))
        result = HourHistogram(root.Level(), root.Index(), root.Hour(), rows)
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        raise ValueError(f"histogram is truncated or corrupt: {error}") from error
    tiles.bounds(result.tile)
    return result
