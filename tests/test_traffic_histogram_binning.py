"""``bin_prefix``: the files of one (tile, hour) binned together into binary COPY payloads.

The C function against its pure-Python twin on the same generated files as the ``bin_file``
tests, both against ``bin_file`` summed by hand, and PostgreSQL reading the payloads back.
"""

from __future__ import annotations

import struct
import sys
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer import _binning_py, binning
from renderer.db import Database
from tests.test_binning import (
    HOUR,
    IMPLEMENTATIONS,
    LEVEL,
    NEXT,
    SEG,
    SEG2,
    TILE_INDEX,
    csv,
    row,
)
from tests.test_binning_twin import files, memory_kept

BinKey = tuple[str, int, int | None, int, int]


def _prefix(name: str) -> binning.BinPrefix:
    found = binning.prefix_implementations()
    if name not in found:
        pytest.fail("the C extension renderer._binning is not built: run "
                    "'python setup.py build_ext --inplace' (or set RENDERER_NO_EXT=1)")
    return found[name]


def decode_copy(data: bytes) -> list[tuple[Any, ...]]:
    """Rows of a binary COPY payload of int2/int4/int8/text fields (told apart by length;
    text only in the first column)."""
    assert data[:11] == b"PGCOPY\n\xff\r\n\0" and data[11:19] == bytes(8)
    rows, p = [], 19
    while True:
        (n,) = struct.unpack_from(">h", data, p)
        p += 2
        if n == -1:
            assert p == len(data)
            return rows
        values: list[Any] = []
        for i in range(n):
            (size,) = struct.unpack_from(">i", data, p)
            p += 4
            if size == -1:
                values.append(None)
                continue
            raw = data[p:p + size]
            p += size
            values.append(raw.decode() if i == 0 and n == 7 else
                          int.from_bytes(raw, "big", signed=True))
        rows.append(tuple(values))


def summed(texts: list[bytes]) -> tuple[Counter[BinKey], Counter[tuple[int, int]]]:
    bins: Counter[BinKey] = Counter()
    lengths: Counter[tuple[int, int]] = Counter()
    for text in texts:
        result = _binning_py.bin_file(text, LEVEL, TILE_INDEX, HOUR)
        for mode, segment, nxt, d, q, count in result.bins:
            bins[mode, segment, nxt, d, q] += count
        for segment, length, count in result.lengths:
            lengths[segment, length] += count
    return bins, lengths


def both(texts: list[bytes]) -> binning.PrefixResult:
    """The result of every implementation, equal, and equal to bin_file summed by hand. None
    raises: the rows whose counts could overflow a bigint sum are rejected."""
    outcomes: dict[str, Any] = {}
    for name in IMPLEMENTATIONS:
        outcomes[name] = _prefix(name)(texts, LEVEL, TILE_INDEX, HOUR)
    expected = outcomes["python"]
    assert all(outcome == expected for outcome in outcomes.values()), outcomes
    bins, lengths = summed(texts)
    assert type(expected) is _binning_py.PrefixResult
    one_by_one = [_binning_py.bin_file(t, LEVEL, TILE_INDEX, HOUR) for t in texts]
    assert expected.files == [r._replace(bins=[], lengths=[]) for r in one_by_one]
    rows = decode_copy(expected.bins_copy)
    assert expected.bins == len(rows) == len(bins)
    assert {(m, s, n, d, q): c for m, s, n, h, d, q, c in rows} == bins
    assert {r[3] for r in rows} <= {HOUR}
    keys = [(m, s, -1 if n is None else n, d, q) for m, s, n, _, d, q, _ in rows]
    assert keys == sorted(keys)
    length_rows = decode_copy(expected.lengths_copy)
    assert expected.lengths == len(length_rows)
    assert {(s, ln): c for s, ln, c in length_rows} == lengths
    assert expected.modes == sorted({k[0] for k in bins})
    return expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(files(), max_size=4))
def test_c_matches_twin_on_generated_prefixes(texts: list[bytes]) -> None:
    both(texts)


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=200), max_size=3))
def test_c_matches_twin_on_random_files(texts: list[bytes]) -> None:
    both(texts)


def test_identical_bins_of_different_files_are_summed() -> None:
    a = csv(row(count=2), row(segment=SEG2, next_segment=NEXT, mode="bus"), "bad line")
    b = csv(row(count=3), row(segment=SEG2, next_segment=(1 << 46) - 1))
    result = both([a, b, b"", b"not,a,header\n"])
    assert [f.file_error for f in result.files] == [None, None, "empty file",
                                                    "not a reporter CSV: header is 'not,a,header'"]
    assert result.files[0].rejects == [(4, "bad line", "expected 10 fields, got 1")]
    rows = decode_copy(result.bins_copy)
    assert rows == [("AUTO", SEG, None, HOUR, 30, 0, 5), ("AUTO", SEG2, None, HOUR, 30, 0, 1),
                    ("BUS", SEG2, NEXT, HOUR, 30, 0, 1)]
    assert result.modes == ["AUTO", "BUS"]
    assert decode_copy(result.lengths_copy) == [(SEG, 100, 5), (SEG2, 100, 2)]


def test_no_files() -> None:
    result = both([])
    assert (result.files, result.bins, result.modes, result.lengths) == ([], 0, [], 0)


def test_counts_that_could_overflow_a_bigint_sum_are_rejected() -> None:
    result = both([csv(row(count=1 << 62)), csv(row(count=1 << 62), row(count=(1 << 32) - 1))])
    assert [len(f.rejects) for f in result.files] == [1, 1]
    assert decode_copy(result.bins_copy) == [("AUTO", SEG, None, HOUR, 30, 0, (1 << 32) - 1)]


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_hour_must_fit_the_integer_column(name: str) -> None:
    with pytest.raises(ValueError, match=r"hour must be in 0\.\.2147483647"):
        _prefix(name)([], LEVEL, TILE_INDEX, 1 << 31)
    with pytest.raises(ValueError, match=r"level must be in 0\.\.7"):
        _prefix(name)([], 8, TILE_INDEX, HOUR)


def test_postgresql_reads_the_payloads(db: Database) -> None:
    texts = [csv(row(count=2), row(segment=SEG2, next_segment=NEXT, duration=700, queue=40,
                                   mode="Taxi")), csv(row(count=3, length=99.6))]
    result = both(texts)
    with db.connect() as conn:
        conn.execute("CREATE TEMPORARY TABLE b (mode text, segment_id bigint, next_segment_id"
                     " bigint, hour integer, duration_code smallint, queue_code smallint,"
                     " count bigint)")
        conn.execute("CREATE TEMPORARY TABLE l (segment_id bigint, length integer,"
                     " observations bigint)")
        with conn.cursor() as cur:
            with cur.copy("COPY b FROM STDIN (FORMAT binary)") as copy:
                copy.write(result.bins_copy)
            with cur.copy("COPY l FROM STDIN (FORMAT binary)") as copy:
                copy.write(result.lengths_copy)
        stored = [tuple(r.values()) for r in conn.execute("SELECT * FROM b ORDER BY 1, 2")]
        lengths = [tuple(r.values()) for r in conn.execute("SELECT * FROM l ORDER BY 1, 2")]
    assert stored == decode_copy(result.bins_copy)
    assert stored[1] == ("TAXI", SEG2, NEXT, HOUR, binning.duration_code(700), 102, 1)
    assert lengths == [(SEG, 100, 5), (SEG2, 100, 1)]


def test_c_does_not_leak() -> None:
    if "c" not in IMPLEMENTATIONS:
        return
    c = _prefix("c")
    data = csv(*[row(count=i, duration=i % 900, mode=f"M{i % 3}") for i in range(1, 3000)],
               "bad", row(mode=""))  # fmt: skip
    texts = [data, data, b"", b"a,b\n"]
    refs = sys.getrefcount(data)

    def calls() -> None:
        result = c(texts, LEVEL, TILE_INDEX, HOUR)
        c([csv(row(count=1 << 63), row(source="\0"))], LEVEL, TILE_INDEX, HOUR)
        with pytest.raises(TypeError):
            c([data, 42], LEVEL, TILE_INDEX, HOUR)
        del result

    grown = memory_kept(calls)
    assert grown < 50_000, f"{grown} bytes kept after 50 calls"
    assert sys.getrefcount(data) == refs  # b"" is shared: its count moves with others'
