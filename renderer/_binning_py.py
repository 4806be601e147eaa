"""Pure-Python twin of the C binning loop in ``ext/binning.c``.

Same signature, same result, same reject reasons, byte for byte: the tests run every input
through both. This module is the readable statement of the rules; the C file follows it.
Import :func:`renderer.binning.bin_file` rather than this module: it picks the C loop when
it is built.
"""

from __future__ import annotations

import math
import operator
import re
import struct
from collections.abc import Sequence
from typing import NamedTuple

from renderer.tiles import LEVEL_BITS, MAX_SEGMENT_ID, NO_NEXT, TILE_ID_MASK

HEADER = (
    b"segment_id,next_segment_id,duration,count,length,queue_length,"
    b"minimum_timestamp,maximum_timestamp,source,vehicle_type"
)
BOM = b"\xef\xbb\xbf"
# Bytes of a bad header quoted in file_error; a binary blob without newlines would
# otherwise be quoted whole.
HEADER_QUOTE_BYTES = 200
# A bad header is quoted only when its quoted bytes could be column names: the first line of a
# file that is not data (a password file reached through a link, a key) is never copied.
HEADER_LIKE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_,;. \t-")
NOT_A_HEADER = "not a reporter CSV: its first line is not a CSV header (not shown)"
# A file is binary, rather than a reporter CSV with a damaged row, when it starts with the magic
# bytes of a compressed, archive or image format (a gzip here is one inside the gzip the stage
# opened), or when it does not start with the header and its first block holds a NUL (UTF-16
# text, images, any compressed data). After the header a NUL rejects its row only: a file that
# begins with the exact header is a reporter CSV, and a NUL in it is damage to a row, such as the
# zero-filled block a crash leaves at the end of a file. The block is git's 8000 bytes.
BINARY_SNIFF_BYTES = 8000
BINARY_MAGIC = (
    b"\x1f\x8b",  # gzip
    b"PK\x03\x04", b"PK\x05\x06",  # zip
    b"BZh",  # bzip2
    b"\xfd7zXZ\x00",  # xz
    b"\x28\xb5\x2f\xfd",  # zstd
    b"\x89PNG\r\n\x1a\n",  # png
    b"\xff\xd8\xff",  # jpeg
    b"%PDF-",
)

FIELDS = 10
ID_LIMIT = MAX_SEGMENT_ID + 1  # segment ids use bits 0-45
TILE_MASK = TILE_ID_MASK  # bits 0-24: level and tile index, i.e. the tile_id
U64_MAX = (1 << 64) - 1
DURATION_MAX = 1142  # lower bound of the last duration bucket; longer ones clamp to it
MODE_MAX = 32
# What the histogram stores. A count at most the histogram file's uint32 (formats/histogram.fbs,
# OpenTraffic's counts too): a bigint bin then holds 2^31 rows at the limit, more than a prefix
# held in memory can have, so no accepted row can make the emission fail. A length in whole
# metres, ``floor(length + 0.5)``, in the int4 column of traffic_segment_length_reports.
# Durations are stored as their bucket code, whose last bucket is open-ended (OpenTraffic's
# clamp): every finite duration fits.
COUNT_MAX = (1 << 32) - 1
LENGTH_MAX = (1 << 31) - 1

# Reject reasons: short fixed strings, identical in ext/binning_emit.c.
BAD_SEGMENT = "bad segment_id"
BAD_NEXT = "bad next_segment_id"
BAD_DURATION = "bad duration"
BAD_COUNT = "bad count"
BAD_LENGTH = "bad length"
BAD_QUEUE = "bad queue_length"
BAD_MIN_TS = "bad minimum_timestamp"
BAD_MAX_TS = "bad maximum_timestamp"
TS_ORDER = "maximum_timestamp before minimum_timestamp"
BAD_MODE = "bad vehicle_type"
OUTSIDE_TILE = "segment outside tile"
OUTSIDE_HOUR = "time outside hour"
FIELD_COUNT = "expected 10 fields, got {}"
NUL_BYTE = "NUL byte"
COUNT_TOO_LARGE = f"count too large (max {COUNT_MAX})"
LENGTH_TOO_LARGE = f"length too large (max {LENGTH_MAX} m)"
BINARY_DATA = "not a reporter CSV: binary data"

# The number grammar, the same in C: no sign, no spaces, no exponent, no inf/nan, no "_".
_INTEGER = re.compile(rb"[0-9]{1,20}")  # then it must fit in uint64
_DECIMAL = re.compile(rb"[0-9]+(?:\.[0-9]*)?")  # then float(), which rounds correctly
_MODE = re.compile(rb"[A-Za-z0-9_]{1,32}")

BinKey = tuple[str, int, int | None, int, int]
"""(mode, segment_id, next_segment_id, duration_code, queue_code)"""


class BinResult(NamedTuple):
    """What one reporter file contributes to the histogram of its (tile, hour)."""

    rows_read: int
    """Non-blank data lines; always ``rows_accepted + len(rejects)``."""
    rows_accepted: int
    observations: int
    """Sum of ``count`` over the accepted rows."""
    bins: list[tuple[str, int, int | None, int, int, int]]
    """``(mode, segment_id, next_segment_id, duration_code, queue_code, count_sum)``, sorted
    ascending with a ``None`` next segment before any integer."""
    rejects: list[tuple[int, str, str]]
    """``(line_number, raw_line, reason)``; the header is line 1."""
    file_error: str | None
    lengths: list[tuple[int, int, int]]
    """``(segment_id, length_m, count_sum)`` sorted: the reported lengths (whole metres,
    ``floor(length + 0.5)``, at most ``LENGTH_MAX``) of accepted rows, weighted by count;
    the speed-tile stage takes each segment's most common one."""


def check_prefix(level: int, tile_index: int, hour: int) -> tuple[int, int, int]:
    """Validate the (level, tile_index, hour) of a file prefix; return them as ints.

    Raises TypeError for non-integers and ValueError for values outside the id bit fields.
    """
    level = operator.index(level)
    tile_index = operator.index(tile_index)
    hour = operator.index(hour)
    if not 0 <= level <= 7:
        raise ValueError(f"level must be in 0..7, got {level}")
    if not 0 <= tile_index < 1 << 22:
        raise ValueError(f"tile_index must be in 0..4194303, got {tile_index}")
    if not 0 <= hour <= (U64_MAX - 3599) // 3600:
        raise ValueError(f"hour must be in 0..5124095576030430, got {hour}")
    return level, tile_index, hour


def _file_error(reason: str) -> BinResult:
    return BinResult(0, 0, 0, [], [], reason, [])


def _integer(text: bytes) -> int | None:
    if _INTEGER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= U64_MAX else None


def _decimal(text: bytes) -> float | None:
    if _DECIMAL.fullmatch(text) is None:
        return None
    value = float(text)
    # Only ~309-digit numbers overflow; treat them as malformed rather than as infinity.
    return value if math.isfinite(value) else None


def _parse_row(
    fields: list[bytes], tile_id: int, first: int, last: int
) -> tuple[BinKey, int, int] | str:
    """Return ``(key, count, length_m)`` for a good row, else the reason to reject it."""
    segment = _integer(fields[0])
    if segment is None or segment >= ID_LIMIT:
        return BAD_SEGMENT
    next_segment: int | None = None
    if fields[1]:
        next_segment = _integer(fields[1])
        if next_segment is None or next_segment >= ID_LIMIT:
            return BAD_NEXT
        if next_segment in NO_NEXT:
            next_segment = None
    duration = _decimal(fields[2])
    if duration is None:
        return BAD_DURATION
    count = _integer(fields[3])
    if not count:
        return BAD_COUNT
    length = _decimal(fields[4])
    if length is None or not length > 0.0:
        return BAD_LENGTH
    queue = _decimal(fields[5])
    if queue is None:
        return BAD_QUEUE
    minimum = _integer(fields[6])
    if minimum is None:
        return BAD_MIN_TS
    maximum = _integer(fields[7])
    if maximum is None:
        return BAD_MAX_TS
    if maximum < minimum:
        return TS_ORDER
    if _MODE.fullmatch(fields[9]) is None:
        return BAD_MODE
    # Well-formed from here on; what the histogram cannot store is rejected, never capped.
    if count > COUNT_MAX:
        return COUNT_TOO_LARGE
    length_m = math.floor(length + 0.5)
    if length_m > LENGTH_MAX:
        return LENGTH_TOO_LARGE
    if segment & TILE_MASK != tile_id:
        return OUTSIDE_TILE
    if minimum > last or maximum < first:
        return OUTSIDE_HOUR
    mode = fields[9].upper().decode("ascii")
    key = (mode, segment, next_segment, _duration_code(duration), _queue_code(queue, length))
    return key, count, length_m


def _duration_code(seconds: float) -> int:
    # int() truncates, which is floor for the non-negative values the grammar allows.
    d = DURATION_MAX if seconds >= DURATION_MAX else int(seconds)
    if d < 64:
        return d
    if d < 192:
        return 64 | (d - 64) // 2
    if d < 512:
        return 128 | (d - 192) // 5
    return 192 | (d - 512) // 10


def _queue_code(queue: float, length: float) -> int:
    # Evaluated left to right in IEEE double, exactly as the C expression is.
    v = 255.0 * queue / length + 0.5
    return 255 if not v < 255.0 else int(v)


def _sort_key(item: tuple[BinKey, int]) -> tuple[str, int, int, int, int]:
    mode, segment, next_segment, d, q = item[0]
    return mode, segment, -1 if next_segment is None else next_segment, d, q


def bin_file(data: bytes, level: int, tile_index: int, hour: int) -> BinResult:
    """Bin the rows of one decompressed reporter CSV file for the (tile, hour) of its prefix.

    Parameters
    ----------
    data
        The whole file (bytes-like); a UTF-8 BOM and CRLF line ends are accepted.
    level, tile_index
        The tile of the file's prefix; ``tile_id = (tile_index << 3) | level``.
    hour
        The epoch hour (``floor(epoch / 3600)``) of the file's prefix.

    Examples
    --------
    >>> header = HEADER.decode()
    >>> bin_file(f"{header}\\n{2140 << 3},,600,3,100,0,7200,7260,x,auto\\n".encode(), 0, 2140, 2)
    ... # doctest: +NORMALIZE_WHITESPACE
    BinResult(rows_read=1, rows_accepted=1, observations=3,
              bins=[('AUTO', 17120, None, 200, 0, 3)], rejects=[], file_error=None,
              lengths=[(17120, 100, 3)])
    """
    level, tile_index, hour = check_prefix(level, tile_index, hour)
    data = bytes(data)
    if not data:
        return _file_error("empty file")
    if data.startswith(BINARY_MAGIC):
        return _file_error(BINARY_DATA)
    lines = data.split(b"\n")
    header = lines[0].removeprefix(BOM).removesuffix(b"\r")
    if header != HEADER:
        if b"\0" in data[:BINARY_SNIFF_BYTES]:
            return _file_error(BINARY_DATA)
        if not set(header[:HEADER_QUOTE_BYTES]) <= HEADER_LIKE:
            return _file_error(NOT_A_HEADER)
        quoted = header[:HEADER_QUOTE_BYTES].decode("utf-8", "replace")
        return _file_error(f"not a reporter CSV: header is {quoted!r}")

    tile_id = tile_index << LEVEL_BITS | level
    first = hour * 3600
    last = first + 3599
    rows_read = rows_accepted = observations = 0
    sums: dict[BinKey, int] = {}
    lengths: dict[tuple[int, int], int] = {}
    rejects: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        line = line.removesuffix(b"\r")
        if not line:
            continue
        rows_read += 1
        fields = line.split(b",")
        if b"\0" in line:
            reason = NUL_BYTE
        elif len(fields) != FIELDS:
            reason = FIELD_COUNT.format(len(fields))
        else:
            parsed = _parse_row(fields, tile_id, first, last)
            if isinstance(parsed, str):
                reason = parsed
            else:
                key, count, length_m = parsed
                rows_accepted += 1
                observations += count
                sums[key] = sums.get(key, 0) + count
                lengths[key[1], length_m] = lengths.get((key[1], length_m), 0) + count
                continue
        # PostgreSQL text cannot hold a NUL: it is kept as U+FFFD, like an undecodable byte.
        rejects.append((number, line.decode("utf-8", "replace").replace("\0", "\ufffd"), reason))

    bins = [(*key, total) for key, total in sorted(sums.items(), key=_sort_key)]
    length_list = [(*key, total) for key, total in sorted(lengths.items())]
    return BinResult(rows_read, rows_accepted, observations, bins, rejects, None, length_list)


class PrefixResult(NamedTuple):
    """What the files of one (tile, hour) prefix contribute, binned together."""

    files: list[BinResult]
    """One result per file, in input order, with ``bins`` and ``lengths`` left empty (they
    are in the COPY payloads, summed over the files)."""
    bins: int
    """Distinct bins over all the files: the rows of ``bins_copy``."""
    modes: list[str]
    """The modes that have bins, sorted."""
    bins_copy: bytes
    """PostgreSQL binary COPY data of the summed bins in :attr:`BinResult.bins` order, as rows
    (mode text, segment_id int8, next_segment_id int8 or NULL, hour int4, duration_code int2,
    queue_code int2, count int8)."""
    lengths: int
    lengths_copy: bytes
    """Binary COPY data of the summed lengths as rows (segment_id int8, length int4,
    observations int8), sorted."""


COPY_HEADER = b"PGCOPY\n\xff\r\n\0" + bytes(8)  # signature, flags, header extension length
COPY_TRAILER = b"\xff\xff"
INT64_MAX = (1 << 63) - 1
HOUR_MAX = (1 << 31) - 1  # the integer hour column


def _checked(count: int) -> int:
    if count > INT64_MAX:
        raise OverflowError("a summed count does not fit a bigint column")
    return count


def bin_prefix(files: Sequence[bytes], level: int, tile_index: int, hour: int) -> PrefixResult:
    """Bin the decompressed files of one (tile, hour) prefix; sum their bins and lengths.

    Identical bins of different files are summed, and handed over as binary COPY data for
    the histogram tables, so that writing them costs no Python object per row.
    """
    level, tile_index, _ = check_prefix(level, tile_index, 0)
    hour = operator.index(hour)
    if not 0 <= hour <= HOUR_MAX:
        raise ValueError(f"hour must be in 0..{HOUR_MAX}, got {hour}")
    sums: dict[BinKey, int] = {}
    lengths: dict[tuple[int, int], int] = {}
    results = []
    for data in files:
        result = bin_file(data, level, tile_index, hour)
        for mode, segment, next_segment, d, q, count in result.bins:
            key = (mode, segment, next_segment, d, q)
            sums[key] = sums.get(key, 0) + count
        for segment, length, count in result.lengths:
            lengths[segment, length] = lengths.get((segment, length), 0) + count
        results.append(result._replace(bins=[], lengths=[]))
    bins = [COPY_HEADER]
    for (mode, segment, next_segment, d, q), count in sorted(sums.items(), key=_sort_key):
        name = mode.encode()
        nxt = b"\xff\xff\xff\xff" if next_segment is None else struct.pack(">iq", 8, next_segment)
        bins.append(struct.pack(f">hi{len(name)}s", 7, len(name), name)
                    + struct.pack(">iq", 8, segment) + nxt
                    + struct.pack(">iiihihiq", 4, hour, 2, d, 2, q, 8, _checked(count)))
    bins.append(COPY_TRAILER)
    rows = [COPY_HEADER]
    for (segment, length), count in sorted(lengths.items()):
        rows.append(struct.pack(">hiqiiiq", 3, 8, segment, 4, length, 8, _checked(count)))
    rows.append(COPY_TRAILER)
    return PrefixResult(results, len(sums), sorted({key[0] for key in sums}), b"".join(bins),
                        len(lengths), b"".join(rows))


_LENGTH_ROW = struct.Struct(">hiqiiiq")  # 3 fields: int8 segment, int4 length, int8 count


def merge_lengths(payloads: Sequence[bytes]) -> tuple[int, bytes]:
    """The binary COPY payloads of segment lengths (:attr:`PrefixResult.lengths_copy`) as
    one, sorted by (segment, length), the rows of a (segment, length) found in several
    summed; with the number of rows. ValueError on a payload of another shape."""
    lengths: dict[tuple[int, int], int] = {}
    for payload in payloads:
        body = payload[len(COPY_HEADER):len(payload) - len(COPY_TRAILER)]
        if (not payload.startswith(COPY_HEADER[:11]) or len(payload) < 21
                or len(body) % _LENGTH_ROW.size):
            raise ValueError("not a binary COPY payload of segment lengths")
        for shape, w1, segment, w2, length, w3, count in _LENGTH_ROW.iter_unpack(body):
            if (shape, w1, w2, w3) != (3, 8, 4, 8):
                raise ValueError("not a binary COPY payload of segment lengths")
            lengths[segment, length] = lengths.get((segment, length), 0) + count
    rows = [COPY_HEADER]
    for (segment, length), count in sorted(lengths.items()):
        rows.append(_LENGTH_ROW.pack(3, 8, segment, 4, length, 8, _checked(count)))
    rows.append(COPY_TRAILER)
    return len(lengths), b"".join(rows)
