"""Vectorised reading of CSV and BinaryFixes files into staging rows (Arrow and numpy).

Row-by-row parsing held ingest at 0.07x a plain COPY (BENCHMARKS.md, "Vessel tracks"). Here a
batch of rows is checked at once: Arrow casts text columns where a strict pattern says the
cast is exact, numpy checks ranges and sentinels. A row the batch path does not accept is
handed to the row path of :mod:`.formats` (``fm.csv_item``, ``fm.fix_item``), which either accepts
it (a form the patterns leave out: spaces, ``+01:00`` offsets, ``1_000``) or names its
reason; so the batch path decides nothing the row path would decide differently, and the
tests compare the two on the same files.

The CSV batch path trusts Arrow's reader only while every physical line is one row (no
quoted line ends, no blank or ragged lines): otherwise it raises :class:`NotBulk` and the
caller reads the file again row by row, under a savepoint.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from renderer.errors import InputError
from renderer.tracks import formats as fm
from renderer.tracks.formats import Item, Reject, Report

__all__ = ["STAGE", "Batch", "NotBulk", "csv_batches", "fixes_batches", "reports_table", "tenths",
           "write_csv"]

STAGE = pa.schema([
    ("set_no", pa.int32()), ("t_ms", pa.int64()), ("lat", pa.float64()),
    ("lon", pa.float64()), ("latency", pa.int32()), ("sog", pa.int16()), ("cog", pa.int16()),
    ("heading", pa.int16()), ("nav_status", pa.int16()), ("rot", pa.int16()),
    ("source", pa.int16()), ("ais_class", pa.string())])
"""The columns of ``tracks_stage``, in its order (speeds and angles in tenths)."""

MIN_MS, MAX_MS = 0, 4_102_444_800_000
BLOCK = 1 << 22
FIX_RECORDS = 1 << 16
NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
EPOCH = r"^-?[0-9]+(\.[0-9]+)?$"
ISO = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]"
       r"(:[0-5][0-9](\.[0-9]{1,3})?)?Z?$")  # ms exact: finer fractions go row by row
SetNo = Callable[[tuple[tuple[str, str], ...]], int]


class NotBulk(InputError):
    """The file is not one row per line: read it row by row (caught by ingest, never shown;
    in the error tree as every exception of the package is)."""


@dataclass
class Batch:
    """Accepted rows (:data:`STAGE` columns), the rows the row path decided, rows read."""

    table: pa.Table
    items: list[tuple[int, Item]]
    read: int


def tenths(value: float | None) -> int | None:
    """Knots or degrees -> the stored tenths."""
    return None if value is None else round(value * 10)


def reports_table(reports: list[tuple[int, Report]]) -> pa.Table:
    """(set number, report) pairs as :data:`STAGE` rows."""
    cols: list[list[Any]] = [[] for _ in STAGE.names]
    for set_no, r in reports:
        for col, v in zip(cols, (set_no, r.time_ms, r.lat, r.lon, r.latency, tenths(r.sog),
                                 tenths(r.cog), tenths(r.heading), r.nav_status, r.rot,
                                 r.source, r.ais_class), strict=True):
            col.append(v)
    return pa.table(cols, schema=STAGE)


def _finish(accepted: dict[str, Any], keep: np.ndarray, items: list[tuple[int, Item]],
            set_no: SetNo, read: int) -> Batch:
    """The accepted rows (``keep``) plus the row path's reports, as one table."""
    arrays = []
    for name, typ in zip(STAGE.names, STAGE.types, strict=True):
        values, mask = accepted[name]
        arrays.append(pa.array(values[keep], typ,
                               mask=None if mask is None else mask[keep]))
    table = pa.Table.from_arrays(arrays, schema=STAGE)
    late = [(set_no(item.ids), item) for _, item in items if isinstance(item, Report)]
    if late:
        table = pa.concat_tables([table, reports_table(late)])
    return Batch(table, items, read)


def write_csv(table: pa.Table) -> memoryview:
    """Rows as CSV for ``COPY ... (FORMAT csv)`` (an unquoted empty field is NULL)."""
    out = io.BytesIO()
    pacsv.write_csv(table, out, write_options=pacsv.WriteOptions(include_header=False))
    return out.getbuffer()


# -- CSV -------------------------------------------------------------------------------------

class _Counting(io.RawIOBase):
    """A binary stream that counts the line ends it passes on (and whether it ended on one)."""

    def __init__(self, stream: BinaryIO, first: bytes) -> None:
        self._stream = stream
        self._pending = first
        self.lines = 0
        self.last = b"\n"

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        data = self._pending or self._stream.read(len(target))
        self._pending = b""
        n = min(len(data), len(target))
        self._pending = data[n:]
        data = data[:n]
        if data:
            self.lines += data.count(b"\n")
            self.last = data[-1:]
        target[:n] = data
        return n

    @property
    def records(self) -> int:
        return self.lines + (self.last != b"\n")


def _number(col: pa.Array, lo: float, hi: float, *, hi_open: bool = False,
            integer: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A text column as (values, null, ok): empty is null; ok where the text is a number in
    range (an integer when asked); rows neither null nor ok go row by row."""
    null = pc.equal(col, "").to_numpy(zero_copy_only=False)
    looks = pc.match_substring_regex(col, NUMBER).to_numpy(zero_copy_only=False)
    values = pc.cast(pc.if_else(looks, col, "0"), pa.float64()).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        ok = looks & np.isfinite(values) & (values >= lo) & ((values < hi) if hi_open
                                                              else (values <= hi))
        if integer:
            ok &= values == np.floor(values)
    return values, null, ok


def _times(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A text time column as (epoch ms, ok): epoch seconds or ms, or ISO 8601 without an
    offset or with ``Z``, at most millisecond digits."""
    epoch = pc.match_substring_regex(col, EPOCH).to_numpy(zero_copy_only=False)
    numbers = pc.cast(pc.if_else(epoch, col, "0"), pa.float64()).to_numpy(zero_copy_only=False)
    ms = np.rint(np.where(np.abs(numbers) > 1e11, numbers, numbers * 1000))
    iso = pc.match_substring_regex(col, ISO).to_numpy(zero_copy_only=False)
    if iso.any():
        text = pc.replace_substring_regex(pc.if_else(iso, col, "1970-01-01T00:00"), "Z$", "")
        try:
            stamps = pc.cast(text, pa.timestamp("ms")).cast(pa.int64())
            ms = np.where(iso, stamps.to_numpy(zero_copy_only=False), ms)
        except pa.ArrowInvalid:  # an impossible date (2026-02-30): those rows row by row
            iso[:] = False
    ok = (epoch | iso) & (ms >= MIN_MS) & (ms < MAX_MS)
    return np.where(ok, ms, 0).astype(np.int64), ok


def _id_sets(batch: pa.RecordBatch, id_columns: list[tuple[int, str]],
             set_no: SetNo) -> np.ndarray:
    """The set number of each row's identifiers, -1 where they are unusable (decided per
    distinct combination, a few per vessel)."""
    cols = [batch.column(i) for i, _ in id_columns]
    joined = cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, "\x1f")
    encoded = pc.dictionary_encode(joined).combine_chunks() if isinstance(
        joined, pa.ChunkedArray) else pc.dictionary_encode(joined)
    lut = np.empty(len(encoded.dictionary), np.int64)
    for n, text in enumerate(encoded.dictionary.to_pylist()):
        values = text.split("\x1f") if len(cols) > 1 else [text]
        try:
            lut[n] = set_no(fm.checked_ids(tuple(
                (k, v) for (_, k), v in zip(id_columns, values, strict=True))))
        except ValueError:
            lut[n] = -1
    return lut[encoded.indices.to_numpy(zero_copy_only=False)]


OPTIONAL: dict[str, tuple[float, float, bool, bool, int]] = {
    # column: (lo, hi, hi_open, integer, scale to the stored unit)
    "sog": (0, 102.2, False, False, 10), "cog": (0, 360, True, False, 10),
    "heading": (0, 360, True, False, 10), "nav_status": (0, 15, False, True, 1),
    "rot": (-127, 127, False, True, 1), "latency": (0, 2**31 - 1, False, True, 1),
    "source": (1, 32767, False, True, 1)}


def _check_csv(batch: pa.RecordBatch, columns: list[str], id_columns: list[tuple[int, str]],
               first_line: int, set_no: SetNo) -> Batch:
    n = batch.num_rows
    empty = np.ones(n, bool)
    for col in batch.columns:
        empty &= pc.equal(col, "").to_numpy(zero_copy_only=False)
    if empty.any():  # a blank line (skipped by the row path) or only commas (a reject)
        raise NotBulk("a blank or empty row")
    at = {name: i for i, name in enumerate(columns)}  # the last of a repeated name, as dict()
    sets = _id_sets(batch, id_columns, set_no)
    ok = sets >= 0
    t_ms, t_ok = _times(batch.column(at["time"]))
    ok &= t_ok
    accepted: dict[str, Any] = {"set_no": (sets, None), "t_ms": (t_ms, None)}
    for name, bound in (("lat", 90.0), ("lon", 180.0)):
        values, _, good = _number(batch.column(at[name]), -bound, bound)
        ok &= good
        accepted[name] = (values, None)
    for name, (lo, hi, hi_open, integer, scale) in OPTIONAL.items():
        if name not in at:
            accepted[name] = (np.zeros(n, np.int64), np.ones(n, bool))
            continue
        values, null, good = _number(batch.column(at[name]), lo, hi, hi_open=hi_open,
                                     integer=integer)
        ok &= null | good
        accepted[name] = (np.where(good, np.rint(values * scale), 0).astype(np.int64), null)
    if "ais_class" in at:
        text = pc.utf8_upper(batch.column(at["ais_class"]))
        null = pc.equal(text, "").to_numpy(zero_copy_only=False)
        ok &= null | pc.is_in(text, pa.array(["A", "B"])).to_numpy(zero_copy_only=False)
        accepted["ais_class"] = (text.to_numpy(zero_copy_only=False), null)
    else:
        accepted["ais_class"] = (np.full(n, None, object), np.ones(n, bool))
    items: list[tuple[int, Item]] = []
    bad = np.flatnonzero(~ok)
    if len(bad):
        rows = batch.take(pa.array(bad)).to_pylist()
        for i, row in zip(bad, rows, strict=True):
            item = fm.csv_item(columns, id_columns, list(row.values()))
            items.append((first_line + int(i), item))
    return _finish(accepted, ok, items, set_no, n)


def csv_batches(stream: BinaryIO, set_no: SetNo) -> Iterator[Batch]:
    """Batches of a CSV file (as :func:`formats.parse_csv` reads it); raises :class:`NotBulk`
    when the file must be read row by row (a header the row path rejects, a row that is not
    one line, a blank line, bytes that are not UTF-8)."""
    head = stream.readline()
    if not head:
        return
    text = head.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    header = next(csv.reader([text]), [])
    columns, id_columns = fm.csv_columns(header)
    if not head.endswith(b"\n") or {"time", "lat", "lon"} - set(columns) or not id_columns:
        raise NotBulk("a header the row parser rejects")
    names = [f"f{i}" for i in range(len(columns))]
    counting = _Counting(stream, b"")
    try:
        reader = pacsv.open_csv(
            counting,
            read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False,
                quoted_strings_can_be_null=False))
        line = 2
        for batch in reader:
            yield _check_csv(batch, columns, id_columns, line, set_no)
            line += batch.num_rows
    except pa.ArrowInvalid as exc:
        raise NotBulk(f"not one row per line: {exc}") from exc
    if line - 2 != counting.records:
        raise NotBulk("a row spans lines")


# -- BinaryFixes -----------------------------------------------------------------------------

FIX_DTYPE = np.dtype([("mmsi", ">i4"), ("lat", ">f4"), ("lon", ">f4"), ("t", ">i8"),
                      ("latency", ">i4"), ("source", ">i2"), ("status", "i1"), ("rot", "i1"),
                      ("sog", ">i2"), ("cog", ">i2"), ("heading", ">i2"), ("cls", "i1")])
FIX_DTYPE_NO_MMSI = np.dtype(FIX_DTYPE.descr[1:])
assert FIX_DTYPE.itemsize == fm.FIXES.size and FIX_DTYPE_NO_MMSI.itemsize == fm.FIXES_NO_MMSI.size


def _check_fixes(rec: np.ndarray, first: int, with_mmsi: bool,
                 ids: tuple[tuple[str, str], ...], set_no: SetNo) -> Batch:
    n = len(rec)
    lat, lon = rec["lat"].astype(np.float64), rec["lon"].astype(np.float64)
    t = rec["t"].astype(np.int64)
    latency, source = rec["latency"].astype(np.int64), rec["source"].astype(np.int64)
    status, rot = rec["status"].astype(np.int64), rec["rot"].astype(np.int64)
    sog, cog = rec["sog"].astype(np.int64), rec["cog"].astype(np.int64)
    heading, cls = rec["heading"].astype(np.int64), rec["cls"].astype(np.int64)
    with np.errstate(invalid="ignore"):
        ok = ((lat >= -90) & (lat <= 90) & (lon >= -180) & (lon <= 180)
              & (t >= MIN_MS) & (t < MAX_MS)
              & ((latency == fm.LATENCY_NONE) | (latency >= 0))
              & ((source == fm.SOURCE_NONE) | (source >= 1))
              & ((status == fm.STATUS_NONE) | ((status >= 0) & (status <= 15)))
              & ((sog == fm.SOG_NONE) | ((sog >= 0) & (sog <= 1022)))
              & ((cog == fm.COG_NONE) | ((cog >= 0) & (cog < 3600)))
              & ((heading == fm.HEADING_NONE) | (heading == fm.HEADING_NONE_OLD)
                 | ((heading >= 0) & (heading < 3600)))
              & ((cls == 0) | (cls == 1)))
    sets = np.full(n, -1, np.int64)
    if with_mmsi:
        mmsi = rec["mmsi"].astype(np.int64)
        ok &= (mmsi > 0) & (mmsi <= 999_999_999)
        distinct, inverse = np.unique(mmsi, return_inverse=True)
        lut = np.array([set_no((("mmsi", str(m)),)) if 0 < m <= 999_999_999 else -1
                        for m in distinct.tolist()], np.int64)
        sets = lut[inverse]
    elif ids:
        sets[:] = set_no(ids)
    else:
        ok[:] = False
    heading_none = (heading == fm.HEADING_NONE) | (heading == fm.HEADING_NONE_OLD)
    accepted = {
        "set_no": (sets, None), "t_ms": (t, None), "lat": (lat, None), "lon": (lon, None),
        "latency": (latency, latency == fm.LATENCY_NONE), "sog": (sog, sog == fm.SOG_NONE),
        "cog": (cog, cog == fm.COG_NONE), "heading": (heading, heading_none),
        "nav_status": (status, status == fm.STATUS_NONE), "rot": (rot, rot == fm.ROT_NONE),
        "source": (source, source == fm.SOURCE_NONE),
        "ais_class": (np.where(cls == 1, "B", "A").astype(object), None)}
    items: list[tuple[int, Item]] = []
    for i in np.flatnonzero(~ok).tolist():
        values = tuple(rec[i].tolist())
        items.append((first + i, fm.fix_item(values if with_mmsi else values[1:],
                                          with_mmsi=with_mmsi, ids=ids)))
    return _finish(accepted, ok, items, set_no, n)


def fixes_batches(stream: BinaryIO, set_no: SetNo, *, with_mmsi: bool = True,
                  ids: tuple[tuple[str, str], ...] = ()) -> Iterator[Batch]:
    """Batches of a BinaryFixes file (as :func:`formats.iter_fixes` reads it): records
    numbered from 1, a truncated last record rejected."""
    size = fm.FIXES.size if with_mmsi else fm.FIXES_NO_MMSI.size
    dtype = FIX_DTYPE if with_mmsi else FIX_DTYPE_NO_MMSI
    record = 1
    pending = b""
    while True:
        data = stream.read(size * FIX_RECORDS)
        block = pending + data
        whole = len(block) - len(block) % size
        if whole:
            rec = np.frombuffer(block[:whole], dtype)
            yield _check_fixes(rec if with_mmsi else _with_mmsi(rec), record, with_mmsi, ids,
                               set_no)
            record += len(rec)
        pending = block[whole:]
        if not data:
            if pending:
                yield Batch(STAGE.empty_table(), [(record, Reject(
                    f"truncated record: {len(pending)} of {size} bytes", pending.hex()))], 1)
            return


def _with_mmsi(rec: np.ndarray) -> np.ndarray:
    out = np.zeros(len(rec), FIX_DTYPE)
    for name in rec.dtype.names or ():
        out[name] = rec[name]
    return out
