"""What a reporter row may hold so that the histogram can store it, and what a binary file is.

Counts, lengths and durations beyond what the histogram stores are rejected row by row, by the
C loop and its twin alike, so that no accepted row can make the emission of its (tile, hour)
fail (which lost the whole tile-hour: the item failed five times and nothing reached
``traffic rejects``). A NUL byte rejects its row only; a file is binary only when it does not
start with the reporter header and its first block holds a NUL, or it starts with the magic
bytes of a compressed, archive or image format.
"""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from renderer import _binning_py, binning
from renderer._binning_py import HEADER
from renderer.binning import BinFile
from tests.test_binning import HOUR, IMPLEMENTATIONS, LEVEL, SEG, SEG2, TILE_INDEX, _get, csv, row
from tests.test_traffic_histogram_binning import _prefix, decode_copy

INT4_MAX = (1 << 31) - 1
INT8_MAX = (1 << 63) - 1
# What the histogram stores (spelled out here, and checked against the module below): a count
# as the histogram file's uint32 (formats/histogram.fbs), which leaves a bigint bin room for
# 2^31 rows at the limit; a length in whole metres in an int4 column.
COUNT_MAX = (1 << 32) - 1
LENGTH_MAX = INT4_MAX
COUNT_TOO_LARGE = "count too large (max 4294967295)"
LENGTH_TOO_LARGE = "length too large (max 2147483647 m)"
NUL_BYTE = "NUL byte"
BINARY = "not a reporter CSV: binary data"
BINARY_SNIFF_BYTES = 8000


@pytest.fixture(params=IMPLEMENTATIONS)
def bin_file(request: pytest.FixtureRequest) -> BinFile:
    return _get(request.param)


def test_the_module_states_the_same_limits() -> None:
    assert (_binning_py.COUNT_MAX, _binning_py.LENGTH_MAX) == (COUNT_MAX, LENGTH_MAX)
    assert (_binning_py.COUNT_TOO_LARGE, _binning_py.LENGTH_TOO_LARGE, _binning_py.NUL_BYTE) == (
        COUNT_TOO_LARGE, LENGTH_TOO_LARGE, NUL_BYTE)
    assert _binning_py.BINARY_SNIFF_BYTES == BINARY_SNIFF_BYTES


# --- item 5: counts and lengths beyond the histogram's types -----------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (row(count=COUNT_MAX + 1), COUNT_TOO_LARGE),
        (row(count=1 << 63), COUNT_TOO_LARGE),
        (row(count=(1 << 64) - 1), COUNT_TOO_LARGE),
        (row(count=1 << 64), "bad count"),  # beyond 64 bits: not a count at all
        (row(length=99_999_999_999), LENGTH_TOO_LARGE),
        (row(length="2147483647.5"), LENGTH_TOO_LARGE),  # rounds to 2^31
        (row(length="1" + "0" * 300), LENGTH_TOO_LARGE),
        (row(length="9" * 300), LENGTH_TOO_LARGE),
        (row(count=1 << 63, length=99_999_999_999), COUNT_TOO_LARGE),
        (row(count=1 << 63, mode="?"), "bad vehicle_type"),  # the grammar first
    ],
)
def test_values_beyond_the_histogram_are_rejected(
    bin_file: BinFile, line: str, reason: str
) -> None:
    result = bin_file(csv(row(), line, row(count=2)), LEVEL, TILE_INDEX, HOUR)
    assert result.file_error is None
    assert result.rejects == [(3, line, reason)]
    assert (result.rows_read, result.rows_accepted, result.observations) == (3, 2, 3)
    assert result.lengths == [(SEG, 100, 3)]


@pytest.mark.parametrize(
    ("line", "count", "length"),
    [
        (row(count=COUNT_MAX), COUNT_MAX, 100),
        (row(length="2147483647.49"), 1, INT4_MAX),
        (row(length=INT4_MAX), 1, INT4_MAX),
        (row(length="0.4"), 1, 0),
        (row(duration="1" + "0" * 300), 1, 100),  # the last duration bucket is open-ended
        (row(duration="9" * 300), 1, 100),
    ],
)
def test_values_at_the_limits_are_accepted(
    bin_file: BinFile, line: str, count: int, length: int
) -> None:
    result = bin_file(csv(line), LEVEL, TILE_INDEX, HOUR)
    assert (result.rows_accepted, result.rejects) == (1, [])
    assert result.lengths == [(SEG, length, count)]


def test_a_huge_length_is_no_longer_capped(bin_file: BinFile) -> None:
    result = bin_file(csv(row(length=99_999_999_999)), LEVEL, TILE_INDEX, HOUR)
    assert result.lengths == []
    assert result.rejects[0][2] == LENGTH_TOO_LARGE


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_a_count_of_2_63_no_longer_fails_the_prefix(name: str) -> None:
    texts = [csv(row(count=5), row(count=1 << 63)), csv(row(count=7))]
    result = _prefix(name)(texts, LEVEL, TILE_INDEX, HOUR)
    assert [f.rows_accepted for f in result.files] == [1, 1]
    assert result.files[0].rejects == [(3, row(count=1 << 63), COUNT_TOO_LARGE)]
    assert decode_copy(result.bins_copy) == [("AUTO", SEG, None, HOUR, 30, 0, 12)]


# Rows valid in every way but their count, length and duration, which range over the extremes.
counts = st.one_of(
    st.integers(1, 5),
    st.sampled_from([COUNT_MAX - 1, COUNT_MAX, COUNT_MAX + 1, INT8_MAX, INT8_MAX + 1,
                     (1 << 64) - 1]),
    st.integers(1, (1 << 64) - 1),
)
lengths = st.one_of(
    st.sampled_from(["0.1", "0.5", "100", "2147483646.5", "2147483647.49", "2147483647.5",
                     "99999999999", "1" + "0" * 300, "4294967296"]),
    st.floats(1e-3, 1e12, allow_nan=False, allow_infinity=False).map(repr)
    .filter(lambda text: "e" not in text),
)
durations = st.one_of(
    st.sampled_from(["0", "63.999", "1141.99", "1142", "99999999999999999999",
                     "9" * 308]),
    st.floats(0, 1e20, allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.3f}"),
)
extreme_rows = st.tuples(st.sampled_from([SEG, SEG2]), durations, counts, lengths,
                         st.sampled_from(["AUTO", "bus"]))


def accepted(count: int, length: str) -> bool:
    """The oracle: the row fits the histogram."""
    return count <= COUNT_MAX and float(length) > 0 and float(length) + 0.5 < INT4_MAX + 1


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(extreme_rows, max_size=12).map(lambda rows: rows + rows[:3]),
                min_size=1, max_size=3))
@example([[(SEG, "30", 1 << 63, "100", "AUTO")]])
@example([[(SEG, "30", COUNT_MAX, "100", "AUTO")] * 4] * 3)
def test_no_accepted_row_can_make_emission_fail(
    files: list[list[tuple[int, str, int, str, str]]],
) -> None:
    texts = [csv(*[row(segment=s, duration=d, count=c, length=ln, mode=m)
                   for s, d, c, ln, m in rows]) for rows in files]
    outcomes = {}
    for name in IMPLEMENTATIONS:
        # must not raise: every row the loop accepts fits the columns it is written to
        outcomes[name] = _prefix(name)(texts, LEVEL, TILE_INDEX, HOUR)
        for text in texts:
            assert _get(name)(text, LEVEL, TILE_INDEX, HOUR) == _binning_py.bin_file(
                text, LEVEL, TILE_INDEX, HOUR), name
    result = outcomes["python"]
    assert all(outcome == result for outcome in outcomes.values())
    expected = [sum(accepted(c, ln) for _, _, c, ln, _ in rows) for rows in files]
    assert [f.rows_accepted for f in result.files] == expected
    assert all(f.rows_read == f.rows_accepted + len(f.rejects) for f in result.files)
    assert {r[2] for f in result.files for r in f.rejects} <= {COUNT_TOO_LARGE, LENGTH_TOO_LARGE}
    bins = decode_copy(result.bins_copy)
    assert all(1 <= count <= INT8_MAX and 0 <= d <= 255 for *_, d, _, count in bins)
    assert all(0 <= length <= INT4_MAX and 1 <= n <= INT8_MAX
               for _, length, n in decode_copy(result.lengths_copy))


# --- item 11: a NUL byte rejects its row, not its file ------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        row(source="rep\0orter"),  # the source field takes any byte: the row would pass
        row(mode="AUTO\0"),
        row(count="1\0"),
        "\0" * 300,  # a zero-filled block, as a crash leaves at the end of a file
        row() + ",\0",  # the NUL outranks the field count
    ],
)
def test_a_nul_byte_rejects_its_row_only(bin_file: BinFile, bad: str) -> None:
    result = bin_file(csv(row(), bad, row(count=2)), LEVEL, TILE_INDEX, HOUR)
    assert result.file_error is None
    # the raw line is kept with the NUL replaced: PostgreSQL text cannot hold one
    assert result.rejects == [(3, bad.replace("\0", "\ufffd"), NUL_BYTE)]
    assert (result.rows_read, result.rows_accepted, result.observations) == (3, 2, 3)


def test_nul_rows_anywhere_and_without_final_newline(bin_file: BinFile) -> None:
    rows = [row(count=n) for n in range(1, 9)]
    rows[0] = "\0" + rows[0]
    rows[4] = rows[4] + "\0"
    data = csv(*rows, end="\r\n") + b"\0\0\0"
    result = bin_file(data, LEVEL, TILE_INDEX, HOUR)
    assert [(line, reason) for line, _, reason in result.rejects] == [
        (2, NUL_BYTE), (6, NUL_BYTE), (10, NUL_BYTE)]
    assert (result.rows_read, result.rows_accepted) == (9, 6)
    assert result.observations == sum(range(1, 9)) - 1 - 5


def _utf16(text: bytes) -> bytes:
    return text.decode().encode("utf-16")


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(64),
        b"PK\x03\x04" + csv(row()),  # a zip archive (no NUL needed to tell)
        gzip.compress(csv(row())),  # a gzip inside the gzip: decompressed once only
        b"BZh91AY&SY" + b"\x10" * 40,
        b"\xfd7zXZ\0\0\x04",
        b"\x28\xb5\x2f\xfd" + zlib.compress(b"x"),
        _utf16(HEADER + b"\n" + csv(row())),  # the header, as UTF-16: NULs in the first line
        b"x" * (BINARY_SNIFF_BYTES - 1) + b"\0" + csv(row()),
    ],
)
def test_binary_files_are_rejected_whole(bin_file: BinFile, data: bytes) -> None:
    assert bin_file(data, LEVEL, TILE_INDEX, HOUR) == binning.BinResult(
        0, 0, 0, [], [], BINARY, [])


def test_a_nul_past_the_first_block_of_a_bad_header_is_not_binary(bin_file: BinFile) -> None:
    data = b"x" * BINARY_SNIFF_BYTES + b"\0\n"
    result = bin_file(data, LEVEL, TILE_INDEX, HOUR)
    assert result.file_error == f"not a reporter CSV: header is {'x' * 200!r}"


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_a_nul_row_in_a_prefix(name: str) -> None:
    texts = [csv(row(count=3), row(source="\0")), csv(row(count=4))]
    result = _prefix(name)(texts, LEVEL, TILE_INDEX, HOUR)
    assert [f.file_error for f in result.files] == [None, None]
    assert result.files[0].rejects == [(3, row(source="\ufffd"), NUL_BYTE)]
    assert decode_copy(result.bins_copy) == [("AUTO", SEG, None, HOUR, 30, 0, 7)]
