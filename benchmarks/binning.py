"""Benchmark of the binning loop: the C function, its pure-Python twin, and NumPy.

Generates one hour of valid reporter rows for one tile in memory (deterministic seed), then
times, in one run:

- ``c``: ``renderer._binning.bin_file`` on all rows;
- ``python``: the pure-Python twin on a slice of at most 1M rows (rates scale linearly);
- ``numpy``: the same work vectorised, in chunks of 4 MB of text so that temporaries stay in
  cache: separators found with NumPy, each field parsed from one gathered window of its bytes,
  bucketed, and aggregated with ``np.lexsort`` + ``np.add.reduceat`` (per 2M rows, then
  overall). It checks nothing a valid file could fail (field grammar, CRLF, blank lines), so
  it does less than the other two; its bins are checked against the C result.

Rates are rows per CPU second of the process (see ``timed``). Run:
``python benchmarks/binning.py [--rows N]`` (default 10M rows, ~1 GB of CSV and a few GB
of peak memory). The last line is ``c=<n>/s python=<n>/s numpy=<n>/s c_vs_python=<r>
c_vs_numpy=<r>``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

# One core each: the C loop is single-threaded, and workers run several per core anyway.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from renderer import binning  # noqa: E402
from renderer._binning_py import HEADER, LENGTH_MAX, BinResult  # noqa: E402

LEVEL, TILE_INDEX, HOUR = 2, 413_542, 493_000
TILE_ID = TILE_INDEX << 3 | LEVEL
SEGMENTS = 4000  # segments in the tile that carry traffic this hour
POOL = 500_000  # distinct rows generated; the file draws its rows from them
MODES = np.array([b"AUTO", b"auto", b"BUS", b"TAXI"])
SOURCES = np.array([b"reporter", b"smartphone", b"fleet_a"])
PYTHON_ROWS = 1_000_000


def generate(rows: int, seed: int = 20260101) -> bytes:
    """``rows`` valid rows of one (tile, hour): a pool of distinct rows, drawn at random."""
    rng = np.random.default_rng(seed)
    n = min(rows, POOL)
    index = rng.integers(0, SEGMENTS, n)
    segment = TILE_ID | (index.astype(np.int64) * 37 % (1 << 21)) << 25
    successor = TILE_ID | ((index + rng.integers(1, 4, n)) % SEGMENTS * 37) << 25
    none = rng.choice(["", str((1 << 46) - 1), str((1 << 42) - 1)], n, p=[0.5, 0.3, 0.2]).astype(
        object
    )
    has_next = rng.random(n) < 0.8
    duration = rng.gamma(2.0, 25.0, n)
    decimal = rng.random(n) < 0.3
    # a segment has one length; reporters round it differently now and then
    length = (20 + index * 7919 % 1480) + np.where(rng.random(n) < 0.1, rng.integers(-2, 3, n), 0)
    queue = np.where(rng.random(n) < 0.8, 0, rng.integers(0, 1500, n) % length)
    start = HOUR * 3600 + rng.integers(-60, 3600, n)
    end = np.maximum(start + duration.astype(np.int64) + 1, HOUR * 3600)  # inside the hour
    mode = rng.choice(MODES, n, p=[0.80, 0.05, 0.10, 0.05])
    source = rng.choice(SOURCES, n)
    pool = []
    for i in range(n):
        d = f"{duration[i]:.1f}" if decimal[i] else str(int(duration[i]))
        nxt = str(successor[i]) if has_next[i] else none[i]
        pool.append(
            f"{segment[i]},{nxt},{d},{1 + i % 4},{length[i]},{queue[i]},{start[i]},"
            f"{end[i]},{source[i].decode()},{mode[i].decode()}\n"
        )
    pool_bytes = [line.encode() for line in pool]
    picks = rng.integers(0, n, rows) if rows > n else np.arange(n)
    return HEADER + b"\n" + b"".join([pool_bytes[i] for i in picks.tolist()])


def first_rows(data: bytes, rows: int) -> bytes:
    """The header and the first ``rows`` data rows of ``data``."""
    end = 0
    for _ in range(rows + 1):
        end = data.index(b"\n", end) + 1
    return data[:end]


# --- the NumPy formulation ----------------------------------------------------------------

_DURATION_OFFSETS = np.array([0, 64, 192, 512])
_DURATION_STEPS = np.array([1, 2, 5, 10])
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_POW10F = _POW10[:16].astype(np.float64)
_PAD = 16  # bytes in front of a chunk, so that every field has a full window
CHUNK_BYTES = 4 << 20  # parse this much text at a time: temporaries stay in cache
AGGREGATE_ROWS = 2_000_000  # rows of keys gathered before a partial aggregation


def _inside(start: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """Which bytes of each right-aligned ``width``-byte window belong to the field."""
    return np.arange(width) >= width - (end - start)[:, None]


def _integers(window: np.ndarray, start: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """Unsigned integers of at most ``width`` (<= 15) digits: exact through a float64 product."""
    inside = _inside(start, end, width)
    digits = np.where(inside, window - 48, 0).astype(np.float64)
    return (digits @ _POW10F[width - 1 :: -1]).astype(np.int64)


def _decimals(window: np.ndarray, start: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """Doubles from ``[0-9]+(\\.[0-9]*)?``: all digits as one integer over 10^fraction digits,
    the same correctly rounded division the C fast path does."""
    inside = _inside(start, end, width)
    point = inside & (window == 46)
    has_point = point.any(axis=1)
    fraction = np.where(has_point, width - 1 - point.argmax(axis=1), 0)
    digits = np.where(inside & ~point, window - 48, 0).astype(np.float64)
    gapped = (digits @ _POW10F[width - 1 :: -1]).astype(np.int64)  # the point counts as a 0
    scale = _POW10[fraction]
    value = np.where(has_point, gapped // (scale * 10) * scale + gapped % scale, gapped)
    return value / scale.astype(np.float64)


def _parse_chunk(chunk: np.ndarray, level: int, tile_index: int, hour: int):
    """Keys and counts of the rows of one chunk of whole lines."""
    buf = np.zeros(len(chunk) + 2 * _PAD, np.uint8)
    buf[_PAD : _PAD + len(chunk)] = chunk
    sep = np.flatnonzero((chunk == 44) | (chunk == 10)).reshape(-1, 10) + _PAD
    starts = np.empty_like(sep)
    starts[:, 1:] = sep[:, :9] + 1
    starts[0, 0] = _PAD
    starts[1:, 0] = sep[:-1, 9] + 1
    views = {w: np.lib.stride_tricks.sliding_window_view(buf, w) for w in (6, 7, 8, 11, 14)}

    def field(i: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        # views[w][k] is buf[k : k + w], so the w bytes before offset e are views[w][e - w]
        return views[width][sep[:, i] - width], starts[:, i], sep[:, i], width

    segment = _integers(*field(0, 14))
    next_raw = _integers(*field(1, 14))
    no_next = (sep[:, 1] == starts[:, 1]) | (next_raw == (1 << 46) - 1)
    no_next |= next_raw == (1 << 42) - 1
    next_plus1 = np.where(no_next, 0, next_raw + 1)
    duration = _decimals(*field(2, 8))
    count = _integers(*field(3, 6))
    length = _decimals(*field(4, 8))
    queue = _decimals(*field(5, 8))
    minimum = _integers(*field(6, 11))
    maximum = _integers(*field(7, 11))
    # the mode: up to 7 bytes of the last field, upper-cased, as one big-endian integer
    window = views[7][starts[:, 9]]
    window = np.where(np.arange(7) < (sep[:, 9] - starts[:, 9])[:, None], window, 0)
    window = window - np.where((window >= 97) & (window <= 122), 32, 0).astype(np.uint8)
    mode = window.astype(np.int64) @ (256 ** np.arange(6, -1, -1, dtype=np.int64))

    first = hour * 3600
    ok = (segment & 0x1FFFFFF) == (tile_index << 3 | level)
    ok &= (minimum <= first + 3599) & (maximum >= first)
    seconds = np.minimum(duration, 1142.0).astype(np.int64)
    klass = np.searchsorted(_DURATION_OFFSETS, seconds, side="right") - 1
    d_code = klass << 6 | (seconds - _DURATION_OFFSETS[klass]) // _DURATION_STEPS[klass]
    v = 255.0 * queue / length + 0.5
    q_code = np.where(v < 255.0, v, 255.0).astype(np.int64)
    minor = next_plus1 << 16 | d_code << 8 | q_code  # one key for (next, duration, queue)
    length_m = np.minimum(np.floor(length + 0.5), LENGTH_MAX).astype(np.int64)
    return mode[ok], segment[ok], minor[ok], count[ok], length_m[ok], len(sep)


def _aggregate(keys: list[np.ndarray], counts: np.ndarray):
    order = np.lexsort(keys[::-1])
    keys = [k[order] for k in keys]
    counts = counts[order]
    new = np.ones(len(counts), bool)
    if len(counts):
        new[1:] = np.logical_or.reduce([k[1:] != k[:-1] for k in keys])
    heads = np.flatnonzero(new)
    sums = np.add.reduceat(counts, heads) if len(heads) else counts
    return [k[heads] for k in keys], sums


def numpy_bin(data: bytes, level: int, tile_index: int, hour: int) -> BinResult:
    """The binning of a valid, LF-terminated file, vectorised with NumPy."""
    buf = np.frombuffer(data, np.uint8)
    pos = data.index(b"\n") + 1
    rows = accepted = 0
    bin_parts: list[tuple[list[np.ndarray], np.ndarray]] = []
    length_parts: list[tuple[list[np.ndarray], np.ndarray]] = []
    pending: list[tuple[np.ndarray, ...]] = []
    pending_rows = 0
    while pos < len(data):
        stop = len(data)
        if pos + CHUNK_BYTES < len(data):
            stop = data.rindex(b"\n", pos, pos + CHUNK_BYTES) + 1
        *columns, n = _parse_chunk(buf[pos:stop], level, tile_index, hour)
        rows += n
        accepted += len(columns[3])
        pending.append(tuple(columns))
        pending_rows += len(columns[3])
        pos = stop
        if pending_rows >= AGGREGATE_ROWS or pos >= len(data):
            mode, segment, minor, count, length_m = map(np.concatenate, zip(*pending, strict=True))
            bin_parts.append(_aggregate([mode, segment, minor], count))
            length_parts.append(_aggregate([segment, length_m], count))
            pending, pending_rows = [], 0

    def merge(parts: list[tuple[list[np.ndarray], np.ndarray]], width: int):
        return _aggregate(
            [np.concatenate([p[0][i] for p in parts]) for i in range(width)],
            np.concatenate([p[1] for p in parts]),
        )

    keys, sums = merge(bin_parts, 3)
    (length_segment, length_value), length_sums = merge(length_parts, 2)
    lengths = list(
        zip(length_segment.tolist(), length_value.tolist(), length_sums.tolist(), strict=True)
    )
    names = {int(k): int(k).to_bytes(7).rstrip(b"\0").decode() for k in np.unique(keys[0])}
    bins = [
        (names[m], s, (minor >> 16) - 1 if minor >> 16 else None, minor >> 8 & 255, minor & 255, c)
        for m, s, minor, c in zip(*(k.tolist() for k in keys), sums.tolist(), strict=True)
    ]
    return BinResult(rows, accepted, int(sums.sum()), bins, [], None, lengths)


# --- timing ---------------------------------------------------------------------------------


def timed(fn: Callable[[bytes, int, int, int], BinResult], data: bytes, runs: int = 2):
    """Best CPU seconds of this process over ``runs`` calls, wall seconds of that call, result.

    CPU time, because benchmark machines are shared: under load, wall time measures the
    neighbours. Every contender here runs on one thread (BLAS is pinned to one above).
    """
    best, wall, result = float("inf"), 0.0, None
    for _ in range(runs):
        result = None  # free the previous result outside the timed span
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn(data, LEVEL, TILE_INDEX, HOUR)
        cpu, elapsed = time.process_time() - c0, time.perf_counter() - w0
        if cpu < best:
            best, wall = cpu, elapsed
    assert result is not None
    return best, wall, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to generate")
    args = parser.parse_args()

    impls = binning.implementations()
    if "c" not in impls:
        raise SystemExit("renderer._binning is not built: python setup.py build_ext --inplace")

    t0 = time.perf_counter()
    data = generate(args.rows)
    took = time.perf_counter() - t0
    print(f"generated {args.rows:,} rows, {len(data) / 1e6:,.0f} MB in {took:.1f}s")

    c_time, c_wall, c_result = timed(impls["c"], data)
    assert c_result.rows_accepted == c_result.rows_read == args.rows, c_result[:3]
    print(f"c       {args.rows:>11,} rows {c_time:7.3f}s cpu {c_wall:7.3f}s wall  "
          f"bins={len(c_result.bins):,}")  # fmt: skip

    np_time, np_wall, np_result = timed(numpy_bin, data)
    assert np_result == c_result, "numpy and C disagree"
    print(f"numpy   {args.rows:>11,} rows {np_time:7.3f}s cpu {np_wall:7.3f}s wall  (same as C)")

    py_rows = min(args.rows, PYTHON_ROWS)
    sample = first_rows(data, py_rows)
    py_time, py_wall, py_result = timed(impls["python"], sample, runs=1)
    assert py_result == impls["c"](sample, LEVEL, TILE_INDEX, HOUR), "twin and C disagree"
    print(f"python  {py_rows:>11,} rows {py_time:7.3f}s cpu {py_wall:7.3f}s wall  (same as C)")

    c_rate, py_rate, np_rate = args.rows / c_time, py_rows / py_time, args.rows / np_time
    print(
        f"c={c_rate:.0f}/s python={py_rate:.0f}/s numpy={np_rate:.0f}/s "
        f"c_vs_python={c_rate / py_rate:.1f} c_vs_numpy={c_rate / np_rate:.1f}"
    )


if __name__ == "__main__":
    main()
