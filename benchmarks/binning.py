"""Benchmark of the binning loop: the C function, its pure-Python twin, and NumPy.

Generates one hour of valid reporter rows for one tile in memory (deterministic seed), then
times, in one run:

- ``c``: ``renderer._binning.bin_file`` on all rows;
- ``python``: the pure-Python twin on a slice of at most 1M rows (rates scale linearly);
- ``numpy``: the same work vectorised: separators found with NumPy, every field parsed from the
  bytes column by column, bucketed, and aggregated with ``np.lexsort`` + ``np.add.reduceat``.
  It checks nothing a valid file could fail (field grammar, CRLF, blank lines), so it does
  less than the other two; its bins are checked against the C result on the same rows.

Run: ``python benchmarks/binning.py [--rows N]`` (default 10M rows, ~1 GB of CSV and a few GB
of peak memory). The last line is ``c=<n>/s python=<n>/s numpy=<n>/s c_vs_python=<r>
c_vs_numpy=<r>``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from renderer import binning
from renderer._binning_py import HEADER, BinResult

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
    length = rng.integers(20, 1500, n)
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


def _digits(buf: np.ndarray, start: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """Unsigned integers from the digit runs buf[start:end] (at most ``width`` digits)."""
    value = np.zeros(len(start), np.uint64)
    for j in range(width):
        pos = end - width + j
        inside = pos >= start
        digit = buf[np.where(inside, pos, 0)].astype(np.uint64) - np.uint64(48)
        value = np.where(inside, value * np.uint64(10) + digit, value)
    return value


def _decimals(buf: np.ndarray, start: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """Doubles from ``[0-9]+(\\.[0-9]*)?`` fields: digits without the point, over 10^fraction."""
    value = np.zeros(len(start), np.uint64)
    scale = np.zeros(len(start), np.int64)
    seen_point = np.zeros(len(start), bool)
    for j in range(width):
        pos = end - width + j
        inside = pos >= start
        byte = buf[np.where(inside, pos, 0)]
        point = inside & (byte == 46)
        digit = inside & ~point
        value = np.where(digit, value * np.uint64(10) + (byte.astype(np.uint64) - 48), value)
        scale += digit & seen_point
        seen_point |= point
    return value.astype(np.float64) / 10.0 ** scale.astype(np.float64)


def numpy_bin(data: bytes, level: int, tile_index: int, hour: int) -> BinResult:
    """The binning of a valid, LF-terminated file, vectorised with NumPy."""
    buf = np.frombuffer(data, np.uint8)
    body = data.index(b"\n") + 1
    sep = np.flatnonzero((buf == 44) | (buf == 10))
    sep = sep[np.searchsorted(sep, body) :].reshape(-1, 10)
    rows = len(sep)
    ends = sep
    starts = np.empty_like(sep)
    starts[:, 1:] = sep[:, :9] + 1
    starts[0, 0] = body
    starts[1:, 0] = sep[:-1, 9] + 1

    def field(i: int) -> tuple[np.ndarray, np.ndarray]:
        return starts[:, i], ends[:, i]

    segment = _digits(buf, *field(0), 14)
    s, e = field(1)
    next_raw = _digits(buf, s, e, 14)
    no_next = (e == s) | (next_raw == (1 << 46) - 1) | (next_raw == (1 << 42) - 1)
    next_plus1 = np.where(no_next, np.uint64(0), next_raw + np.uint64(1))
    duration = _decimals(buf, *field(2), 8)
    count = _digits(buf, *field(3), 6)
    length = _decimals(buf, *field(4), 8)
    queue = _decimals(buf, *field(5), 8)
    minimum = _digits(buf, *field(6), 11)
    maximum = _digits(buf, *field(7), 11)
    # the mode: up to 8 bytes of the last field, upper-cased, as one integer key
    s, e = field(9)
    mode_key = np.zeros(rows, np.uint64)
    for j in range(8):
        pos = s + j
        byte = np.where(pos < e, buf[np.minimum(pos, len(buf) - 1)], 0).astype(np.uint64)
        byte -= np.where((byte >= 97) & (byte <= 122), np.uint64(32), np.uint64(0))
        mode_key = mode_key << np.uint64(8) | byte

    first = hour * 3600
    ok = (segment & np.uint64(0x1FFFFFF)) == np.uint64(tile_index << 3 | level)
    ok &= (minimum <= np.uint64(first + 3599)) & (maximum >= np.uint64(first))
    seconds = np.minimum(duration, 1142.0).astype(np.int64)
    klass = np.searchsorted(_DURATION_OFFSETS, seconds, side="right") - 1
    d_code = klass << 6 | (seconds - _DURATION_OFFSETS[klass]) // _DURATION_STEPS[klass]
    v = 255.0 * queue / length + 0.5
    q_code = np.where(v < 255.0, v, 255.0).astype(np.int64)

    segment, next_plus1, mode_key, count = segment[ok], next_plus1[ok], mode_key[ok], count[ok]
    dq = (d_code[ok] << 8 | q_code[ok]).astype(np.uint64)
    order = np.lexsort((dq, next_plus1, segment, mode_key))
    keys = np.stack([mode_key[order], segment[order], next_plus1[order], dq[order]])
    new = np.empty(keys.shape[1], bool)
    new[:1] = True
    new[1:] = (keys[:, 1:] != keys[:, :-1]).any(axis=0)
    heads = np.flatnonzero(new)
    sums = np.add.reduceat(count[order], heads) if len(heads) else count[:0]

    names = {int(k): int(k).to_bytes(8).rstrip(b"\0").decode() for k in np.unique(keys[0])}
    bins = [
        (names[m], s, n - 1 if n else None, dqv >> 8, dqv & 255, c)
        for m, s, n, dqv, c in zip(*keys[:, heads].tolist(), sums.tolist(), strict=True)
    ]
    accepted = int(ok.sum())
    return BinResult(rows, accepted, int(sums.sum()), bins, [], None)


# --- timing ---------------------------------------------------------------------------------


def timed(fn: Callable[[bytes, int, int, int], BinResult], data: bytes) -> tuple[float, BinResult]:
    best, result = float("inf"), None
    for _ in range(2):
        result = None  # free the previous result outside the timed span
        t0 = time.perf_counter()
        result = fn(data, LEVEL, TILE_INDEX, HOUR)
        best = min(best, time.perf_counter() - t0)
    assert result is not None
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to generate")
    args = parser.parse_args()

    impls = binning.implementations()
    if "c" not in impls:
        raise SystemExit("renderer._binning is not built: python setup.py build_ext --inplace")

    t0 = time.perf_counter()
    data = generate(args.rows)
    print(
        f"generated {args.rows:,} rows, {len(data) / 1e6:,.0f} MB in {time.perf_counter() - t0:.1f}s"
    )

    c_time, c_result = timed(impls["c"], data)
    assert c_result.rows_accepted == c_result.rows_read == args.rows, c_result[:3]
    print(f"c       {args.rows:>11,} rows {c_time:7.3f}s  bins={len(c_result.bins):,}")

    np_time, np_result = timed(numpy_bin, data)
    assert np_result.bins == c_result.bins, "numpy and C disagree"
    print(f"numpy   {args.rows:>11,} rows {np_time:7.3f}s  (same bins as C)")

    py_rows = min(args.rows, PYTHON_ROWS)
    sample = first_rows(data, py_rows)
    t0 = time.perf_counter()
    py_result = impls["python"](sample, LEVEL, TILE_INDEX, HOUR)
    py_time = time.perf_counter() - t0
    assert py_result == impls["c"](sample, LEVEL, TILE_INDEX, HOUR), "twin and C disagree"
    print(f"python  {py_rows:>11,} rows {py_time:7.3f}s  (same result as C)")

    c_rate, py_rate, np_rate = args.rows / c_time, py_rows / py_time, args.rows / np_time
    print(
        f"c={c_rate:.0f}/s python={py_rate:.0f}/s numpy={np_rate:.0f}/s "
        f"c_vs_python={c_rate / py_rate:.1f} c_vs_numpy={c_rate / np_rate:.1f}"
    )


if __name__ == "__main__":
    main()
