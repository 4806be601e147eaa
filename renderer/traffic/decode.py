"""An OpenTraffic speed tile file as a table: ``renderer traffic decode``.

``.spd`` files give one row per (segment, hour of week) with any non-zero value; ``.nex``
files one row per next-segment entry, with the segment and hour of week it belongs to when
the ``.spd`` file of the same subtile lies beside it (only the ``.spd`` file says which
entries belong to which slot); ``.ref`` files one row per (segment, hour of week) with a
mean speed, the segment's reference speeds on each. Columns: :mod:`renderer.traffic.tables`.

The kind comes from the file name (``.spd.N.gz``, ``.nex.N.gz``, ``.ref.gz``; a name that
says none is read by the arrays it carries). Bodies may be gzipped or not: an HTTP client
that honoured OpenTraffic's ``Content-Encoding: gzip`` saved them unzipped.

Example
-------
>>> columns, rows = decode_file(Path("2016/44/0/002/140.spd.0.gz"))  # doctest: +SKIP
>>> next(rows)[:6]
(0, 2140, 71789760, 2, 18, 36)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from renderer import tiles
from renderer.errors import InputError, RendererError
from renderer.formats.speedtiles import (
    ARRAYS,
    Kind,
    SubTile,
    decode_speed_tile,
    gzip_decompress,
)
from renderer.traffic.tables import NEXT_COLUMNS, REFERENCE_COLUMNS, SPEED_COLUMNS, Column

__all__ = ["decode_file", "kind_of_name", "read_subtiles", "sibling_speed_file"]

_NAME = re.compile(r"\.(spd|nex|ref)(\.[0-9]+)?(\.gz)?$")
Rows = Iterator[tuple[Any, ...]]


def kind_of_name(name: str) -> Kind | None:
    """The kind a file name says, or None.

    Examples
    --------
    >>> kind_of_name("140.nex.1.gz"), kind_of_name("740.ref.gz"), kind_of_name("x.bin")
    (<Kind.NEXT: 'nex'>, <Kind.REFERENCE: 'ref'>, None)
    """
    match = _NAME.search(name)
    return Kind(match[1]) if match else None


def sibling_speed_file(path: Path) -> Path | None:
    """The ``.spd`` file of the same subtile as a ``.nex`` file, when it exists."""
    name = _NAME.sub(lambda m: f".spd{m[2] or ''}{m[3] or ''}", path.name)
    sibling = path.with_name(name)
    return sibling if name != path.name and sibling.is_file() else None


def _check(sub: SubTile) -> None:
    if sub.unit_size <= 0 or sub.entry_size <= 0 or sub.unit_size % sub.entry_size:
        raise ValueError(f"unit size {sub.unit_size} is not a multiple of entry size "
                         f"{sub.entry_size}")
    hours = sub.unit_size // sub.entry_size
    for name, values in sub.arrays.items():
        if name in ARRAYS[Kind.SPEED] and len(values) != sub.subtile_segments * hours:
            raise ValueError(f"{name} holds {len(values)} values, not {sub.subtile_segments} "
                             f"segments x {hours} hours")
        if name.startswith("reference_speeds") and len(values) != sub.subtile_segments:
            raise ValueError(f"{name} holds {len(values)} values, not {sub.subtile_segments}")
    nex = [len(sub.arrays.get(n, ())) for n in ARRAYS[Kind.NEXT]]
    if len({n for n in nex if n}) > 1:
        raise ValueError(f"next-segment arrays of different lengths {nex}")
    tiles.bounds(sub.tile)  # a level and index that exist
    if sub.start_segment_index + sub.subtile_segments > 1 << 21:
        raise ValueError(f"segments {sub.start_segment_index}.. do not fit a segment id")


def read_subtiles(path: Path) -> list[SubTile]:
    """The subtiles of a file: InputError when it is not a speed tile, RendererError when it
    cannot be read."""
    try:
        body = path.read_bytes()
    except IsADirectoryError as exc:
        raise InputError(f"{path} is a folder", "give a .spd, .nex or .ref file") from exc
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist", "check the path") from exc
    except OSError as exc:
        raise RendererError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        if body[:2] == b"\x1f\x8b":
            body = gzip_decompress(body)
        subtiles = decode_speed_tile(body)
        if not subtiles:
            raise ValueError("no subtile in it")
        for sub in subtiles:
            _check(sub)
    except ValueError as exc:
        detail = str(exc).removeprefix("not a speed tile: ")
        raise InputError(f"{path} is not an OpenTraffic speed tile: {detail}",
                         "give a .spd, .nex or .ref file (gzipped or not)") from exc
    return subtiles


def _kind(path: Path, subtiles: Sequence[SubTile]) -> Kind:
    named = kind_of_name(path.name)
    if named is not None:
        return named
    carried = {name for sub in subtiles for name, values in sub.arrays.items() if values}
    if carried & set(ARRAYS[Kind.REFERENCE]) - {"speeds"}:
        return Kind.REFERENCE
    return Kind.NEXT if carried & set(ARRAYS[Kind.NEXT]) else Kind.SPEED


def _array(sub: SubTile, name: str, size: int) -> np.ndarray[Any, Any]:
    values = sub.arrays.get(name)
    return np.zeros(size, np.uint64) if not values else np.asarray(values, np.uint64)


def _slots(sub: SubTile, names: Sequence[str]) -> list[np.ndarray[Any, Any]]:
    size = sub.subtile_segments * (sub.unit_size // sub.entry_size)
    return [_array(sub, n, size) for n in names]


def _segment(sub: SubTile, slot: int) -> tuple[int, int, int]:
    hours = sub.unit_size // sub.entry_size
    index = sub.start_segment_index + slot // hours
    return tiles.segment_id(sub.tile, index), index, slot % hours


def _speed_rows(sub: SubTile) -> Rows:
    names = ("speeds", "speed_variances", "prevalences", "next_segment_indices",
             "next_segment_counts")
    speeds, variances, prevalences, indices, counts = _slots(sub, names)
    # nextSegmentIndices is a running count, non-zero after the first entry: not "data"
    for slot in np.flatnonzero(speeds | variances | prevalences | counts).tolist():
        yield (sub.level, sub.index, *_segment(sub, slot), int(speeds[slot]),
               int(variances[slot]), int(prevalences[slot]), int(indices[slot]),
               int(counts[slot]))


def _next_rows(sub: SubTile, spd: SubTile | None) -> Rows:
    values = [sub.arrays.get(n) or [] for n in ARRAYS[Kind.NEXT]]
    owner: dict[int, tuple[int, int, int]] = {}
    if spd is not None:
        indices, counts = _slots(spd, ("next_segment_indices", "next_segment_counts"))
        for slot in np.flatnonzero(counts).tolist():
            where = _segment(spd, slot)
            for entry in range(int(indices[slot]), int(indices[slot] + counts[slot])):
                owner[entry] = where
    for entry, row in enumerate(zip(*values, strict=True)):
        yield (sub.level, sub.index, entry, *owner.get(entry, (None, None, None)), *row)


def _reference_rows(sub: SubTile) -> Rows:
    (speeds,) = _slots(sub, ("speeds",))
    refs = [_array(sub, f"reference_speeds_{p}", sub.subtile_segments)
            for p in (20, 40, 60, 80)]
    hours = sub.unit_size // sub.entry_size
    slots = np.flatnonzero(speeds).tolist()
    with_speeds = {slot // hours for slot in slots}
    # a segment with reference speeds but no hourly mean still gets its row, hour empty
    alone = [(offset * hours, True) for offset in
             np.flatnonzero(refs[0] | refs[1] | refs[2] | refs[3]).tolist()
             if offset not in with_speeds]
    for slot, bare in sorted([(s, False) for s in slots] + alone):
        offset = slot // hours
        segment_id, index, how = _segment(sub, slot)
        yield (sub.level, sub.index, segment_id, index, None if bare else how,
               0 if bare else int(speeds[slot]), *(int(r[offset]) for r in refs))


def decode_file(path: Path, speed_file: Path | None = None) -> tuple[tuple[Column, ...], Rows]:
    """The columns and rows of a speed tile file; a ``.nex`` file takes its segments and
    hours from ``speed_file`` (default: its ``.spd`` sibling, when there is one)."""
    subtiles = read_subtiles(path)
    kind = _kind(path, subtiles)
    if kind is Kind.SPEED:
        return SPEED_COLUMNS, (row for sub in subtiles for row in _speed_rows(sub))
    if kind is Kind.REFERENCE:
        return REFERENCE_COLUMNS, (row for sub in subtiles for row in _reference_rows(sub))
    spd_file = speed_file or sibling_speed_file(path)
    by_start = ({s.start_segment_index: s for s in read_subtiles(spd_file)}
                if spd_file is not None else {})
    return NEXT_COLUMNS, (row for sub in subtiles
                          for row in _next_rows(sub, by_start.get(sub.start_segment_index)))
