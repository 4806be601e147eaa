"""The row rules of a loop-detector file, vectorised (Arrow) with a scalar twin.

:func:`check` validates a batch of text rows at once: the plainest rows (digits and a point,
nothing else) in one C pass (``renderer._sensors.check_plain``, ext/sensors_check.c), every
other row with Arrow compute kernels (:func:`check_arrow`: RE2 patterns, casts), which tests
hold equal on any rows; :func:`reason` and :func:`parse` apply the same rules to one row in
plain Python. The
batch path decides which rows pass; the scalar path names the reason of each row that does
not (the first bad field in column order) and is the reference the tests compare the batch
path with. Rules, after trimming spaces and tabs:

- ``uniqueid``: a whole number 0 ... 2147483647;
- ``recordtimestamp``: epoch seconds (up to 10 digits, up to 6 decimals) or ISO 8601 as
  :meth:`datetime.fromisoformat` reads it (zone-less means UTC); 1970 ... 2099;
- ``currentspeed``: empty or negative = no measurement (NULL), else a decimal number of km/h
  (``.`` or ``,``; ``87``, ``81.25``, ``33,5``) up to 32767 with at most two decimals
  (trailing zeros aside): loop detectors report the mean over lanes, e.g. 81.25. It is typed
  as an exact integer of hundredths of km/h (81.25 -> 8125; see ``sensors_raw`` in
  sql/schema/sensors.sql for why); ``81.255`` is rejected, not rounded;
- ``bezettingsgraad``: empty = NULL, else a decimal number (``,`` or ``.``), magnitude up to 1e9;
- ``trafficintensityclass1..5``: empty or negative = NULL, else a whole number up to 9 digits.

A row whose fields are all empty (a blank line, or only delimiters) is not a record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from renderer import _sensors  # type: ignore[attr-defined]

__all__ = ["CLASSES", "FIELDS", "Checked", "check", "check_arrow", "parse", "parse_timestamp",
           "reason"]

CLASSES = tuple(f"trafficintensityclass{i}" for i in range(1, 6))
FIELDS = ("uniqueid", "recordtimestamp", "currentspeed", "bezettingsgraad", *CLASSES)
SPACE = " \t"
MAX_TIME = 4102444800  # 2100-01-01T00:00:00Z
MAX_OCCUPANCY = 1e9

UID = r"^[0-9]{1,10}$"
EPOCH = r"^[0-9]{1,10}(\.[0-9]{0,6})?$"
MILLIS = r"^[0-9]{11,13}(\.[0-9]*)?$"
NEGATIVE = r"^-[0-9]+([.,][0-9]*)?$"
SPEED = r"^\+?0*[0-9]{1,5}([.,][0-9]{0,2}0*)?$"
MAX_SPEED = 3276700  # hundredths of km/h
NUMBER = r"^\+?[0-9]+([.,][0-9]*)?$"
OCCUPANCY = r"^[+-]?([0-9]+([.,][0-9]*)?|[.,][0-9]+)$"
COUNT = r"^\+?[0-9]{1,9}$"
NEGATIVE_COUNT = r"^-[0-9]+$"

SCHEMA = pa.schema([
    ("line", pa.int64()), ("uniqueid", pa.int32()),
    ("recordtimestamp", pa.timestamp("us", tz="UTC")), ("currentspeed_hundredths", pa.int32()),
    ("bezettingsgraad", pa.float32()), *((c, pa.int32()) for c in CLASSES),
])


def _fm(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern.strip("^$"), text) is not None


def _iso(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def parse_timestamp(text: str) -> tuple[datetime | None, str | None]:
    """recordtimestamp -> (UTC time, None) or (None, reason)."""
    if text == "":
        return None, "recordtimestamp is empty"
    if _fm(EPOCH, text):
        seconds = float(text)
        if seconds >= MAX_TIME:
            return None, f"recordtimestamp {text[:40]!r} is after 2099"
        micros = round(seconds * 1e6)
        return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000), None
    if _fm(MILLIS, text):
        return None, (f"recordtimestamp {text[:40]!r} looks like epoch milliseconds;"
                      " expected seconds")
    value = _iso(text)
    if value is None:
        return None, f"recordtimestamp {text[:40]!r} is neither epoch seconds nor ISO 8601"
    if not 1970 <= value.year <= 2099:
        return None, f"recordtimestamp {text[:40]!r} is outside 1970-2099"
    return value, None


def reason(row: Mapping[str, str]) -> str | None:
    """Why a row (trimmed field texts, missing optional fields as "") is rejected, or None."""
    uid = row["uniqueid"]
    if uid == "":
        return "uniqueid is empty"
    if not _fm(UID, uid) or int(uid) > 2147483647:
        return f"uniqueid {uid[:40]!r} is not a whole number up to 2147483647"
    _, why = parse_timestamp(row["recordtimestamp"])
    if why:
        return why
    sp = row["currentspeed"]
    if sp and not _fm(NEGATIVE, sp):
        if not _fm(NUMBER, sp):
            return f"currentspeed {sp[:40]!r} is not a number"
        if len(sp.replace(",", ".").partition(".")[2].rstrip("0")) > 2:
            return (f"currentspeed {sp[:40]!r} has more than two decimals"
                    " (speeds are kept exactly, in hundredths of km/h)")
        if not _fm(SPEED, sp) or _hundredths(sp) > MAX_SPEED:
            return f"currentspeed {sp[:40]!r} is over 32767 km/h"
    occ = row["bezettingsgraad"]
    if occ and not _fm(OCCUPANCY, occ):
        return f"bezettingsgraad {occ[:40]!r} is not a number"
    if occ and abs(float(occ.replace(",", "."))) > MAX_OCCUPANCY:
        return f"bezettingsgraad {occ[:40]!r} is out of range"
    for name in CLASSES:
        value = row.get(name, "")
        if value and not _fm(NEGATIVE_COUNT, value) and not _fm(COUNT, value):
            return f"{name} {value[:40]!r} is not a whole number"
    return None


def _hundredths(text: str) -> int:
    """``"81.25"`` -> 8125, ``"33,5"`` -> 3350 (a text :data:`SPEED` matches)."""
    whole, _, fraction = text.lstrip("+").replace(",", ".").partition(".")
    return int(whole) * 100 + int(fraction[:2].ljust(2, "0"))


def parse(row: Mapping[str, str]) -> dict[str, object]:
    """The typed values of a row that :func:`reason` accepts (None = NULL)."""
    sp, occ = row["currentspeed"], row["bezettingsgraad"]
    values: dict[str, object] = {
        "uniqueid": int(row["uniqueid"]),
        "recordtimestamp": parse_timestamp(row["recordtimestamp"])[0],
        "currentspeed_hundredths": None if sp == "" or _fm(NEGATIVE, sp) else _hundredths(sp),
        "bezettingsgraad": None if occ == "" else float(np.float32(float(occ.replace(",", ".")))),
    }
    for name in CLASSES:
        value = row.get(name, "")
        values[name] = None if value == "" or _fm(NEGATIVE_COUNT, value) else int(value)
    return values


@dataclass(frozen=True)
class Checked:
    """A batch after validation."""

    accepted: pa.Table
    """Typed rows (SCHEMA), in input order."""
    rejects: list[tuple[int, str, str]]
    """(line, reason, raw) of each rejected row."""


def _match(array: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(array, pattern)


def _cast(array: pa.Array, ok: pa.Array, fill: str, kind: pa.DataType) -> pa.Array:
    return pc.cast(pc.if_else(ok, array, fill), kind)


def _texts(batch: pa.RecordBatch, names: Sequence[str]) -> dict[str, pa.Array]:
    """Trimmed text of each rule field; a column the file lacks reads as empty."""
    out = {}
    for name in FIELDS:
        if name in names:
            out[name] = pc.utf8_trim(batch.column(names.index(name)), characters=SPACE)
        else:
            out[name] = pa.array([""] * batch.num_rows, pa.string())
    return out


_PLAIN_TYPES = [np.int32, np.int64, np.int32, np.float32, *[np.int32] * 5]


def _plain(batch: pa.RecordBatch, names: Sequence[str]) -> tuple[np.ndarray, pa.Table] | None:
    """The rows ``check_plain`` takes (a boolean mask) and all rows typed by it (SCHEMA; rows
    it did not take hold zeros), or None when a column is not plain Arrow text or has nulls."""
    columns: list[tuple[pa.Buffer, pa.Buffer | bytes, int] | None] = []
    for name in FIELDS:
        if name not in names:
            columns.append(None)
            continue
        array = batch.column(names.index(name))
        if array.type != pa.string() or array.null_count:
            return None  # the C pass reads offsets and bytes only, so nulls go the Arrow way
        _, offsets, data = array.buffers()
        columns.append((offsets, b"" if data is None else data, array.offset))
    ok, typed = _sensors.check_plain(columns, batch.num_rows)
    arrays = [pa.array(np.arange(len(ok)), pa.int64())]  # a placeholder for the lines
    for field, kind, (values, valid) in zip(list(SCHEMA)[1:], _PLAIN_TYPES, typed, strict=True):
        data = np.frombuffer(values, kind)
        if field.name == "recordtimestamp":
            arrays.append(pa.array(data, pa.int64()).cast(field.type))
            continue
        arrays.append(pa.array(data, field.type, mask=np.frombuffer(valid, np.uint8) == 0))
    return np.frombuffer(ok, np.uint8) == 1, pa.Table.from_arrays(arrays, schema=SCHEMA)


def check(batch: pa.RecordBatch, names: Sequence[str], lines: np.ndarray,
          delimiter: str) -> Checked:
    """Validate a batch of text columns (the file's header ``names``) at ``lines``: the plain
    rows in C, the others by :func:`check_arrow`; the same result as check_arrow alone."""
    plain = _plain(batch, names)
    if plain is None:
        return check_arrow(batch, names, lines, delimiter)
    ok, typed = plain
    line_array = pa.array(lines, pa.int64())
    fast = typed.set_column(0, "line", line_array).filter(pa.array(ok))
    if ok.all():
        return Checked(fast, [])
    rest = ~ok
    slow = check_arrow(batch.filter(pa.array(rest)), names, lines[rest], delimiter)
    accepted = pa.concat_tables([fast, slow.accepted])
    if slow.accepted.num_rows and fast.num_rows:
        accepted = accepted.sort_by("line")  # in input order, as check_arrow's
    return Checked(accepted, slow.rejects)


def check_arrow(batch: pa.RecordBatch, names: Sequence[str], lines: np.ndarray,
                delimiter: str) -> Checked:
    """Validate a batch of text columns (the file's header ``names``) at ``lines`` with the
    Arrow rules alone."""
    t = _texts(batch, names)
    blank = pc.equal(batch.column(0), "")
    for i in range(1, batch.num_columns):
        blank = pc.and_(blank, pc.equal(batch.column(i), ""))
    uid_ok = _match(t["uniqueid"], UID)
    uid = _cast(t["uniqueid"], uid_ok, "0", pa.int64())
    uid_ok = pc.and_(uid_ok, pc.less_equal(uid, 2147483647))

    ts = t["recordtimestamp"]
    epoch = _match(ts, EPOCH)
    seconds = _cast(ts, epoch, "0", pa.float64())
    epoch_ok = pc.and_(epoch, pc.less(seconds, MAX_TIME))
    micros = pc.cast(pc.round(pc.multiply(seconds, 1e6), round_mode="half_to_even"), pa.int64())
    micros_np = micros.to_numpy(zero_copy_only=False).copy()
    ts_ok = epoch_ok.to_numpy(zero_copy_only=False).copy()
    other = np.flatnonzero(~epoch.to_numpy(zero_copy_only=False)
                           & (pc.not_equal(ts, "").to_numpy(zero_copy_only=False)))
    if other.size:  # ISO 8601: rare enough, and varied enough, for the scalar parser
        for row, text in zip(other, ts.take(pa.array(other)).to_pylist(), strict=True):
            value, why = parse_timestamp(text)
            if why is None and value is not None:
                ts_ok[row] = True
                micros_np[row] = (value - datetime(1970, 1, 1, tzinfo=UTC)) // _MICRO

    sp = t["currentspeed"]
    sp_null = pc.or_(pc.equal(sp, ""), _match(sp, NEGATIVE))
    sp_form = _match(sp, SPEED)
    # hundredths = whole * 100 + the first two decimals, right-padded with zeros
    whole = _cast(pc.utf8_ltrim(pc.replace_substring_regex(sp, r"[.,].*$", ""), characters="+"),
                  sp_form, "0", pa.int32())
    fraction = pc.utf8_slice_codeunits(
        pc.utf8_rpad(pc.replace_substring_regex(sp, r"^[^.,]*[.,]?", ""), 2, "0"), 0, 2)
    speed = pc.add(pc.multiply(whole, 100), _cast(fraction, sp_form, "0", pa.int32()))
    sp_ok = pc.or_(sp_null, pc.and_(sp_form, pc.less_equal(speed, MAX_SPEED)))

    occ = t["bezettingsgraad"]
    occ_num = _match(occ, OCCUPANCY)
    occupancy = _cast(pc.replace_substring(occ, ",", "."), occ_num, "0", pa.float64())
    occ_ok = pc.or_(pc.equal(occ, ""),
                    pc.and_(occ_num, pc.less_equal(pc.abs(occupancy), MAX_OCCUPANCY)))

    ok = pc.and_(pc.and_(uid_ok, pa.array(ts_ok)), pc.and_(sp_ok, occ_ok))
    counts = {}
    for name in CLASSES:
        c = t[name]
        c_int = _match(c, COUNT)
        counts[name] = pc.if_else(c_int, _cast(pc.utf8_ltrim(c, characters="+"), c_int, "0",
                                               pa.int32()), pa.scalar(None, pa.int32()))
        ok = pc.and_(ok, pc.or_(c_int, pc.or_(pc.equal(c, ""), _match(c, NEGATIVE_COUNT))))

    keep = pc.invert(blank)
    accept = pc.and_(ok, keep)
    line_arr = pa.array(lines, pa.int64())
    table = pa.table({
        "line": line_arr,
        "uniqueid": pc.cast(uid, pa.int32(), safe=False),
        "recordtimestamp": pa.array(micros_np, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "currentspeed_hundredths": pc.if_else(sp_null, pa.scalar(None, pa.int32()), speed),
        "bezettingsgraad": pc.if_else(pc.equal(occ, ""), pa.scalar(None, pa.float32()),
                                      pc.cast(occupancy, pa.float32(), safe=False)),
        **counts,
    }, schema=SCHEMA).filter(accept)
    return Checked(table, _rejects(batch, names, lines, pc.and_(pc.invert(ok), keep), delimiter))


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


def _rejects(batch: pa.RecordBatch, names: Sequence[str], lines: np.ndarray,
             mask: pa.Array, delimiter: str) -> list[tuple[int, str, str]]:
    where = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    if not where.size:
        return []
    rows = batch.take(pa.array(where)).to_pylist()
    column = {n: batch.schema.names[i] for i, n in enumerate(names)}
    out = []
    for i, row in zip(where, rows, strict=True):
        fields = {n: (row[column[n]] if n in column else "").strip(SPACE) for n in FIELDS}
        why = reason(fields) or "rejected by the batch rules (please report: rules disagree)"
        raw = delimiter.join(row[n] or "" for n in batch.schema.names)
        out.append((int(lines[i]), why, raw[:1000]))
    return out
