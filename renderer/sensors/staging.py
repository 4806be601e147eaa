"""Reading one file: its typed rows (returned) and its rejects (the session's
``sensors_checked`` table).

Why validate in Python with Arrow and not in SQL: measured on a 1.44 M-row day file, the
set-based SQL validation (COPY into text columns, then one INSERT ... SELECT with guarded
casts) cost 12-18 µs a row, because every regular expression or ``ltrim`` costs PostgreSQL
0.5-3 µs per row and a row needs about ten; Arrow's vectorised kernels (RE2, casts) run the
same rules at well under 1 µs a row (and the plainest rows are checked in one C pass first:
:func:`.validate.check`). The valid, typed rows stay in memory as Arrow columns and go to
sensors_raw by binary COPY (:mod:`.rows`); only the rejects cross to this temporary table.
Row-by-row Python (``csv.reader`` and a per-row check) would be slower still.

Two readers feed the same rules (:mod:`.validate`):

- fast: Arrow's streaming CSV reader. It knows no line numbers, so it is trusted only while
  every physical line is one row: a ragged row aborts it, and at the end the rows read must
  equal the lines sent (a quoted field spanning lines would shift the numbers);
- exact: ``csv.reader`` in Python, which tracks physical lines and turns ragged rows into
  rejects. A file the fast reader gives up on is read again this way (under a savepoint, so
  nothing of the first attempt remains).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from renderer import db
from renderer.errors import InputError
from renderer.sensors.files import SourceFile, text_chunks
from renderer.sensors.validate import FIELDS, SCHEMA, check

__all__ = ["REQUIRED", "BadHeader", "Header", "Staged", "copy_accepted", "parse_header", "stage"]

log = logging.getLogger(__name__)

REQUIRED = FIELDS[:4]
BATCH_ROWS = 65536
RAW_LIMIT = 1000
_NAME = re.compile(r"[a-z0-9_ .-]{1,64}")  # what a column name can be quoted as in a reason
_Batch = tuple[pa.RecordBatch, np.ndarray]  # text columns and their line numbers


class BadHeader(InputError):
    """The header lacks a required column or names one twice: the file is rejected whole
    (ingest records it as the file's reason)."""


@dataclass(frozen=True)
class Header:
    names: tuple[str, ...]
    delimiter: str

    @property
    def columns(self) -> list[str]:
        """Arrow column names: by position, since header names may repeat or be empty."""
        return [f"f{i}" for i in range(len(self.names))]


def parse_header(line: str) -> Header:
    """The column names (lowercased) and the delimiter (``,``, ``;`` or tab) of a header."""
    delimiter = ","
    if "," not in line:
        delimiter = ";" if ";" in line else "\t" if "\t" in line else ","
    try:
        names = tuple(n.strip().lower()
                      for n in next(csv.reader([line], delimiter=delimiter)))
    except csv.Error as exc:  # a field over csv's limit (131,072 characters)
        raise BadHeader(f"header unreadable: {exc}") from exc
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise BadHeader(f"header lacks {', '.join(missing)} ({_found(names)})")
    twice = sorted({n for n in FIELDS if names.count(n) > 1})
    if twice:
        raise BadHeader(f"header names {', '.join(twice)} more than once")
    return Header(names, delimiter)


def _found(names: tuple[str, ...]) -> str:
    """The header's names for a reason, quoting only those that look like column names: the
    first line of a file that is not data (a key, a password file) is never copied."""
    shown = [n for n in names if _NAME.fullmatch(n)]
    hidden = len(names) - len(shown)
    found = f"found: {', '.join(shown)[:200]}" if shown else "found no column names"
    return found + (f" and {hidden} field(s) that are not column names" if hidden else "")


def _split_header(chunks: Iterator[str]) -> tuple[str | None, Iterator[str]]:
    """The first line and an iterator over the text after it."""
    buffered = ""
    for chunk in chunks:
        buffered += chunk
        if "\n" in buffered:
            head, rest = buffered.split("\n", 1)

            def tail(rest: str = rest) -> Iterator[str]:
                if rest:
                    yield rest
                yield from chunks

            return head, tail()
    return (buffered or None), iter(())


class _Bytes(io.RawIOBase):
    """The text chunks as a UTF-8 byte stream for Arrow, counting the lines sent."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.lines = 0
        self._last = b"\n"

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk.encode()
            self.lines += chunk.count("\n")
            self._last = self._buffer[-1:]
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    @property
    def records(self) -> int:
        """Lines sent, counting a last line without a line end."""
        return self.lines + (self._last != b"\n")


class _Ragged(Exception):
    pass


def _fast_batches(header: Header, body: Iterator[str]) -> Iterator[_Batch]:
    stream = _Bytes(body)
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(column_names=header.columns, block_size=1 << 22),
        # no invalid_row_handler: a ragged row raises ArrowInvalid, and we read again exactly
        parse_options=pacsv.ParseOptions(delimiter=header.delimiter, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header.columns},
            strings_can_be_null=False, quoted_strings_can_be_null=False))
    first = 2  # the header is line 1
    for batch in reader:
        yield batch, np.arange(first, first + batch.num_rows)
        first += batch.num_rows
    if first - 2 != stream.records:
        raise _Ragged


def _lines(chunks: Iterator[str]) -> Iterator[str]:
    pending = ""
    for chunk in chunks:
        parts = (pending + chunk).split("\n")
        pending = parts.pop()
        for part in parts:
            yield part + "\n"
    if pending:
        yield pending


def _exact_batches(header: Header, body: Iterator[str],
                   ragged: list[tuple[int, str, str]]) -> Iterator[_Batch]:
    width = len(header.names)
    reader = csv.reader(_lines(body), delimiter=header.delimiter, strict=False)
    columns: list[list[str]] = [[] for _ in range(width)]
    lines: list[int] = []
    previous = 0  # lines consumed before this record (the header is line 1)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            ragged.append((2 + previous, f"malformed CSV: {exc}", ""))
            previous = reader.line_num
            continue
        line, previous = 2 + previous, reader.line_num
        if len(row) != width:
            if any(row):
                ragged.append((line, f"expected {width} fields, found {len(row)}",
                               header.delimiter.join(row)[:RAW_LIMIT]))
            continue
        for column, value in zip(columns, row, strict=True):
            column.append(value)
        lines.append(line)
        if len(lines) >= BATCH_ROWS:
            yield pa.record_batch(columns, names=header.columns), np.array(lines)
            columns, lines = [[] for _ in range(width)], []
    if lines:
        yield pa.record_batch(columns, names=header.columns), np.array(lines)


_COPY_ROWS = db.sql.SQL("COPY sensors_checked ({}) FROM STDIN (FORMAT csv)").format(
    db.sql.SQL(", ").join(db.sql.Identifier(n) for n in SCHEMA.names))
_COPY_REJECTS = db.sql.SQL("COPY sensors_checked (line, reason, raw) FROM STDIN")


def _naive(table: pa.Table) -> pa.Table:
    """Times as zone-less UTC text (the session's TimeZone is UTC: sensors_ingest.session),
    which Arrow writes 5x faster than zoned times."""
    i = table.schema.get_field_index("recordtimestamp")
    return table.set_column(i, "recordtimestamp", table.column(i).cast(pa.timestamp("us")))


@dataclass(frozen=True)
class Staged:
    """A file after validation: its accepted rows, typed (``validate.SCHEMA``, in file
    order), and how many rows were rejected (those are in ``sensors_checked``)."""

    header: Header
    accepted: pa.Table
    rejected: int


def _load(conn: db.Connection, header: Header, batches: Iterator[_Batch],
          ragged: list[tuple[int, str, str]] | None = None) -> Staged:
    """Check the batches; keep the accepted rows, COPY the rejects (``ragged`` is filled by
    the exact reader while its batches are consumed)."""
    rejects: list[tuple[int, str, str]] = []
    accepted: list[pa.Table] = []
    for batch, lines in batches:
        checked = check(batch, header.names, lines, header.delimiter)
        rejects.extend(checked.rejects)
        if checked.accepted.num_rows:
            accepted.append(checked.accepted)
    rejects.extend(ragged or ())
    if rejects:
        with conn.cursor() as cur, cur.copy(_COPY_REJECTS) as copy:
            for row in rejects:
                copy.write_row(row)
    table = pa.concat_tables(accepted) if accepted else SCHEMA.empty_table()
    return Staged(header, table.combine_chunks(), len(rejects))


def copy_accepted(conn: db.Connection, table: pa.Table) -> None:
    """The accepted rows into ``sensors_checked`` too (the path for files whose rows are
    already stored or repeated: duplicates are found and rows upserted there, in SQL)."""
    with conn.cursor() as cur, cur.copy(_COPY_ROWS) as copy:
        for batch in table.to_batches(BATCH_ROWS):
            out = io.BytesIO()
            pacsv.write_csv(_naive(pa.Table.from_batches([batch])), out,
                            write_options=pacsv.WriteOptions(include_header=False))
            copy.write(out.getbuffer())


def stage(conn: db.Connection, source: SourceFile) -> Staged:
    """Validate the file's rows inside the caller's transaction: the rejects go into the
    session's ``sensors_checked`` table, the accepted rows are returned. Raises
    :class:`BadHeader` for a file without a usable header and
    :class:`~renderer.sensors.files.FileUnreadable` for one that cannot be read."""
    with source.open() as stream:
        head, body = _split_header(text_chunks(stream))
        if head is None or not head.strip():
            raise BadHeader("file is empty (no header line)")
        header = parse_header(head)
        try:
            with conn.transaction():
                return _load(conn, header, _fast_batches(header, body))
        except (_Ragged, pa.ArrowInvalid):
            pass
    log.info("%s: not one row per line throughout, reading it line by line", source.key)
    with source.open() as stream:
        _, body = _split_header(text_chunks(stream))
        ragged: list[tuple[int, str, str]] = []
        return _load(conn, header, _exact_batches(header, body, ragged), ragged)
