"""The C binning loop against its pure-Python twin (hypothesis: generated files, random bytes,
edge tokens, prefix limits), and the C loop's resource hygiene (no leaks, exact refcounts).

The rules themselves, on both implementations, are in ``tests/test_binning.py``.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from renderer._binning_py import HEADER, BinResult
from tests.test_binning import (
    HOUR,
    IMPLEMENTATIONS,
    LEVEL,
    NEXT,
    NO_EXT,
    SEG,
    SEG2,
    T0,
    TILE_ID,
    TILE_INDEX,
    _get,
    csv,
    row,
)

# --- C against the twin ------------------------------------------------------------------------

# Tokens that probe the number grammar and the id/time ranges.
EDGE_TOKENS = [
    "", "0", "1", "00", "-1", "+1", " 1", "1 ", "1_0", "0x1f", "1e3", "1E3", "inf", "nan",
    "Infinity", ".5", "5.", "5.5", "0.0", "1.2.3", "\u0661", "\u00b2", "\t", "9" * 19, "9" * 20,
    "9" * 21, str((1 << 64) - 1), str(1 << 64), str((1 << 46) - 1), str(1 << 46),
    str((1 << 42) - 1), str(SEG), str(NEXT), str(T0), str(T0 + 3599), str(T0 + 3600),
    str(T0 - 1), "0.1", "0.30000000000000004", "1" + "0" * 30 + ".5",
    "0." + "0" * 30 + "1", "12345678901234567890.123", "9007199254740993",
    "9007199254740993.0", "1." + "0" * 25, "AUTO", "auto", "bUs", "a" * 32, "a" * 33,
    "ÄUTO", "\r", '"1"', "a,b",
]  # fmt: skip

number = st.one_of(
    st.integers(0, 2000).map(str),
    st.floats(0, 1e6, allow_nan=False).map(lambda x: f"{x:.{len(str(x)) % 7}f}"),
    st.integers(0, 25)
    .flatmap(
        lambda places: st.decimals(0, 10**8, places=places, allow_nan=False, allow_infinity=False)
    )
    .map(lambda d: format(d, "f")),
)
segments = st.one_of(
    st.sampled_from([SEG, SEG2, TILE_ID]),
    st.sampled_from([SEG, SEG2]),
    st.integers(0, (1 << 21) - 1).map(lambda i: TILE_ID | i << 25),
    st.integers(0, (1 << 46) + 10),
)
nexts = st.one_of(st.just(""), st.sampled_from([(1 << 46) - 1, (1 << 42) - 1, NEXT]), segments)
times = st.one_of(st.integers(T0, T0 + 3599), st.integers(T0 - 4000, T0 + 8000))
positive = number.filter(lambda text: float(text) > 0)


@st.composite
def valid_rows(draw: st.DrawFn) -> list[str]:
    first = draw(times)
    return [
        str(draw(segments)),
        str(draw(nexts)),
        draw(number),
        str(draw(st.one_of(st.integers(1, 5), st.integers(1, (1 << 64) - 1)))),
        draw(positive),
        draw(number),
        str(first),
        str(first + draw(st.one_of(st.integers(0, 120), st.integers(-5, 4000)))),
        draw(st.sampled_from(["", "reporter", "x y"])),
        draw(st.sampled_from(["AUTO", "auto", "BUS", "Taxi", "bike_1", "A" * 32])),
    ]


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["valid"] * 4 + ["mutated"] * 2 + ["fields", "random", "blank"]))
    if kind == "random":
        return draw(st.binary(max_size=40)).replace(b"\n", b"")
    if kind == "blank":
        return b""
    fields = draw(valid_rows())
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, 9))
            fields[i] = draw(st.one_of(st.sampled_from(EDGE_TOKENS), st.text(max_size=6)))
    elif kind == "fields":
        n = draw(st.integers(0, 12))
        fields = (fields * 2)[:n]
    return ",".join(fields).encode("utf-8", "surrogatepass").replace(b"\n", b"")


@st.composite
def files(draw: st.DrawFn) -> bytes:
    body = draw(st.lists(lines(), max_size=30))
    if body:  # repeated rows, so that bins get summed
        body += draw(st.lists(st.sampled_from(body), max_size=10))
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    mixed = draw(st.booleans())
    parts = [draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + HEADER]
    for line in body:
        parts.append(line)
    text = b""
    for i, part in enumerate(parts):
        text += part
        if i < len(parts) - 1 or draw(st.booleans()):
            text += draw(st.sampled_from([b"\n", b"\r\n"])) if mixed else end
    if draw(st.integers(0, 20)) == 0:
        text = text.replace(b"source", b"sauce")
    return text


def both(data: bytes, level: int = LEVEL, tile_index: int = TILE_INDEX, hour: int = HOUR) -> None:
    results = {name: _get(name)(data, level, tile_index, hour) for name in IMPLEMENTATIONS}
    expected = results["python"]
    for name, result in results.items():
        assert result == expected, name
        assert type(result) is BinResult
        assert all(type(x) is int for x in result[:3])
    assert expected.rows_read == expected.rows_accepted + len(expected.rejects)
    assert expected.observations == sum(b[5] for b in expected.bins)
    assert expected.observations == sum(n for _, _, n in expected.lengths)
    keys = [(b[0], b[1], -1 if b[2] is None else b[2], b[3], b[4]) for b in expected.bins]
    assert keys == sorted(set(keys))
    assert all(0 <= b[3] <= 255 and 0 <= b[4] <= 255 and b[5] >= 1 for b in expected.bins)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(files())
@example(HEADER + b"\n" + row(duration="63.99999999999999999").encode())
@example(HEADER + b"\n" + row(length="0.1", queue="0.30000000000000004").encode())
@example(b"\xef\xbb\xbf" + HEADER + b"\r")
@example(b"\xef\xbb\xbf\r\n" + HEADER)
@example(HEADER + b"\n\r\n\r\r\n")
def test_c_matches_twin_on_generated_files(data: bytes) -> None:
    both(data)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_c_matches_twin_on_random_bytes(data: bytes) -> None:
    both(data)
    both(HEADER + b"\n" + data)


@settings(max_examples=300)
@given(st.lists(st.sampled_from([*EDGE_TOKENS, str(SEG), "1", "1", ""]), min_size=10, max_size=10))
def test_c_matches_twin_on_edge_tokens(fields: list[str]) -> None:
    both(csv(",".join(fields)))


@settings(max_examples=200)
@given(
    st.floats(0, 1e12, allow_nan=False, allow_infinity=False),
    st.floats(1e-9, 1e12, allow_nan=False, allow_infinity=False),
)
def test_c_matches_twin_on_queue_rounding(queue: float, length: float) -> None:
    # repr() round-trips, so these are exactly the doubles the parsers read back.
    both(csv(row(queue=_plain(queue), length=_plain(length))))


def _plain(x: float) -> str:
    """A float as digits with an optional fraction (the grammar has no exponent)."""
    text = f"{x:.40f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


@pytest.mark.parametrize(
    ("level", "tile_index", "hour"),
    [(0, 0, 0), (7, (1 << 22) - 1, ((1 << 64) - 1 - 3599) // 3600), (2, 12345, 1)],
)
def test_c_matches_twin_at_prefix_limits(level: int, tile_index: int, hour: int) -> None:
    tile_id = tile_index << 3 | level
    last = hour * 3600 + 3599
    rows = [
        row(segment=tile_id, minimum=last, maximum=last),
        row(segment=tile_id, minimum=(1 << 64) - 1, maximum=(1 << 64) - 1),
        row(segment=tile_id | 5 << 25, minimum=0, maximum=(1 << 64) - 1),
    ]
    both(csv(*rows), level, tile_index, hour)


@pytest.mark.slow
def test_c_matches_twin_on_many_modes_and_bins() -> None:
    # More than 2^18 distinct modes takes the C loop's other sorting path.
    rows = [
        row(segment=TILE_ID | (i % 5000) << 25, mode=f"M{(i * 7919) % 270_000:x}", count=i + 1)
        for i in range(280_000)
    ]
    both(csv(*rows))


# --- the C loop's resource hygiene ---------------------------------------------------------------


def memory_kept(calls: Callable[[], None], rounds: int = 50) -> int:
    """Bytes of Python-allocated memory still held after ``rounds`` more runs of ``calls``
    than after a warm-up (a leak per call shows as growth; caches fill in the warm-up)."""
    calls()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(3):
            calls()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            calls()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_c_does_not_leak() -> None:
    if NO_EXT:
        return
    c = _get("c")
    data = csv(*[row(count=i, duration=i % 900, mode=f"M{i % 3}") for i in range(1, 3000)],
               "bad", row(mode=""), row(queue="1" + "0" * 40 + ".5"), row(source="\0"),
               row(count=1 << 63), row(length=1e12))  # fmt: skip
    data_refs = sys.getrefcount(data)

    def calls() -> None:
        result = c(data, LEVEL, TILE_INDEX, HOUR)
        c(b"", LEVEL, TILE_INDEX, HOUR)
        c(b"a,b\n", LEVEL, TILE_INDEX, HOUR)
        with pytest.raises(ValueError):
            c(data, 9, TILE_INDEX, HOUR)
        del result

    grown = memory_kept(calls)
    assert grown < 50_000, f"{grown} bytes kept after 50 calls"
    assert sys.getrefcount(data) == data_refs
    # Every bin here has next_segment None: a lost or extra reference per bin would show.
    nones = sys.getrefcount(None)
    for _ in range(100):
        c(data, LEVEL, TILE_INDEX, HOUR)
    assert abs(sys.getrefcount(None) - nones) < 100
    # The objects handed out are owned by the result alone, exactly as the twin's are.
    assert _refcounts(c(data, LEVEL, TILE_INDEX, HOUR)) == _refcounts(
        _get("python")(data, LEVEL, TILE_INDEX, HOUR)
    )


def _refcounts(result: BinResult) -> list[int]:
    bins, rejects = result.bins, result.rejects
    return [
        sys.getrefcount(result) - 1,
        sys.getrefcount(bins) - 1,
        sys.getrefcount(rejects) - 1,
        *(sys.getrefcount(b) - 1 for b in bins[:3]),
        *(sys.getrefcount(b[1]) - 1 for b in bins[:3]),
        *(sys.getrefcount(b[5]) - 1 for b in bins[:3] if b[5] > 256),
        *(sys.getrefcount(r) - 1 for r in rejects),
        *(sys.getrefcount(r[1]) - 1 for r in rejects),
    ]
