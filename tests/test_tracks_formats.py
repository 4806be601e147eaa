"""Report formats without a database: BinaryFixes round trips (hypothesis), CSV/NDJSON
validation with reasons, AIS NMEA with multi-sentence messages, and the generator."""

from __future__ import annotations

import io
import math
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyais.encode import encode_dict

from renderer.tracks import formats, sample
from renderer.tracks.formats import Link, Reject, Report


def _f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


reports = st.builds(
    Report,
    ids=st.integers(1, 999_999_999).map(lambda m: (("mmsi", str(m)),)),
    time_ms=st.integers(0, 4_102_444_799_999),
    lat=st.floats(-90, 90).map(_f32).filter(lambda v: -90 <= v <= 90),
    lon=st.floats(-180, 180).map(_f32).filter(lambda v: -180 <= v <= 180),
    sog=st.none() | st.integers(0, 1022).map(lambda v: v / 10),
    cog=st.none() | st.integers(0, 3599).map(lambda v: v / 10),
    # 36.0 degrees is risky's "no heading" (360 tenths): not a value that round-trips
    heading=st.none() | st.integers(0, 3599).filter(lambda v: v != 360).map(lambda v: v / 10),
    nav_status=st.none() | st.integers(0, 15),
    rot=st.none() | st.integers(-127, 127),
    latency=st.none() | st.integers(0, 2**31 - 1),
    source=st.none() | st.integers(1, 32767),
    ais_class=st.sampled_from(["A", "B"]),
)


@given(st.lists(reports, max_size=20))
def test_binary_fixes_round_trip_with_mmsi(batch: list[Report]) -> None:
    data = formats.encode_fixes(batch)
    assert len(data) == 35 * len(batch)
    decoded = formats.decode_fixes(data)
    assert [line for line, _ in decoded] == list(range(1, len(batch) + 1))
    assert [item for _, item in decoded] == batch


@given(st.lists(reports, max_size=20))
def test_binary_fixes_round_trip_without_mmsi(batch: list[Report]) -> None:
    ids = (("imo", "9312345"),)
    data = formats.encode_fixes(batch, with_mmsi=False)
    assert len(data) == 31 * len(batch)
    decoded = [item for _, item in formats.decode_fixes(data, with_mmsi=False, ids=ids)]
    assert decoded == [Report(ids, *[getattr(r, f) for f in Report.__slots__[1:]])
                       for r in batch]


def _risky(mmsi: int | None, lat: float, lon: float, t: int, latency: int, source: int,
           status: int, rot: int, sog: int, cog: int, heading: int, cls: int) -> bytes:
    """A record as risky's ``BinaryFixes.write`` puts it, field by field (putInt, putFloat,
    putLong, putInt latency, putShort source, put status, put rot, putShort sog, cog,
    heading, put class), built without our struct layout."""
    def be(value: int, size: int) -> bytes:
        return value.to_bytes(size, "big", signed=True)

    def f32(value: float) -> bytes:
        return struct.pack(">f", value)

    return ((be(mmsi, 4) if mmsi is not None else b"") + f32(lat) + f32(lon) + be(t, 8)
            + be(latency, 4) + be(source, 2) + be(status, 1) + be(rot, 1) + be(sog, 2)
            + be(cog, 2) + be(heading, 2) + be(cls, 1))


def test_binary_fixes_bytes_are_riskys() -> None:
    full = Report(ids=(("mmsi", "503000001"),), time_ms=1796083200123, lat=-33.5, lon=151.25,
                  sog=12.25, cog=359.9, heading=90.0, nav_status=5, latency=7, source=1,
                  ais_class="B")
    empty = Report(ids=(("mmsi", "503000001"),), time_ms=1796083200123, lat=-33.5, lon=151.25)
    # risky: Math.round(10 * sog) rounds half up (122.5 -> 123); absent: latency -1,
    # source 0, status 127, rot -128 (risky always writes it absent), sog 1023, cog 3600,
    # heading 360; class 0 = A, 1 = B
    assert formats.encode_fixes([full]) == _risky(503000001, -33.5, 151.25, 1796083200123, 7,
                                                  1, 5, -128, 123, 3599, 900, 1)
    assert formats.encode_fixes([empty]) == _risky(503000001, -33.5, 151.25, 1796083200123,
                                                   -1, 0, 127, -128, 1023, 3600, 360, 0)
    assert formats.encode_fixes([empty], with_mmsi=False) == _risky(
        None, -33.5, 151.25, 1796083200123, -1, 0, 127, -128, 1023, 3600, 360, 0)
    [(_, back)] = formats.decode_fixes(_risky(503000001, -33.5, 151.25, 1796083200123, 7, 1,
                                              5, -128, 123, 3599, 900, 1))
    assert back == replace(full, sog=12.3)
    [(_, back)] = formats.decode_fixes(_risky(503000001, -33.5, 151.25, 1796083200123, -1, 0,
                                              127, -128, 1023, 3600, 360, 0))
    assert back == replace(empty, ais_class="A")


def test_binary_fixes_differences_from_risky_are_the_documented_ones() -> None:
    r = Report(ids=(("mmsi", "1"),), time_ms=0, lat=1.0, lon=2.0, rot=-5, heading=36.0)
    rot = formats.encode_fixes([r])[27]  # after mmsi, lat, lon, time, latency, source, status
    assert rot == (-5) & 0xFF  # ours keeps the rate of turn; risky writes it absent
    # risky's heading sentinel is 360 tenths, so 36.0 degrees reads back as no heading
    [(_, back)] = formats.decode_fixes(formats.encode_fixes([r]))
    assert isinstance(back, Report) and back.heading is None
    # ours also reads 3600 (what it wrote before) as no heading, and rejects a class byte
    # other than 0 or 1 (risky reads any non-zero as B)
    old = _risky(1, 1.0, 2.0, 0, -1, 0, 127, -128, 1023, 3600, 3600, 0)
    assert formats.decode_fixes(old)[0][1].heading is None  # type: ignore[union-attr]
    odd = _risky(1, 1.0, 2.0, 0, -1, 0, 127, -128, 1023, 3600, 360, 2)
    assert isinstance(formats.decode_fixes(odd)[0][1], Reject)


def test_binary_fixes_bad_records_are_rejected_with_reasons() -> None:
    good = Report(ids=(("mmsi", "1"),), time_ms=0, lat=1.0, lon=2.0, ais_class="A")
    bad_lat = formats.FIXES.pack(5, 95.0, 2.0, 0, -1, 0, 127, -128, 1023, 3600, 3600, 0)
    no_mmsi = formats.FIXES.pack(0, 1.0, 2.0, 0, -1, 0, 127, -128, 1023, 3600, 3600, 0)
    nan = formats.FIXES.pack(5, math.nan, 2.0, 0, -1, 0, 127, -128, 1023, 3600, 3600, 0)
    data = formats.encode_fixes([good]) + bad_lat + no_mmsi + nan + b"\x00" * 10
    items = formats.decode_fixes(data)
    assert items[0] == (1, good)
    reasons = {line: item.reason for line, item in items if isinstance(item, Reject)}
    assert "lat" in reasons[2]
    assert "mmsi 0" in reasons[3]
    assert "lat" in reasons[4] or "finite" in reasons[4]
    assert reasons[5] == "truncated record: 10 of 35 bytes"


def _csv(text: str) -> list[tuple[int, object]]:
    return list(formats.parse("csv", io.BytesIO(text.encode())))


def test_csv_rows_are_reports_or_rejects_with_line_and_reason() -> None:
    items = _csv("time,mmsi,imo,lat,lon,sog\n"
                 "2026-12-01T00:00:00Z,503000001,,-33.5,151.25,12.5\n"
                 "\n"
                 "2026-12-01T00:01:00Z,503000001,9312345,-33.6,151.3,\n"
                 "2026-12-01T00:02:00Z,503000001,,-95,151.3,\n"
                 "yesterday,503000001,,-33,151,\n"
                 "2026-12-01T00:03:00Z,,,-33,151,\n"
                 "2026-12-01T00:04:00Z,12x,,-33,151,\n"
                 "2026-12-01T00:05:00Z,503000001,,-33,151\n"
                 "1796083200,503000001,,-33,151,200\n")
    lines = {line: item for line, item in items}
    assert isinstance(lines[2], Report) and lines[2].sog == 12.5
    assert lines[2].time_ms == 1796083200000
    assert isinstance(lines[4], Report) and lines[4].ids == (("imo", "9312345"),
                                                             ("mmsi", "503000001"))
    assert "lat" in lines[5].reason  # type: ignore[attr-defined]
    assert "time" in lines[6].reason  # type: ignore[attr-defined]
    assert "no identifier" in lines[7].reason  # type: ignore[attr-defined]
    assert "mmsi" in lines[8].reason  # type: ignore[attr-defined]
    assert "5 fields" in lines[9].reason  # type: ignore[attr-defined]
    assert "sog" in lines[10].reason  # type: ignore[attr-defined]
    assert 3 not in lines  # a blank line is not a row


def test_csv_without_a_usable_header_rejects_every_row() -> None:
    items = _csv("a,b,c\n1,2,3\n4,5,6\n")
    assert [line for line, _ in items] == [1, 2, 3]
    assert all(isinstance(i, Reject) for _, i in items)
    assert "header lacks" in items[0][1].reason  # type: ignore[attr-defined]


def test_ndjson_identifiers_any_way() -> None:
    text = ('{"ids": {"mmsi": "1", "callsign": "VJAB"}, "time": 0, "lat": 1, "lon": 2}\n'
            '{"mmsi": 2, "id_hull": "H-9", "time": "1970-01-01T00:00:01", "lat": 1, "lon": 2}\n'
            '{"ids": [["imo", "9"]], "t": 1, "lat": 1, "lon": 2}\n'
            'not json\n[1]\n')
    items = list(formats.parse("ndjson", io.BytesIO(text.encode())))
    assert items[0][1].ids == (("callsign", "VJAB"), ("mmsi", "1"))  # type: ignore[union-attr]
    assert items[1][1].ids == (("hull", "H-9"), ("mmsi", "2"))  # type: ignore[union-attr]
    assert items[1][1].time_ms == 1000  # type: ignore[union-attr]
    assert "time" in items[2][1].reason  # type: ignore[union-attr]
    assert items[3][1].reason.startswith("not JSON")  # type: ignore[union-attr]
    assert items[4][1].reason == "not a JSON object"  # type: ignore[union-attr]


def _tag(seconds: int) -> str:
    return sample._tag(seconds * 1000)


def test_nmea_single_and_multi_sentence_messages() -> None:
    pos = encode_dict({"type": 1, "mmsi": 503000001, "lat": -33.5, "lon": 151.25, "speed": 12.3,
                       "course": 45.1, "heading": 44, "status": 0}, sentence_type="VDM")
    static = encode_dict({"type": 5, "mmsi": 503000001, "imo": 9312345, "callsign": "VJAB",
                          "shipname": "X"}, sentence_type="VDM", seq_id=3)
    assert len(static) == 2
    other_static = encode_dict({"type": 5, "mmsi": 503000002, "imo": 9312346,
                                "shipname": "Y"}, sentence_type="VDM", seq_id=4)
    base = encode_dict({"type": 4, "mmsi": 2, "lat": 1, "lon": 1}, sentence_type="VDM")
    lines = [
        _tag(1796083200) + pos[0],
        f"1796083201 {pos[0]}",                     # a leading epoch timestamp
        static[0],
        other_static[0],                             # interleaved with another message
        static[1],
        other_static[1],
        pos[0],                                      # no time
        pos[0][:-2] + "00",                          # bad checksum
        static[1],                                   # a fragment without its first
        _tag(1796083202) + base[0],                  # a base station
        other_static[0],                             # never completed
    ]
    items = list(formats.parse("nmea", io.BytesIO("\n".join(lines).encode())))
    by_line = {line: item for line, item in items}
    first = by_line[1]
    assert isinstance(first, Report)
    assert (first.lat, first.lon, first.sog, first.cog, first.heading) == (
        -33.5, 151.25, 12.3, 45.1, 44.0)
    assert first.time_ms == 1796083200000 and first.ais_class == "A"
    assert by_line[2].time_ms == 1796083201000  # type: ignore[union-attr]
    assert by_line[3] == Link((("callsign", "VJAB"), ("imo", "9312345"),
                               ("mmsi", "503000001")))
    assert by_line[4] == Link((("imo", "9312346"), ("mmsi", "503000002")))
    assert "no time" in by_line[7].reason  # type: ignore[union-attr]
    assert "checksum" in by_line[8].reason  # type: ignore[union-attr]
    assert "without the fragments before it" in by_line[9].reason  # type: ignore[union-attr]
    assert "type 4" in by_line[10].reason  # type: ignore[union-attr]
    assert by_line[11].reason == "incomplete multi-sentence message"  # type: ignore[union-attr]
    assert len(items) == 9  # two-sentence messages count once


def test_guess_format() -> None:
    assert formats.guess_format("a.CSV.gz") == "csv"
    assert formats.guess_format("a.jsonl") == "ndjson"
    assert formats.guess_format("feed.nmea") == "nmea"
    assert formats.guess_format("vessel.track") == "fixes"
    with pytest.raises(ValueError):
        formats.guess_format("a.parquet")


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_generated_reports_survive_every_writer(fmt: str, tmp_path: Path) -> None:
    reports = sample.generate(vessels=6, days=1, seed=5)
    [path] = sample.write(reports, tmp_path, fmt)
    with open(path, "rb") as f:
        items = [item for _, item in formats.parse(fmt, f)]
    assert not [i for i in items if isinstance(i, Reject)]
    back = [i for i in items if isinstance(i, Report)]
    assert len(back) == len(reports)
    for a, b in zip(reports, back, strict=True):
        assert a.time_ms == b.time_ms
        assert abs(a.lat - b.lat) < 1e-4 and abs(a.lon - b.lon) < 1e-4  # float32, AIS units
        assert dict(a.ids)["mmsi"] == dict(b.ids)["mmsi"]
    if fmt == "nmea":
        assert any(isinstance(i, Link) for i in items) == any(len(r.ids) > 1 for r in reports)


def test_generator_is_realistic_and_deterministic() -> None:
    reports = sample.generate(vessels=40, days=2, seed=9)
    assert reports == sample.generate(vessels=40, days=2, seed=9)
    assert {len(r.ids) for r in reports} == {1, 2}                     # two identifiers
    late = [r for r in reports if r.latency]
    assert late and max(r.latency for r in late) > 3600                 # satellite, hours late
    assert any(r.sog == 0 and r.nav_status == 5 for r in reports)       # port stays
    by_vessel: dict[str, list[int]] = {}
    for r in reports:
        by_vessel.setdefault(r.ids[-1][1], []).append(r.time_ms)
    gaps = [b - a for ts in by_vessel.values() for a, b in zip(sorted(ts), sorted(ts)[1:],
                                                                 strict=False)]
    assert max(gaps) >= 3600_000                                        # AIS gaps
    arrival = [r.time_ms + (r.latency or 0) * 1000 for r in reports]
    assert arrival == sorted(arrival)                                   # in arrival order
