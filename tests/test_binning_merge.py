"""``merge_lengths``: the segment-length COPY payloads of a batch's prefixes as one, equal
(segment, length) rows summed; the C function and its Python twin agree on every input."""

from __future__ import annotations

import struct
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer import binning
from renderer._binning_py import COPY_HEADER, COPY_TRAILER, HEADER, INT64_MAX
from tests.test_binning import HOUR, LEVEL, SEG, TILE_INDEX, row

IMPLEMENTATIONS = binning.merge_lengths_implementations()
ROW = struct.Struct(">hiqiiiq")


def payload(rows: list[tuple[int, int, int]]) -> bytes:
    """A lengths payload as bin_prefix writes it: rows sorted by (segment, length)."""
    return COPY_HEADER + b"".join(ROW.pack(3, 8, s, 4, n, 8, c) for s, n, c in sorted(rows)
                                  ) + COPY_TRAILER


def rows_of(data: bytes) -> list[tuple[int, int, int]]:
    body = data[len(COPY_HEADER):len(data) - len(COPY_TRAILER)]
    return [(s, n, c) for _, _, s, _, n, _, c in ROW.iter_unpack(body)]


def test_c_is_built() -> None:
    assert set(IMPLEMENTATIONS) == {"python", "c"}


segment = st.one_of(st.integers(-(1 << 63), (1 << 63) - 1), st.integers(0, 4))
length = st.one_of(st.integers(-(1 << 31), (1 << 31) - 1), st.integers(0, 3))
rows = st.lists(st.tuples(segment, length, st.integers(1, 1 << 40)), max_size=12,
                unique_by=lambda r: (r[0], r[1]))


@settings(max_examples=300)
@given(st.lists(rows, max_size=6))
def test_merged_rows_are_the_sums_sorted(payloads: list[list[tuple[int, int, int]]]) -> None:
    expected: Counter[tuple[int, int]] = Counter()
    for one in payloads:
        for s, n, c in one:
            expected[s, n] += c
    want = [(s, n, c) for (s, n), c in sorted(expected.items())]
    for name, merge in IMPLEMENTATIONS.items():
        count, data = merge([payload(p) for p in payloads])
        assert (count, rows_of(data)) == (len(want), want), name
        assert data.startswith(COPY_HEADER) and data.endswith(COPY_TRAILER)


def test_merges_what_bin_prefix_writes() -> None:
    files = [HEADER + b"\n" + row(count=k).encode() for k in (1, 2)]
    parts = [binning.bin_prefix([f], LEVEL, TILE_INDEX, HOUR).lengths_copy for f in files]
    for name, merge in IMPLEMENTATIONS.items():
        assert merge(parts) == (1, payload([(SEG, 100, 3)])), name


def test_a_sum_past_bigint_is_refused() -> None:
    parts = [payload([(1, 1, INT64_MAX)]), payload([(1, 1, 1)])]
    for name, merge in IMPLEMENTATIONS.items():
        with pytest.raises(OverflowError):
            merge(parts)
        assert merge([parts[0], payload([(1, 2, 1)])])[0] == 2, name


@pytest.mark.parametrize("bad", [
    b"", b"PGCOPY", COPY_HEADER + b"\0" + COPY_TRAILER,
    COPY_HEADER + struct.pack(">hiqiiiq", 3, 8, 1, 4, 1, 4, 1) + COPY_TRAILER,
    b"x" * 19 + COPY_TRAILER,
])
def test_a_payload_of_another_shape_is_refused(bad: bytes) -> None:
    for merge in IMPLEMENTATIONS.values():
        with pytest.raises(ValueError):
            merge([payload([(1, 1, 1)]), bad])
