"""The binning loop's rules and codes, each test on both implementations (C and its twin).

The C loop against the twin on generated input, and its resource hygiene, are in
``tests/test_binning_twin.py``.

Every rule test runs on both implementations. The C one must be built (``make test`` does it,
or ``python setup.py build_ext --inplace``): a missing extension fails these tests rather than
skipping them, unless ``RENDERER_NO_EXT=1`` says to test the twin alone.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderer import binning
from renderer._binning_py import HEADER, BinResult
from renderer.binning import BinFile, duration_code, duration_seconds, duration_step

NO_EXT = os.environ.get("RENDERER_NO_EXT") == "1"
IMPLEMENTATIONS = ["python"] if NO_EXT else ["python", "c"]

LEVEL, TILE_INDEX, HOUR = 0, 2140, 493_000  # an hour in 2026
TILE_ID = TILE_INDEX << 3 | LEVEL
T0 = HOUR * 3600  # first second of the hour
SEG = TILE_ID | 7 << 25  # segment 7 of the tile
SEG2 = TILE_ID | 9 << 25
NEXT = (2139 << 3) | 3 << 25  # a next segment in a neighbouring tile: allowed
HEAD = HEADER.decode()


def _get(name: str) -> BinFile:
    found = binning.implementations()
    if name not in found:
        pytest.fail(
            "the C extension renderer._binning is not built: run "
            "'python setup.py build_ext --inplace' (or set RENDERER_NO_EXT=1 to test the "
            "pure-Python twin alone)"
        )
    return found[name]


@pytest.fixture(params=IMPLEMENTATIONS)
def bin_file(request: pytest.FixtureRequest) -> BinFile:
    return _get(request.param)


def row(
    segment: int | str = SEG,
    next_segment: int | str = "",
    duration: float | str = 30,
    count: int | str = 1,
    length: float | str = 100,
    queue: float | str = 0,
    minimum: int | str = T0 + 10,
    maximum: int | str = T0 + 40,
    source: str = "reporter",
    mode: str = "AUTO",
) -> str:
    fields = (segment, next_segment, duration, count, length, queue, minimum, maximum)
    return ",".join([*map(str, fields), source, mode])


def csv(*rows: str, end: str = "\n") -> bytes:
    return (end.join([HEAD, *rows]) + end).encode()


def only_reject(result: BinResult) -> str:
    assert result.file_error is None
    assert result.rows_accepted == 0 and result.bins == []
    assert result.rows_read == len(result.rejects) == 1
    return result.rejects[0][2]


# --- the switch --------------------------------------------------------------------------


def test_default_implementation_is_c_unless_switched_off() -> None:
    if NO_EXT:
        assert binning.IMPLEMENTATION == "python"
        assert binning.bin_file is binning.implementations()["python"]
    else:
        _get("c")
        assert binning.IMPLEMENTATION == "c"
        assert binning.bin_file is binning.implementations()["c"]


def test_c_module_returns_the_twin_result_type() -> None:
    if NO_EXT:
        pytest.skip("RENDERER_NO_EXT=1: the C module is not under test")
    result = _get("c")(csv(row()), LEVEL, TILE_INDEX, HOUR)
    assert type(result) is BinResult


# --- file-level errors ---------------------------------------------------------------------


def test_empty_file(bin_file: BinFile) -> None:
    assert bin_file(b"", LEVEL, TILE_INDEX, HOUR) == BinResult(0, 0, 0, [], [], "empty file", [])


def test_binary_data(bin_file: BinFile) -> None:
    result = bin_file(b"\x00\x01" + csv(row()), LEVEL, TILE_INDEX, HOUR)
    assert result == BinResult(0, 0, 0, [], [], "not a reporter CSV: binary data", [])


def test_a_nul_after_the_header_rejects_its_row_only(bin_file: BinFile) -> None:
    # more cases, and what a binary file is, in tests/test_binning_limits.py
    result = bin_file(csv(row()) + b"\x00\x01", LEVEL, TILE_INDEX, HOUR)
    assert (result.file_error, result.rows_read, result.rows_accepted) == (None, 2, 1)
    assert result.rejects == [(3, "\ufffd\x01", "NUL byte")]


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"a,b,c\n1,2,3\n", "'a,b,c'"),
        (b"\n" + csv(row()), "''"),
        (HEADER + b",extra\n", repr(HEAD + ",extra")),
        (HEADER.upper() + b"\n", repr(HEAD.upper())),
        (b" " + HEADER + b"\n", repr(" " + HEAD)),
        (b"a;b\tc d.e-f_g", repr("a;b\tc d.e-f_g")),
    ],
)
def test_wrong_header(bin_file: BinFile, data: bytes, shown: str) -> None:
    result = bin_file(data, LEVEL, TILE_INDEX, HOUR)
    assert result == BinResult(0, 0, 0, [], [], f"not a reporter CSV: header is {shown}", [])


@pytest.mark.parametrize("data", [
    b"root:$6$secrethash:19000:0:99999:7:::\n",
    b"password=hunter2\n",
    b"\xff\xfeab" + b"x" * 500,
])
def test_a_first_line_that_is_not_a_header_is_not_quoted(bin_file: BinFile, data: bytes) -> None:
    result = bin_file(data, LEVEL, TILE_INDEX, HOUR)
    assert result.file_error == "not a reporter CSV: its first line is not a CSV header (not shown)"


def test_header_only(bin_file: BinFile) -> None:
    assert bin_file(HEADER, LEVEL, TILE_INDEX, HOUR) == BinResult(0, 0, 0, [], [], None, [])
    empty = BinResult(0, 0, 0, [], [], None, [])
    assert bin_file(HEADER + b"\r\n", LEVEL, TILE_INDEX, HOUR) == empty


@pytest.mark.parametrize(
    ("level", "tile_index", "hour", "message"),
    [
        (8, 0, 0, "level must be in 0..7, got 8"),
        (-1, 0, 0, "level must be in 0..7, got -1"),
        (0, 1 << 22, 0, "tile_index must be in 0..4194303, got 4194304"),
        (0, 0, -1, "hour must be in 0..5124095576030430, got -1"),
        (0, 0, 1 << 70, f"hour must be in 0..5124095576030430, got {1 << 70}"),
        (0.0, 0, 0, None),
        (0, "1", 0, None),
    ],
)
def test_bad_prefix_arguments(
    bin_file: BinFile, level: object, tile_index: object, hour: object, message: str | None
) -> None:
    with pytest.raises(TypeError if message is None else ValueError) as raised:
        bin_file(csv(row()), level, tile_index, hour)  # type: ignore[arg-type]
    if message is not None:
        assert str(raised.value) == message


# --- line handling -------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("end", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_bom_crlf_and_missing_final_newline(
    bin_file: BinFile, prefix: bytes, end: str, final_newline: bool
) -> None:
    data = prefix + csv(row(count=2), row(count=3, mode="bus"), end=end)
    if not final_newline:
        data = data.removesuffix(end.encode())
    result = bin_file(data, LEVEL, TILE_INDEX, HOUR)
    assert result == BinResult(
        2,
        2,
        5,
        [("AUTO", SEG, None, 30, 0, 2), ("BUS", SEG, None, 30, 0, 3)],
        [],
        None,
        [(SEG, 100, 5)],
    )


def test_lengths_are_whole_metres_weighted_by_count(bin_file: BinFile) -> None:
    other = SEG + (1 << 25)  # the next segment index in the same tile
    data = csv(
        row(length=99.5, count=2),
        row(length="100.49", count=3, mode="bus"),
        row(length="100.5"),
        row(segment=other, length=7, count=4),
        row(length=-1),
        row(length=1e12),
        row(length=2_147_483_647),
    )
    result = bin_file(data, LEVEL, TILE_INDEX, HOUR)
    # 99.5 and 100.49 both round to 100; the rejects (length -1, and 1e12, which the int4
    # column cannot hold) add nothing.
    assert result.lengths == [(SEG, 100, 5), (SEG, 101, 1), (SEG, 2_147_483_647, 1), (other, 7, 4)]
    assert [reason for _, _, reason in result.rejects] == [
        "bad length", "length too large (max 2147483647 m)"]
    assert sum(n for _, _, n in result.lengths) == result.observations


def test_blank_lines_skipped_but_numbered(bin_file: BinFile) -> None:
    data = csv("", row(), "", "", "bad", "", end="\r\n")
    result = bin_file(data, LEVEL, TILE_INDEX, HOUR)
    assert result.rows_read == 2
    assert result.rows_accepted == 1
    assert result.rejects == [(6, "bad", "expected 10 fields, got 1")]


def test_reject_keeps_raw_line_without_terminator(bin_file: BinFile) -> None:
    raw = row(mode="caf\xe9").encode("latin-1")  # not UTF-8
    result = bin_file(HEADER + b"\r\n" + raw + b"\r\n", LEVEL, TILE_INDEX, HOUR)
    assert result.rejects == [(2, row(mode="caf\ufffd"), "bad vehicle_type")]


def test_only_one_trailing_carriage_return_is_a_terminator(bin_file: BinFile) -> None:
    result = bin_file(csv(row() + "\r", end="\r\n"), LEVEL, TILE_INDEX, HOUR)
    assert result.rejects == [(2, row() + "\r", "bad vehicle_type")]


# --- reject reasons --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", None),  # blank: skipped, no reject
        ("x", "expected 10 fields, got 1"),
        (row() + ",", "expected 10 fields, got 11"),
        (row(source="a,b"), "expected 10 fields, got 11"),
        (row(segment="x", source="a,b"), "expected 10 fields, got 11"),  # count first
        (",".join(["1"] * 9), "expected 10 fields, got 9"),
        (row(segment=""), "bad segment_id"),
        (row(segment="-1"), "bad segment_id"),
        (row(segment=" 1"), "bad segment_id"),
        (row(segment="1_0"), "bad segment_id"),
        (row(segment="0x10"), "bad segment_id"),
        (row(segment=1 << 46), "bad segment_id"),
        (row(segment=str(SEG) + ".0"), "bad segment_id"),
        (row(next_segment="abc"), "bad next_segment_id"),
        (row(next_segment=1 << 46), "bad next_segment_id"),
        (row(next_segment=" "), "bad next_segment_id"),
        (row(next_segment="-5"), "bad next_segment_id"),
        (row(duration=""), "bad duration"),
        (row(duration="-1"), "bad duration"),
        (row(duration=".5"), "bad duration"),
        (row(duration="1e3"), "bad duration"),
        (row(duration="inf"), "bad duration"),
        (row(duration="nan"), "bad duration"),
        (row(duration="1 "), "bad duration"),
        (row(duration="1.2.3"), "bad duration"),
        (row(duration="9" * 400), "bad duration"),  # overflows double
        (row(count=0), "bad count"),
        (row(count="1.0"), "bad count"),
        (row(count=""), "bad count"),
        (row(count=1 << 64), "bad count"),
        (row(count="0" * 21 + "1"), "bad count"),  # more than 20 digits
        (row(length=0), "bad length"),
        (row(length="0.0"), "bad length"),
        (row(length="0." + "0" * 400 + "1"), "bad length"),  # underflows to 0.0
        (row(length="-3"), "bad length"),
        (row(queue=""), "bad queue_length"),
        (row(queue="-0"), "bad queue_length"),
        (row(minimum=""), "bad minimum_timestamp"),
        (row(minimum="1.5"), "bad minimum_timestamp"),
        (row(maximum="x"), "bad maximum_timestamp"),
        (row(maximum=1 << 64), "bad maximum_timestamp"),
        (row(minimum=T0 + 50, maximum=T0 + 40), "maximum_timestamp before minimum_timestamp"),
        (
            row(minimum=T0 + 9, maximum=T0 + 8, mode="?"),
            "maximum_timestamp before minimum_timestamp",
        ),
        (row(mode=""), "bad vehicle_type"),
        (row(mode=" AUTO"), "bad vehicle_type"),
        (row(mode="AUTO "), "bad vehicle_type"),
        (row(mode="A" * 33), "bad vehicle_type"),
        (row(mode="AUTO-1"), "bad vehicle_type"),
        (row(mode="\xe9"), "bad vehicle_type"),
        (row(segment=TILE_ID + 1), "segment outside tile"),
        (row(segment=(TILE_ID + 8) | 7 << 25), "segment outside tile"),
        (row(segment=0), "segment outside tile"),
        (row(minimum=T0 - 100, maximum=T0 - 1), "time outside hour"),
        (row(minimum=T0 + 3600, maximum=T0 + 3700), "time outside hour"),
        (row(segment=TILE_ID + 1, minimum=0, maximum=0), "segment outside tile"),
    ],
)
def test_reject_reasons(bin_file: BinFile, line: str, reason: str | None) -> None:
    result = bin_file(csv(line), LEVEL, TILE_INDEX, HOUR)
    if reason is None:
        assert result == BinResult(0, 0, 0, [], [], None, [])
    else:
        assert only_reject(result) == reason
        assert result.rejects[0][:2] == (2, line)


@pytest.mark.parametrize(
    "line",
    [
        row(minimum=T0 - 30, maximum=T0),  # ends at the first second of the hour
        row(minimum=T0 + 3599, maximum=T0 + 4000),  # starts at its last second
        row(minimum=T0 - 10, maximum=T0 + 7200),  # spans it
        row(minimum=T0 + 5, maximum=T0 + 5),
        row(duration="5.", length="1.", queue="0."),
        row(duration="007", count="0001", length="000.5"),
        row(mode="a_1_z" + "x" * 27),
        row(segment=TILE_ID),  # segment index 0
        row(segment=TILE_ID | ((1 << 21) - 1) << 25),  # the largest segment index
        row(source=""),
        row(source=' weird "source" ;\t'),
        row(count=(1 << 32) - 1),
    ],
)
def test_accepted_edge_cases(bin_file: BinFile, line: str) -> None:
    result = bin_file(csv(line), LEVEL, TILE_INDEX, HOUR)
    assert (result.rows_read, result.rows_accepted, result.rejects) == (1, 1, [])


@pytest.mark.parametrize("spelling", ["", str((1 << 46) - 1), str((1 << 42) - 1)])
def test_no_next_segment_spellings(bin_file: BinFile, spelling: str) -> None:
    result = bin_file(csv(row(next_segment=spelling, count=4)), LEVEL, TILE_INDEX, HOUR)
    assert result.bins == [("AUTO", SEG, None, 30, 0, 4)]


def test_no_next_spellings_share_a_bin_and_sort_before_next_segments(bin_file: BinFile) -> None:
    rows = [
        row(next_segment=NEXT, count=1),
        row(next_segment=0, count=2),
        row(next_segment="", count=3),
        row(next_segment=(1 << 46) - 1, count=4),
        row(next_segment=(1 << 42) - 1, count=5),
        row(next_segment=(1 << 42) - 2, count=6),  # an ordinary id
    ]
    result = bin_file(csv(*rows), LEVEL, TILE_INDEX, HOUR)
    assert result.bins == [
        ("AUTO", SEG, None, 30, 0, 12),
        ("AUTO", SEG, 0, 30, 0, 2),
        ("AUTO", SEG, NEXT, 30, 0, 1),
        ("AUTO", SEG, (1 << 42) - 2, 30, 0, 6),
    ]


# --- buckets and aggregation -----------------------------------------------------------------


def test_duration_600_seconds() -> None:
    # OpenTraffic's Java stored code 200 in a signed byte and read back 56 s; we keep 0..255.
    assert duration_code(600) == 200
    assert duration_seconds(200) == 592  # the lower bound of the bucket [592, 602) holding 600
    assert duration_seconds(200) <= 600 < duration_seconds(200) + duration_step(200)
    assert duration_code(duration_seconds(200)) == 200


@pytest.mark.parametrize(
    ("seconds", "code"),
    [
        (0, 0),
        (0.99, 0),
        (63, 63),
        (63.999, 63),
        (64, 64),
        (65, 64),
        (66, 65),
        (191, 127),
        (192, 128),
        (511, 191),
        (512, 192),
        (600, 200),
        (1141, 254),
        (1142, 255),
        (1151, 255),
        (10**9, 255),
        (float("inf"), 255),
    ],
)
def test_duration_codes(seconds: float, code: int) -> None:
    assert duration_code(seconds) == code


@pytest.mark.parametrize("seconds", [-1, -0.5, float("nan")])
def test_duration_code_rejects_bad_input(seconds: float) -> None:
    with pytest.raises(ValueError):
        duration_code(seconds)


@pytest.mark.parametrize("code", [-1, 256])
def test_duration_seconds_rejects_bad_codes(code: int) -> None:
    with pytest.raises(ValueError):
        duration_seconds(code)


@given(st.integers(0, 255))
def test_duration_code_round_trip(code: int) -> None:
    assert duration_code(duration_seconds(code)) == code


@given(st.floats(min_value=0, max_value=5000, allow_nan=False))
def test_duration_seconds_is_the_bucket_lower_bound(seconds: float) -> None:
    code = duration_code(seconds)
    assert 0 <= code <= 255
    low = duration_seconds(code)
    if seconds >= 1142:
        assert code == 255
    else:
        assert low <= seconds < low + duration_step(code)
        assert code == 0 or duration_seconds(code - 1) < low


@given(st.floats(min_value=0, max_value=5000, allow_nan=False))
def test_bin_file_duration_code_matches_duration_code(seconds: float) -> None:
    text = f"{seconds:.6f}"
    for name in IMPLEMENTATIONS:
        result = _get(name)(csv(row(duration=text)), LEVEL, TILE_INDEX, HOUR)
        assert result.bins[0][3] == duration_code(float(text))


@pytest.mark.parametrize(
    ("queue", "length", "code"),
    [
        (0, 100, 0),
        (50, 100, 128),  # 127.5 + 0.5 rounds up
        (1, 255, 1),
        (0.5, 255, 1),  # exactly x.5 after scaling: rounds half up
        ("0.49", 255, 0),
        (100, 100, 255),
        (1000, 1, 255),
        ("1" + "0" * 300, "0." + "0" * 300 + "1", 255),  # the quotient overflows to inf
    ],
)
def test_queue_codes(bin_file: BinFile, queue: object, length: object, code: int) -> None:
    result = bin_file(csv(row(queue=queue, length=length)), LEVEL, TILE_INDEX, HOUR)
    assert result.bins[0][4] == code


def test_identical_bins_are_summed(bin_file: BinFile) -> None:
    rows = [
        row(count=2),
        row(count=3, duration="30.9", mode="auto"),  # same duration bucket, same mode
        row(count=5, queue=1),  # other queue code
        row(count=7, segment=SEG2),
        row(count=11, duration=31),
        row(count=13, mode="Auto"),
        row(count=17, mode="TAXI", source="other"),  # source does not matter
    ]
    result = bin_file(csv(*rows), LEVEL, TILE_INDEX, HOUR)
    assert result.bins == [
        ("AUTO", SEG, None, 30, 0, 18),
        ("AUTO", SEG, None, 30, 3, 5),
        ("AUTO", SEG, None, 31, 0, 11),
        ("AUTO", SEG2, None, 30, 0, 7),
        ("TAXI", SEG, None, 30, 0, 17),
    ]
    assert result.observations == 2 + 3 + 5 + 7 + 11 + 13 + 17
    assert result.rows_accepted == result.rows_read == 7


def test_counts_add_up(bin_file: BinFile) -> None:
    rows = [row(count=n, duration=n) for n in range(1, 40)]
    rows += [row(count=n, segment=1) for n in range(5)]
    rows += ["", "garbage", row(mode="")]
    result = bin_file(csv(*rows), LEVEL, TILE_INDEX, HOUR)
    assert result.rows_read == len(rows) - 1
    assert result.rows_read == result.rows_accepted + len(result.rejects)
    assert result.observations == sum(range(1, 40)) == sum(b[5] for b in result.bins)


def test_counts_at_the_limit_sum_beyond_32_bits(bin_file: BinFile) -> None:
    big = (1 << 32) - 1
    result = bin_file(csv(*[row(count=big)] * 3, row(count=1, mode="B")), LEVEL, TILE_INDEX, HOUR)
    assert result.bins == [("AUTO", SEG, None, 30, 0, 3 * big), ("B", SEG, None, 30, 0, 1)]
    assert result.observations == 3 * big + 1


def test_accepts_other_buffers(bin_file: BinFile) -> None:
    data = csv(row(), "bad")
    expected = bin_file(data, LEVEL, TILE_INDEX, HOUR)
    assert bin_file(bytearray(data), LEVEL, TILE_INDEX, HOUR) == expected
    assert bin_file(memoryview(data), LEVEL, TILE_INDEX, HOUR) == expected
    assert bin_file(data=data, level=LEVEL, tile_index=TILE_INDEX, hour=HOUR) == expected
