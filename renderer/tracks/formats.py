"""Position report formats: CSV, NDJSON, AIS NMEA and AMSA BinaryFixes -> :class:`Report`.

Every parser yields ``(line, item)`` where ``item`` is a :class:`Report` (a position), a
:class:`Link` (identifiers of one vessel without a position: AIS static data, types 5 and 24)
or a :class:`Reject` (with its reason and raw text). ``line`` is the 1-based line of a text
file, or the 1-based record number of a BinaryFixes file. Nothing is dropped silently.

BinaryFixes (the AMSA ``risky`` project's format), big-endian, in the order risky's own
``BinaryFixes.write`` puts the fields (its README lists source before latency; the code, and
so every file it wrote, has latency first)::

    [mmsi int32] lat float32, lon float32, time int64 (epoch ms), latency int32 (s, -1 none),
    source int16 (0 none), navigational status int8 (127 none), rate of turn int8 (-128 none),
    SOG int16 (1/10 knot, 1023 none), COG int16 (1/10 degree, 3600 none),
    heading int16 (1/10 degree, 360 none), AIS class byte (0 A, 1 B)

35 bytes a record with the mmsi, 31 without. Our writer writes the bytes risky's writer does
for the same fix (tenths rounded half up, as Java's ``Math.round``), and risky's reader
reads our files; the deliberate differences:

- the rate of turn byte holds the report's rate of turn (risky always writes -128, absent,
  and its reader skips the byte);
- a course or heading that rounds to 3600 tenths is written 0 (risky would write 3600, its
  "no course" sentinel);
- heading 36.0 degrees is 360 tenths, risky's "no heading": it reads back as no heading, in
  risky and here (a quirk of the format, kept);
- reading, 3600 is also taken as no heading (what this module wrote before it followed
  risky), and a class byte other than 0 or 1 rejects the record (risky reads it as B).

Example
-------
>>> r = Report(ids=(("mmsi", "123456789"),), time_ms=0, lat=-33.5, lon=151.25)
>>> decode_fixes(encode_fixes([r]))[0][1].lat
-33.5
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pyais.exceptions import InvalidNMEAMessageException, UnknownMessageException
from pyais.messages import NMEAMessage

__all__ = ["FIXES", "FIXES_NO_MMSI", "FORMATS", "Link", "Reject", "Report", "checked_ids",
           "csv_columns", "csv_item", "decode_fixes", "encode_fixes", "fix_item", "guess_format",
           "parse", "parse_csv", "parse_ndjson", "parse_nmea",
           "parse_time_ms"]

FORMATS = ("csv", "ndjson", "nmea", "fixes")
FIXES = struct.Struct(">iffqihbbhhhb")          # 35 bytes, with the mmsi
FIXES_NO_MMSI = struct.Struct(">ffqihbbhhhb")   # 31 bytes
SOG_NONE, COG_NONE, HEADING_NONE = 1023, 3600, 360  # risky's HEADING_ABSENT is 360
HEADING_NONE_OLD = 3600  # what this module wrote for no heading before following risky
LATENCY_NONE, SOURCE_NONE, STATUS_NONE, ROT_NONE = -1, 0, 127, -128
ID_KEYS = ("mmsi", "imo", "callsign")
_MIN_MS = 0                      # 1970: earlier is a broken clock
_MAX_MS = 4_102_444_800_000      # 2100


@dataclass(frozen=True, slots=True)
class Report:
    """One position report. Speeds in knots, angles in degrees, latency in seconds."""

    ids: tuple[tuple[str, str], ...]
    """(key, value) identifiers, e.g. ``(("mmsi", "503000001"), ("imo", "9312345"))``."""
    time_ms: int
    lat: float
    lon: float
    sog: float | None = None
    cog: float | None = None
    heading: float | None = None
    nav_status: int | None = None
    rot: int | None = None
    latency: int | None = None
    source: int | None = None
    ais_class: str | None = None
    """'A' or 'B'."""


@dataclass(frozen=True, slots=True)
class Link:
    """Identifiers known to name one vessel, from a message without a position."""

    ids: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    raw: str


Item = Report | Link | Reject


# -- validation shared by every format ------------------------------------------------------

class _Bad(ValueError):
    """A field is unusable: the row is rejected with this message."""


def parse_time_ms(value: Any) -> int:
    """Epoch seconds, epoch milliseconds (> 1e11) or ISO 8601 (zone-less = UTC) -> epoch ms.

    >>> parse_time_ms("2026-12-01T00:00:00Z")
    1796083200000
    >>> parse_time_ms(1796083200)
    1796083200000
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            raise _Bad("no time")
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise _Bad(f"time {text!r} is neither ISO 8601 nor epoch seconds") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return _in_range(round(moment.timestamp() * 1000))
    if not math.isfinite(number):
        raise _Bad(f"time {value!r} is not finite")
    return _in_range(round(number if abs(number) > 1e11 else number * 1000))


def _in_range(ms: int) -> int:
    if not _MIN_MS <= ms < _MAX_MS:
        raise _Bad(f"time {ms} ms is outside 1970-2100")
    return ms


def _num(value: Any, name: str, lo: float, hi: float, *, hi_open: bool = False) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{name} {value!r} is not a number") from None
    if not math.isfinite(number) or number < lo or number > hi or (hi_open and number == hi):
        raise _Bad(f"{name} {value!r} is outside [{lo}, {hi}{')' if hi_open else ']'}")
    return number


def _int(value: Any, name: str, lo: int, hi: int) -> int | None:
    number = _num(value, name, lo, hi)
    if number is None:
        return None
    if number != int(number):
        raise _Bad(f"{name} {value!r} is not an integer")
    return int(number)


def _ids(pairs: Iterable[tuple[str, Any]]) -> tuple[tuple[str, str], ...]:
    return checked_ids(tuple((str(k), "" if v is None else str(v)) for k, v in pairs))


@functools.lru_cache(maxsize=65536)  # a file names a few thousand vessels, again and again
def checked_ids(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for key, value in pairs:
        if value.strip() == "":
            continue
        k, v = str(key).strip().lower(), str(value).strip()
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", k):
            raise _Bad(f"identifier key {key!r} is not a short lowercase name")
        if k == "mmsi" and not re.fullmatch(r"\d{1,9}", v):
            raise _Bad(f"mmsi {v!r} is not 1-9 digits")
        if len(v) > 64:
            raise _Bad(f"identifier {k} is longer than 64 characters")
        out[k] = v
    if not out:
        raise _Bad("no identifier (mmsi, imo, callsign or id_<key>)")
    return tuple(sorted(out.items()))


def _report(ids: tuple[tuple[str, str], ...], fields: dict[str, Any],
            time_ms: int | None = None) -> Report:
    """A validated report; ``time_ms`` when the format gives epoch ms (else ``time``)."""
    lat = _num(fields.get("lat"), "lat", -90, 90)
    lon = _num(fields.get("lon"), "lon", -180, 180)
    if lat is None or lon is None:
        raise _Bad("no position (lat and lon are required)")
    ais_class = fields.get("ais_class")
    if ais_class in ("", None):
        ais_class = None
    elif str(ais_class).upper() not in ("A", "B"):
        raise _Bad(f"ais_class {ais_class!r} is not A or B")
    else:
        ais_class = str(ais_class).upper()
    return Report(
        ids=ids, time_ms=parse_time_ms(fields.get("time", "")) if time_ms is None
        else _in_range(time_ms), lat=lat, lon=lon,
        sog=_num(fields.get("sog"), "sog", 0, 102.2),
        cog=_num(fields.get("cog"), "cog", 0, 360, hi_open=True),
        heading=_num(fields.get("heading"), "heading", 0, 360, hi_open=True),
        nav_status=_int(fields.get("nav_status"), "nav_status", 0, 15),
        rot=_int(fields.get("rot"), "rot", -127, 127),
        latency=_int(fields.get("latency"), "latency", 0, 2**31 - 1),
        source=_int(fields.get("source"), "source", 1, 32767),
        ais_class=ais_class)


# -- CSV and NDJSON --------------------------------------------------------------------------

_ALIASES = {"timestamp": "time", "latitude": "lat", "longitude": "lon", "status": "nav_status",
            "navstatus": "nav_status", "class": "ais_class"}


def _id_key(column: str) -> str | None:
    if column in ID_KEYS:
        return column
    for prefix in ("id_", "id."):
        if column.startswith(prefix) and len(column) > len(prefix):
            return column[len(prefix):]
    return None


def parse_csv(text: Iterable[str]) -> Iterator[tuple[int, Item]]:
    """CSV with a header: ``time``, ``lat``, ``lon``, identifier columns (``mmsi``, ``imo``,
    ``callsign`` or ``id_<key>``) and optional ``sog``, ``cog``, ``heading``, ``nav_status``,
    ``rot``, ``latency``, ``source``, ``ais_class``. Time: ISO 8601 or epoch seconds/ms."""
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    columns, id_columns = csv_columns(header)
    missing = {"time", "lat", "lon"} - set(columns)
    if missing or not id_columns:
        what = ", ".join(sorted(missing)) or "an identifier column"
        yield 1, Reject(f"header lacks {what}", ",".join(header))
        for row in reader:  # every line still counted, each a reject
            if row:
                yield reader.line_num, Reject("file has no usable header", ",".join(row))
        return
    for row in reader:
        if not row or row == [""]:
            continue
        line = reader.line_num
        if len(row) != len(columns):
            yield line, Reject(f"{len(row)} fields, header has {len(columns)}", ",".join(row))
            continue
        yield line, csv_item(columns, id_columns, row)


def csv_columns(header: list[str]) -> tuple[list[str], list[tuple[int, str]]]:
    """The field names of a CSV header (aliases resolved) and its identifier columns as
    (position, key)."""
    columns = [_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in header]
    return columns, [(i, k) for i, c in enumerate(columns) if (k := _id_key(c))]


def csv_item(columns: list[str], id_columns: list[tuple[int, str]], row: list[str]) -> Item:
    """One CSV row (as many fields as the header) -> a report, or a reject with its reason."""
    fields = dict(zip(columns, row, strict=True))
    try:
        return _report(checked_ids(tuple((k, row[i]) for i, k in id_columns)), fields)
    except _Bad as exc:
        return Reject(str(exc), ",".join(row))


def parse_ndjson(lines: Iterable[str]) -> Iterator[tuple[int, Item]]:
    """One JSON object a line: ``{"ids": {"mmsi": "..."}, "time": ..., "lat": ..., "lon": ...}``
    (identifiers may also be top-level ``mmsi``/``imo``/``callsign`` or ``id_<key>``)."""
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        raw = text.rstrip("\n")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield line, Reject(f"not JSON: {exc.msg}", raw)
            continue
        if not isinstance(obj, dict):
            yield line, Reject("not a JSON object", raw)
            continue
        fields = {_ALIASES.get(k.lower(), k.lower()): v for k, v in obj.items()}
        try:
            pairs: list[tuple[str, Any]] = [(k, v) for c, v in fields.items()
                                            if (k := _id_key(c))]
            given = fields.get("ids")
            if isinstance(given, dict):
                pairs.extend(given.items())
            elif isinstance(given, list):
                pairs.extend((p[0], p[1]) for p in given if isinstance(p, list) and len(p) == 2)
            elif given is not None:
                raise _Bad("ids is neither an object nor a list of [key, value]")
            yield line, _report(_ids(pairs), fields)
        except _Bad as exc:
            yield line, Reject(str(exc), raw)


# -- AIS NMEA --------------------------------------------------------------------------------

POSITION_TYPES = {1, 2, 3, 18, 19, 27}
STATIC_TYPES = {5, 24}
_TAG_BLOCK = re.compile(r"^\\([^\\]*)\\")
_LEADING_TIME = re.compile(r"^(\S+?)[ ,;]+(?=[!$\\])")


def _nmea_time(text: str) -> tuple[str, int | None]:
    """The sentence without its time prefix, and the time in ms: a tag block ``c:`` field
    (epoch seconds or ms), else a leading epoch or ISO 8601 token."""
    at: int | None = None
    lead = _LEADING_TIME.match(text)
    if lead:
        at = parse_time_ms(lead.group(1))
        text = text[lead.end():]
    tag = _TAG_BLOCK.match(text)
    if tag:
        for field in tag.group(1).split("*")[0].split(","):
            if field.startswith("c:"):
                at = parse_time_ms(field[2:])
        text = text[tag.end():]
    return text, at


def _static_link(msg: Any) -> Link | None:
    ids = [("mmsi", str(msg.mmsi))]
    imo = getattr(msg, "imo", None)
    if imo:
        ids.append(("imo", str(imo)))
    callsign = (getattr(msg, "callsign", None) or "").strip().strip("@").strip()
    if callsign:
        ids.append(("callsign", callsign))
    return Link(tuple(sorted(ids))) if len(ids) > 1 else None


def _ais_report(msg: Any, at: int) -> Report:
    lat, lon = float(msg.lat), float(msg.lon)
    if lat == 91 or lon == 181:
        raise _Bad("position not available (lat 91 / lon 181)")
    speed = getattr(msg, "speed", None)
    course = getattr(msg, "course", None)
    heading = getattr(msg, "heading", None)
    status = getattr(msg, "status", None)
    turn = getattr(msg, "turn", None)
    return _report((("mmsi", str(msg.mmsi)),), {
        "lat": lat, "lon": lon,
        "sog": None if speed is None or speed >= 102.3 else speed,
        "cog": None if course is None or course >= 360 else course,
        "heading": None if heading is None or heading >= 360 else heading,
        "nav_status": None if status is None else int(status),
        "rot": None if turn is None or not -127 <= turn <= 127 else round(turn),
        "ais_class": "A" if msg.msg_type in (1, 2, 3, 27) else "B",
    }, at)


def _decode(fragments: list[NMEAMessage], at: int | None) -> Item:
    try:
        msg = NMEAMessage.assemble_from_iterable(fragments).decode() if len(fragments) > 1 \
            else fragments[0].decode()
    except (InvalidNMEAMessageException, UnknownMessageException, ValueError) as exc:
        raise _Bad(f"undecodable AIS message: {exc}") from exc
    if msg.msg_type in STATIC_TYPES:
        link = _static_link(msg)
        if link is None:
            raise _Bad(f"AIS message type {msg.msg_type} without imo or callsign")
        return link
    if msg.msg_type not in POSITION_TYPES:
        raise _Bad(f"AIS message type {msg.msg_type} is not a vessel position report")
    if at is None:
        raise _Bad("no time (needs a tag block c: field or a leading timestamp)")
    return _ais_report(msg, at)


def parse_nmea(lines: Iterable[str]) -> Iterator[tuple[int, Item]]:
    """AIVDM/AIVDO sentences, one a line, multi-sentence messages assembled (by sequence id
    and channel, fragments in order). The time comes from a tag block ``c:`` field or a
    leading timestamp; a message is reported at the line of its first fragment."""
    pending: dict[tuple[str, str], tuple[int, int | None, list[NMEAMessage], list[str]]] = {}
    for line, text in enumerate(lines, start=1):
        raw = text.strip()
        if not raw:
            continue
        try:
            sentence, at = _nmea_time(raw)
            msg = NMEAMessage(sentence.encode())
            if not msg.is_valid:
                raise _Bad("bad NMEA checksum")
        except (_Bad, InvalidNMEAMessageException, UnicodeError, ValueError) as exc:
            yield line, Reject(f"not an AIS sentence: {exc}" if not isinstance(exc, _Bad)
                               else str(exc), raw)
            continue
        if msg.frag_cnt <= 1:
            try:
                yield line, _decode([msg], at)
            except _Bad as exc:
                yield line, Reject(str(exc), raw)
            continue
        group = (str(msg.seq_id), str(msg.channel))
        if msg.frag_num == 1:
            if group in pending:  # a new message began before the last one ended
                first, _, _, texts = pending.pop(group)
                yield first, Reject("incomplete multi-sentence message", " | ".join(texts))
            pending[group] = (line, at, [msg], [raw])
        elif group not in pending or len(pending[group][2]) != msg.frag_num - 1:
            yield line, Reject(f"fragment {msg.frag_num} of {msg.frag_cnt} without the "
                               "fragments before it", raw)
            continue
        else:
            pending[group][2].append(msg)
            pending[group][3].append(raw)
        first, at0, frags, texts = pending[group]
        if len(frags) == msg.frag_cnt:
            del pending[group]
            try:
                yield first, _decode(frags, at0)
            except _Bad as exc:
                yield first, Reject(str(exc), " | ".join(texts))
    for first, _, _, texts in pending.values():
        yield first, Reject("incomplete multi-sentence message", " | ".join(texts))


# -- BinaryFixes -----------------------------------------------------------------------------

def _java_round(x: float) -> int:
    """Half up, as risky's ``Math.round``: 12.25 knots -> 123 tenths (Python's round: 122)."""
    return math.floor(x + 0.5)


def _fix_fields(r: Report) -> tuple[Any, ...]:
    return (r.lat, r.lon, r.time_ms,
            LATENCY_NONE if r.latency is None else r.latency,
            SOURCE_NONE if r.source is None else r.source,
            STATUS_NONE if r.nav_status is None else r.nav_status,
            ROT_NONE if r.rot is None else r.rot,
            SOG_NONE if r.sog is None else _java_round(r.sog * 10),
            COG_NONE if r.cog is None else _java_round(r.cog * 10) % 3600,
            HEADING_NONE if r.heading is None else _java_round(r.heading * 10) % 3600,
            1 if r.ais_class == "B" else 0)


def encode_fixes(reports: Iterable[Report], *, with_mmsi: bool = True) -> bytes:
    """BinaryFixes records of some reports (the mmsi identifier, 0 when there is none)."""
    out = bytearray()
    for r in reports:
        if with_mmsi:
            mmsi = int(dict(r.ids).get("mmsi", "0"))
            out += FIXES.pack(mmsi, *_fix_fields(r))
        else:
            out += FIXES_NO_MMSI.pack(*_fix_fields(r))
    return bytes(out)


def _from_fix(values: tuple[Any, ...], ids: tuple[tuple[str, str], ...]) -> Report:
    lat, lon, t, latency, source, status, rot, sog, cog, heading, cls = values
    fields = {"lat": lat, "lon": lon,
              "latency": None if latency == LATENCY_NONE else latency,
              "source": None if source == SOURCE_NONE else source,
              "nav_status": None if status == STATUS_NONE else status,
              "rot": None if rot == ROT_NONE else rot,
              "sog": None if sog == SOG_NONE else sog / 10,
              "cog": None if cog == COG_NONE else cog / 10,
              "heading": None if heading in (HEADING_NONE, HEADING_NONE_OLD) else heading / 10,
              "ais_class": {0: "A", 1: "B"}.get(cls, "?")}
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise _Bad("position is not finite")
    return _report(ids, fields, t)


def fix_item(values: tuple[Any, ...], *, with_mmsi: bool = True,
             ids: tuple[tuple[str, str], ...] = ()) -> Item:
    """One unpacked BinaryFixes record -> a report, or a reject with its reason."""
    layout = FIXES if with_mmsi else FIXES_NO_MMSI
    try:
        if with_mmsi:
            vessel = checked_ids((("mmsi", str(values[0])),)) if values[0] > 0 else ids
            if not vessel:
                raise _Bad("mmsi 0 and no identifier for the file")
            return _from_fix(values[1:], vessel)
        if not ids:
            raise _Bad("no identifier for a file without mmsi")
        return _from_fix(values, ids)
    except _Bad as exc:
        return Reject(str(exc), layout.pack(*values).hex())


def decode_fixes(data: bytes, *, with_mmsi: bool = True,
                 ids: tuple[tuple[str, str], ...] = ()) -> list[tuple[int, Item]]:
    """The records of a BinaryFixes file; ``ids`` name the vessel of a file without mmsi
    (risky keeps one vessel a file, named by the file)."""
    return list(iter_fixes(io.BytesIO(data), with_mmsi=with_mmsi, ids=ids))


def iter_fixes(stream: io.BufferedIOBase | Any, *, with_mmsi: bool = True,
               ids: tuple[tuple[str, str], ...] = ()) -> Iterator[tuple[int, Item]]:
    layout = FIXES if with_mmsi else FIXES_NO_MMSI
    record = 0
    while True:
        block = stream.read(layout.size * 4096)
        if not block:
            return
        whole = len(block) - len(block) % layout.size
        for values in layout.iter_unpack(block[:whole]):
            record += 1
            yield record, fix_item(values, with_mmsi=with_mmsi, ids=ids)
        if whole < len(block):
            record += 1
            yield record, Reject(f"truncated record: {len(block) - whole} of {layout.size} "
                                 "bytes", block[whole:].hex())
            return


# -- dispatch --------------------------------------------------------------------------------

def guess_format(name: str) -> str:
    """The format of a file by its name (``.csv``, ``.ndjson``/``.jsonl``, ``.nmea``/``.ais``/
    ``.txt``, ``.fix``/``.fixes``/``.track``), compression suffix ignored."""
    base = name.lower().removesuffix(".gz")
    for fmt, suffixes in (("csv", (".csv",)), ("ndjson", (".ndjson", ".jsonl", ".json")),
                          ("nmea", (".nmea", ".ais", ".txt", ".log")),
                          ("fixes", (".fix", ".fixes", ".track", ".bin"))):
        if base.endswith(suffixes):
            return fmt
    raise ValueError(name)


def parse(fmt: str, stream: Any, *, with_mmsi: bool = True,
          ids: tuple[tuple[str, str], ...] = ()) -> Iterator[tuple[int, Item]]:
    """Parse a binary stream in a format (text formats decoded as UTF-8, bad bytes as U+FFFD,
    so that the row is rejected with a reason rather than the file failing)."""
    if fmt == "fixes":
        yield from iter_fixes(stream, with_mmsi=with_mmsi, ids=ids)
        return
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    try:
        if fmt == "csv":
            yield from parse_csv(text)
        else:
            lines = (line.replace("\x00", "\ufffd") for line in text)
            yield from (parse_ndjson if fmt == "ndjson" else parse_nmea)(lines)
    finally:
        text.detach()  # the stream stays the caller's to close


def with_latency(report: Report, latency: int | None) -> Report:
    """A copy with another arrival latency (the generator's satellite delays)."""
    return replace(report, latency=latency)
