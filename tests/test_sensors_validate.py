"""Row rules of loop-detector files: the Arrow batch path agrees with the scalar twin."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer.sensors.validate import (
    CLASSES,
    FIELDS,
    check,
    check_arrow,
    parse,
    parse_timestamp,
    reason,
)

NAMES = FIELDS


def _batch(rows: list[dict[str, str]], names: tuple[str, ...] = NAMES) -> pa.RecordBatch:
    return pa.record_batch([pa.array([r[n] for r in rows], pa.string()) for n in names],
                           names=[f"f{i}" for i in range(len(names))])


def _row(**fields: str) -> dict[str, str]:
    base = {"uniqueid": "12", "recordtimestamp": "1767225600", "currentspeed": "80",
            "bezettingsgraad": "7", **{c: "1" for c in CLASSES}}
    base.update(fields)
    return base


# Texts near every rule's edges, mixed with random ones.
_EDGES = ["", " ", "0", "7", "-1", "-0", "+5", "40", "41", "250", "32767", "32768", "87.0",
          "87.5", "87,0", "12,5", "81.25", "33,5", "81.255", "81.250", "32767.00",
          "32767.01", "0.001", "99999", "0099.99", ".5", "1.", "abc", "1e3", "NaN",
          "2147483647", "2147483648",
          "0012", "1767225600", "1767225600.5", "1767225600123", "4102444800", "4102444799",
          "2026-01-05T07:30:00Z", "2026-01-05 07:30:00+01:00", "2026-01-05T07:30",
          "2026-02-30T00:00", "2026-01-05", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00",
          "\u0663", "\uff11\uff12"]  # Arabic-Indic and fullwidth digits are not digits here
_text = st.one_of(st.sampled_from(_EDGES), st.text(alphabet="0123456789+-.,:TZ e", max_size=12))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({n: _text for n in NAMES}), min_size=1, max_size=20))
def test_batch_path_agrees_with_the_scalar_rules(rows: list[dict[str, str]]) -> None:
    lines = np.arange(2, 2 + len(rows))
    checked = check(_batch(rows), NAMES, lines, ",")
    trimmed = [{k: v.strip(" \t") for k, v in r.items()} for r in rows]
    blank = [all(v == "" for v in r.values()) for r in rows]
    expected_ok = [not b and reason(r) is None for r, b in zip(trimmed, blank, strict=True)]
    accepted_lines = checked.accepted.column("line").to_pylist()
    assert accepted_lines == [int(x) for x, ok in zip(lines, expected_ok, strict=True) if ok]
    for got, row in zip(checked.accepted.to_pylist(),
                        [r for r, ok in zip(trimmed, expected_ok, strict=True) if ok], strict=True):
        got.pop("line")
        assert got == parse(row)
    rejected = {line: why for line, why, _ in checked.rejects}
    for line, row, ok, b in zip(lines, trimmed, expected_ok, blank, strict=True):
        assert (int(line) in rejected) == (not ok and not b)
        if int(line) in rejected:
            assert rejected[int(line)] == reason(row)


@pytest.mark.parametrize("fields,why", [
    ({"uniqueid": ""}, "uniqueid is empty"),
    ({"uniqueid": "-3"}, "uniqueid '-3' is not a whole number"),
    ({"recordtimestamp": "1767225600123"}, "looks like epoch milliseconds"),
    ({"recordtimestamp": "2026-02-30T00:00:00"}, "neither epoch seconds nor ISO 8601"),
    ({"recordtimestamp": "4102444800"}, "after 2099"),
    ({"currentspeed": "81.255"}, "currentspeed '81.255' has more than two decimals"),
    ({"currentspeed": "32767.01"}, "currentspeed '32767.01' is over 32767 km/h"),
    ({"currentspeed": "123456"}, "currentspeed '123456' is over 32767 km/h"),
    ({"currentspeed": "fast"}, "currentspeed 'fast' is not a number"),
    ({"bezettingsgraad": "x"}, "bezettingsgraad 'x' is not a number"),
    ({"trafficintensityclass3": "2.5"}, "trafficintensityclass3 '2.5' is not a whole number"),
])
def test_reasons_name_the_field_and_value(fields: dict[str, str], why: str) -> None:
    assert why in (reason(_row(**fields)) or "")


@pytest.mark.parametrize("speed,value", [("", None), ("-1", None), ("-12.5", None), ("0", 0),
                                         ("87", 8700), ("+87", 8700), ("87.00", 8700),
                                         ("087,0", 8700), ("81.25", 8125), ("33.5", 3350),
                                         ("33,5", 3350), ("81.2500", 8125), ("0.01", 1),
                                         ("87.", 8700), ("32767.00", 3276700)])
def test_speeds_are_exact_hundredths_and_empty_or_negative_is_none(speed: str,
                                                                   value: int | None) -> None:
    """Loop detectors report means over lanes (81.25, 33.5): kept exactly, in hundredths."""
    assert reason(_row(currentspeed=speed)) is None
    assert parse(_row(currentspeed=speed))["currentspeed_hundredths"] == value
    checked = check(_batch([_row(currentspeed=speed)]), NAMES, np.array([2]), ",")
    assert checked.accepted.column("currentspeed_hundredths").to_pylist() == [value]


@pytest.mark.parametrize("text,expected", [
    ("1767225600", datetime(2026, 1, 1, tzinfo=UTC)),
    ("1767225600.25", datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)),
    ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01 01:00:00+01:00", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01T00:00:00", datetime(2026, 1, 1, tzinfo=UTC)),  # zone-less is UTC
])
def test_timestamps_normalise_to_utc(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == (expected, None)


def test_blank_rows_are_not_records() -> None:
    rows = [_row(), {n: "" for n in NAMES}, _row(uniqueid="x")]
    checked = check(_batch(rows), NAMES, np.array([2, 3, 4]), ",")
    assert checked.accepted.column("line").to_pylist() == [2]
    assert [(line, raw) for line, _, raw in checked.rejects] == [
        (4, "x,1767225600,80,7,1,1,1,1,1")]


def test_missing_optional_columns_read_as_null() -> None:
    names = ("recordtimestamp", "uniqueid", "bezettingsgraad", "currentspeed", "extra")
    rows = [{"recordtimestamp": "1767225600", "uniqueid": "5", "bezettingsgraad": "",
             "currentspeed": "50", "extra": "ignored"}]
    checked = check(_batch(rows, names), names, np.array([2]), ";")
    (got,) = checked.accepted.to_pylist()
    assert got["uniqueid"] == 5 and got["currentspeed_hundredths"] == 5000
    assert got["bezettingsgraad"] is None and got["trafficintensityclass1"] is None


def _digits(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=low, max_size=high)


# Mostly the plain forms the C pass takes, at and around its edges, with spaces and tabs.
_plain = st.one_of(
    _digits(1, 11),
    st.builds(lambda s, f: f"{s}.{f}", st.integers(0, 4102444800), _digits(1, 6)),
    st.builds(lambda w, f: f"{w}.{f}", _digits(1, 16), _digits(0, 17)),
    st.sampled_from(_EDGES), _text,
    st.builds(lambda pad, t, pad2: pad + t + pad2, st.sampled_from(["", " ", "\t"]),
              _digits(1, 10), st.sampled_from(["", " ", "\t "])))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.fixed_dictionaries({n: _plain for n in NAMES}), min_size=1, max_size=24),
       st.integers(0, 3), st.sets(st.sampled_from(CLASSES)))
def test_the_c_pass_equals_the_arrow_rules(rows: list[dict[str, str]], skip: int,
                                            missing: set[str]) -> None:
    """check (plain rows in C, the rest in Arrow) gives what check_arrow alone gives: the
    same rows, values and NULLs, the same rejects; also on a sliced batch (an Arrow offset)
    and with optional columns missing."""
    names = tuple(n for n in NAMES if n not in missing)
    batch = _batch(rows, names).slice(min(skip, len(rows) - 1))
    lines = np.arange(2, 2 + batch.num_rows)
    fast, arrow = check(batch, names, lines, ","), check_arrow(batch, names, lines, ",")
    assert fast.accepted.equals(arrow.accepted)
    assert fast.rejects == arrow.rejects


def test_the_c_pass_rounds_times_and_occupancy_as_arrow() -> None:
    rows = [_row(recordtimestamp=t, bezettingsgraad=o) for t, o in [
        ("1767225600.000001", "0.1"), ("1767225600.123457", "16777217.5"),
        ("1767225600.999999", "3.4028235677973366"), ("4102444799.999999", "999999999.99999999"),
        ("1767225600.5", "1000000000.0000001")]]  # the last: occupancy over 1e9
    lines = np.arange(2, 2 + len(rows))
    fast, arrow = check(_batch(rows), NAMES, lines, ","), check_arrow(_batch(rows), NAMES,
                                                                     lines, ",")
    assert fast.accepted.equals(arrow.accepted) and fast.rejects == arrow.rejects
    assert fast.accepted.num_rows == 4


def test_the_c_pass_equals_arrow_on_many_fractional_times_and_occupancies() -> None:
    """About 1 % of six-decimal times fall just below a whole microsecond once multiplied:
    the C pass must round them half to even as Arrow does (truncating failed here)."""
    rng = np.random.default_rng(7)
    rows = [_row(recordtimestamp=f"{s}.{f:06d}", bezettingsgraad=f"{o}.{d}")
            for s, f, o, d in zip(rng.integers(0, 4102444800, 5000),
                                  rng.integers(0, 1_000_000, 5000),
                                  rng.integers(0, 10**9, 5000), rng.integers(0, 10**12, 5000),
                                  strict=True)]
    lines = np.arange(2, 2 + len(rows))
    fast = check(_batch(rows), NAMES, lines, ",")
    assert fast.accepted.equals(check_arrow(_batch(rows), NAMES, lines, ",").accepted)
    assert fast.accepted.num_rows == len(rows)


def test_null_texts_take_the_arrow_rules() -> None:
    """A reader that gives nulls (not empty strings) must not slip past the C pass, which
    reads only offsets and bytes: rows with null fields get what the Arrow rules give them
    (the null id is rejected)."""
    rows = [_row(), _row(uniqueid="13"), _row(uniqueid="14")]
    columns = [pa.array([r[n] for r in rows], pa.string()) for n in NAMES]
    columns[NAMES.index("uniqueid")] = pa.array(["12", None, "14"], pa.string())
    columns[NAMES.index("currentspeed")] = pa.array(["80", "80", None], pa.string())
    batch = pa.record_batch(columns, names=[f"f{i}" for i in range(len(NAMES))])
    lines = np.arange(2, 5)
    fast, arrow = check(batch, NAMES, lines, ","), check_arrow(batch, NAMES, lines, ",")
    assert fast.accepted.equals(arrow.accepted) and fast.rejects == arrow.rejects
    assert 3 not in fast.accepted.column("line").to_pylist()
