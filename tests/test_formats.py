"""Speed tile (protobuf) and histogram (FlatBuffers) formats: round trips and wire facts."""

from __future__ import annotations

import array
import doctest
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import descriptor, descriptor_pb2
from hypothesis import given
from hypothesis import strategies as st

from renderer import tiles
from renderer.formats import histograms, speedtile_pb2, speedtiles
from renderer.formats.histograms import HistogramRow, decode_histogram, encode_histogram
from renderer.formats.speedtiles import Kind, SubTile, decode_speed_tile, encode_speed_tile

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ROOT / "renderer" / "formats"
HEADER = "# generated, do not edit: scripts/generate-formats"

UINT32 = st.integers(0, 2**32 - 1)
SEGMENT_IDS = st.integers(0, 2**46 - 1)


@st.composite
def tile_strategy(draw: st.DrawFn) -> tiles.Tile:
    level = draw(st.sampled_from([0, 1, 2]))
    return tiles.Tile(level, draw(st.integers(0, tiles.tile_count(level) - 1)))


# --- generated code ---------------------------------------------------------------------------


def generated_files() -> list[Path]:
    return [
        FORMATS / "speedtile_pb2.py",
        FORMATS / "speedtile_pb2.pyi",
        *sorted((FORMATS / "histogram").glob("*.py")),
    ]


def test_generated_files_carry_the_header() -> None:
    files = generated_files()
    assert len(files) == 8
    for path in files:
        assert path.read_text().splitlines()[0] == HEADER, path


def test_generated_code_imports_with_the_runtime_only() -> None:
    # No grpc_tools (a dev tool), and any warning (e.g. protobuf's gencode/runtime version
    # check) is an error.
    code = (
        "import sys; sys.modules['grpc_tools'] = None; "
        "import renderer.formats.speedtile_pb2, renderer.formats.histograms, "
        "renderer.formats.speedtiles"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT, check=True)


def test_generated_code_is_fresh() -> None:
    # make test installs both (grpcio-tools in the test extra, flatc by install-system-deps
    # --test), so a stale generated file fails here rather than being skipped.
    assert shutil.which("flatc"), "flatc missing: scripts/install-system-deps --test"
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "generate-formats"), "--check"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr


def test_doctests() -> None:
    assert doctest.testmod(histograms).failed == 0
    assert doctest.testmod(speedtiles).failed == 0


# --- histogram --------------------------------------------------------------------------------

CELLS = st.dictionaries(
    keys=st.tuples(
        st.sampled_from(["auto", "bus", "bicycle", "truck", "ä"]),
        SEGMENT_IDS,
        st.none() | SEGMENT_IDS,
        st.integers(0, 255),
        st.integers(0, 255),
    ),
    values=st.integers(1, 2**32 - 1),
    max_size=60,
)


@given(tile_strategy(), UINT32, CELLS, st.randoms())
def test_histogram_round_trip(tile: tiles.Tile, hour: int, cells: dict, rnd) -> None:  # type: ignore[no-untyped-def]
    rows = [(*key, count) for key, count in cells.items()]
    rnd.shuffle(rows)
    decoded = decode_histogram(encode_histogram(tile.level, tile.index, hour, rows))
    assert (decoded.level, decoded.index, decoded.hour) == (tile.level, tile.index, hour)
    assert decoded.tile == tile
    assert decoded.rows == tuple(sorted(map(HistogramRow._make, rows), key=histograms.row_order))


def test_histogram_grouping_and_none() -> None:
    # next id 0 is a real segment (segment 0 of level-0 tile 0), distinct from "no next"
    rows = [
        ("auto", 5, 0, 1, 2, 3),
        ("auto", 5, None, 1, 2, 4),
        ("auto", 5, None, 0, 9, 1),
        ("bus", 5, 70, 1, 2, 5),
    ]
    decoded = decode_histogram(encode_histogram(0, 0, 1, rows))
    assert [r.next_segment_id for r in decoded.rows] == [None, None, 0, 70]
    assert [r.count for r in decoded.rows] == [1, 4, 3, 5]
    root = histograms._histogram.Histogram.GetRootAs(encode_histogram(0, 0, 1, rows), 0)
    assert root.ModesLength() == 2 and root.Modes(0).SegmentsLength() == 1
    assert root.Modes(0).Segments(0).NextsLength() == 2  # None, then 0


def test_histogram_is_compact() -> None:
    rows = [("auto", s << 25, None, d, 0, 1) for s in range(100) for d in range(10)]
    assert len(encode_histogram(0, 0, 1, rows)) < 16 * len(rows)  # 8-byte bins + grouping


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("auto", 1, None, 0, 0, 1), ("auto", 1, None, 0, 0, 2)], "duplicate"),
        ([("auto", 1, None, 256, 0, 1)], "duration_code"),
        ([("auto", 1, None, 0, -1, 1)], "queue_code"),
        ([("auto", 1, None, 0, 0, 0)], "count"),
        ([("auto", 2**46, None, 0, 0, 1)], "segment_id"),
        ([("auto", 1, "x", 0, 0, 1)], "next_segment_id"),
        ([("", 1, None, 0, 0, 1)], "mode"),
    ],
)
def test_histogram_rejects_bad_rows(rows: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_histogram(0, 0, 1, rows)


def test_histogram_rejects_bad_tile_and_bytes() -> None:
    with pytest.raises(ValueError, match=r"0\.\.4049"):
        encode_histogram(0, 4050, 1, [])
    with pytest.raises(ValueError, match="hour"):
        encode_histogram(0, 0, -1, [])
    with pytest.raises(ValueError, match="file identifier"):
        decode_histogram(b"not a histogram at all")
    data = encode_histogram(0, 0, 1, [("auto", 1, None, 0, 0, 1)] * 1)
    with pytest.raises(ValueError, match="corrupt"):
        decode_histogram(data[:12])


# --- speed tiles ------------------------------------------------------------------------------


@st.composite
def subtile_strategy(draw: st.DrawFn, kind: Kind) -> SubTile:
    tile = draw(tile_strategy())
    segments = draw(st.integers(0, 4))
    start = draw(st.integers(0, 50_000))
    nex_length = draw(st.integers(0, 20))
    names = draw(st.sets(st.sampled_from(speedtiles.ARRAYS[kind]), min_size=1))
    arrays = {}
    for name in names:
        if kind is Kind.NEXT:
            length = nex_length
        elif kind is Kind.SPEED or name == "speeds":  # .ref: 168 hourly means per segment
            length = segments * speedtiles.HOURS_PER_WEEK
        else:
            length = segments
        # whole arrays drawn as bytes: st.lists of 672 integers is too slow to generate
        code = "Q" if name == "next_segment_ids" else "I"
        width = array.array(code).itemsize
        raw = draw(st.binary(min_size=length * width, max_size=length * width))
        arrays[name] = array.array(code, raw).tolist()
    return SubTile(
        level=tile.level,
        index=tile.index,
        start_segment_index=start,
        total_segments=start + segments + draw(st.integers(0, 10)),
        subtile_segments=segments,
        range_start=draw(UINT32),
        range_end=draw(UINT32),
        arrays=arrays,
        description=draw(st.text(max_size=20)),
    )


def without_empty(sub: SubTile) -> SubTile:
    arrays = {name: list(values) for name, values in sub.arrays.items() if len(values)}
    return SubTile(**{**sub.__dict__, "arrays": arrays})


@given(st.data(), st.sampled_from(list(Kind)))
def test_speed_tile_round_trip(data: st.DataObject, kind: Kind) -> None:
    subs = data.draw(st.lists(subtile_strategy(kind), max_size=3))
    encoded = encode_speed_tile(subs, kind)
    decoded = decode_speed_tile(speedtiles.gzip_decompress(speedtiles.gzip_compress(encoded)))
    assert decoded == [without_empty(s) for s in subs]


def test_speed_tile_accepts_numpy_and_array() -> None:
    np = pytest.importorskip("numpy")
    n = 2 * speedtiles.HOURS_PER_WEEK
    sub = SubTile(
        1,
        37740,
        0,
        2,
        2,
        0,
        604800,
        {
            "speeds": np.arange(n, dtype=np.uint32),
            "prevalences": array.array("I", range(n)),
            "speed_variances": range(n),
        },
    )
    [back] = decode_speed_tile(speedtiles.encode_subtile(sub, "spd"))
    assert back.arrays == {name: list(range(n)) for name in sub.arrays}
    assert back.kind is Kind.SPEED
    assert (back.unit_size, back.entry_size) == (604800, 3600)


def header(**arrays: list[int]) -> SubTile:
    return SubTile(0, 2140, 0, 1, 1, 0, 604800, arrays)


@pytest.mark.parametrize(
    ("sub", "kind", "message"),
    [
        (header(speeds=[1] * 168, next_segment_ids=[1]), None, "mixes"),
        (header(speeds=[1] * 168), "nex", "cannot carry"),
        (header(speeds=[1] * 168, reference_speeds_20=[1]), "spd", "cannot carry"),
        (header(speeds=[1], reference_speeds_20=[1]), "ref", "168 values"),
        (header(speeds=[1] * 167), "spd", "168 values"),
        (header(reference_speeds_20=[1, 2]), "ref", "1 values"),
        (header(next_segment_ids=[1, 2], next_segment_delays=[1]), "nex", "2 values"),
        (header(velocity=[1]), None, "unknown"),
        (header(speeds=[-1] * 168), "spd", "speeds"),
        (header(next_segment_ids=[2**64]), "nex", "next_segment_ids"),
    ],
)
def test_speed_tile_rejects(sub: SubTile, kind: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_speed_tile([sub], kind)


def test_speed_tile_rejects_bad_bytes() -> None:
    with pytest.raises(ValueError, match="not a speed tile"):
        decode_speed_tile(b"\xff\xff\xff")
    with pytest.raises(ValueError, match="not a gzip body"):
        speedtiles.gzip_decompress(b"plain")


def test_gzip_is_reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    body = encode_speed_tile([header(speeds=[7] * 168)])
    first = speedtiles.gzip_compress(body)
    assert first[4:8] == bytes(4)  # the header's MTIME: no time stamp in the file
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # another clock, same bytes
    assert speedtiles.gzip_compress(body) == first
    assert speedtiles.gzip_decompress(first) == body


def test_keys_and_ranges() -> None:
    t = tiles.Tile(0, 2140)
    assert speedtiles.speed_tile_key(2026, 47, t, Kind.NEXT, 2) == "2026/47/0/002/140.nex.2.gz"
    assert speedtiles.reference_tile_key(t) == "0/002/140.ref.gz"
    assert tiles.tile_from_key(speedtiles.speed_tile_key(2026, 1, t, "spd", 0)) == t
    assert speedtiles.subtile_ranges(0) == []
    assert speedtiles.subtile_ranges(10_000) == [(0, 10_000)]
    assert speedtiles.hour_slot(0, 0, 167) == 167
    assert (speedtiles.UNIT_SIZE, speedtiles.ENTRY_SIZE) == (604_800, 3_600)
    assert (speedtiles.HOURS_PER_WEEK, speedtiles.SEGMENTS_PER_SUBTILE) == (168, 10_000)
    with pytest.raises(ValueError, match="reference_tile_key"):
        speedtiles.speed_tile_key(2026, 47, t, "ref", 0)
    with pytest.raises(ValueError, match="hour of week"):
        speedtiles.hour_slot(0, 0, 168)


# --- OpenTraffic compatibility: field numbers, types, packing ---------------------------------

F = descriptor.FieldDescriptor
TABLE = {  # ARCHITECTURE.md, "OpenTraffic speed tile compatibility"
    1: ("level", F.TYPE_UINT32),
    2: ("index", F.TYPE_UINT32),
    3: ("startSegmentIndex", F.TYPE_UINT32),
    4: ("totalSegments", F.TYPE_UINT32),
    5: ("subtileSegments", F.TYPE_UINT32),
    6: ("rangeStart", F.TYPE_UINT32),
    7: ("rangeEnd", F.TYPE_UINT32),
    8: ("unitSize", F.TYPE_UINT32),
    9: ("entrySize", F.TYPE_UINT32),
    10: ("description", F.TYPE_STRING),
    12: ("speeds", F.TYPE_UINT32),
    13: ("speedVariances", F.TYPE_UINT32),
    14: ("prevalences", F.TYPE_UINT32),
    15: ("nextSegmentIndices", F.TYPE_UINT32),
    16: ("nextSegmentCounts", F.TYPE_UINT32),
    17: ("nextSegmentIds", F.TYPE_UINT64),
    18: ("nextSegmentDelays", F.TYPE_UINT32),
    19: ("nextSegmentDelayVariances", F.TYPE_UINT32),
    20: ("nextSegmentQueueLengths", F.TYPE_UINT32),
    21: ("nextSegmentQueueLengthVariances", F.TYPE_UINT32),
    22: ("referenceSpeeds20", F.TYPE_UINT32),
    23: ("referenceSpeeds40", F.TYPE_UINT32),
    24: ("referenceSpeeds60", F.TYPE_UINT32),
    25: ("referenceSpeeds80", F.TYPE_UINT32),
}


def test_descriptor_matches_the_table() -> None:
    # Read back the schema as protoc compiled it (FileDescriptorProto), not as the runtime's
    # Python API presents it, so the check holds across protobuf versions.
    file_proto = descriptor_pb2.FileDescriptorProto()
    speedtile_pb2.DESCRIPTOR.CopyToProto(file_proto)
    assert file_proto.package == "opentraffic"
    assert file_proto.syntax in ("", "proto2")  # proto2 is written as no syntax
    [tile_proto] = file_proto.message_type
    assert tile_proto.name == "SpeedTile"
    [subtiles] = tile_proto.field
    assert (subtiles.number, subtiles.name, subtiles.type, subtiles.label) == (
        1,
        "subtiles",
        F.TYPE_MESSAGE,
        F.LABEL_REPEATED,
    )
    assert subtiles.type_name == ".opentraffic.SpeedTile.SubTile"
    [sub] = tile_proto.nested_type
    assert {f.number: (f.name, f.type) for f in sub.field} == TABLE
    for field in sub.field:
        repeated = field.number >= 12
        label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
        assert field.label == label, field.name
        assert field.options.packed is repeated, field.name
    assert [(r.start, r.end) for r in sub.reserved_range] == [(11, 12)]  # end is exclusive
    runtime = speedtile_pb2.SpeedTile.SubTile.DESCRIPTOR
    assert 11 not in runtime.fields_by_number
    assert all(f.is_packed for f in runtime.fields if f.number >= 12)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def wire_fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, payload) of each field, decoded without protobuf."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            fields.append((number, wire, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            fields.append((number, wire, data[pos : pos + length]))
            pos += length
        else:
            raise AssertionError(f"unexpected wire type {wire} for field {number}")
    return fields


def packed(payload: bytes) -> list[int]:
    values, pos = [], 0
    while pos < len(payload):
        value, pos = _varint(payload, pos)
        values.append(value)
    return values


@pytest.mark.parametrize(
    ("kind", "numbers"),
    [
        (Kind.SPEED, [*range(1, 11), 12, 13, 14, 15, 16]),
        (Kind.NEXT, [*range(1, 11), 17, 18, 19, 20, 21]),
        (Kind.REFERENCE, [*range(1, 11), 12, 22, 23, 24, 25]),
    ],
)
def test_wire_field_numbers(kind: Kind, numbers: list[int]) -> None:
    n = {Kind.SPEED: 168, Kind.NEXT: 3, Kind.REFERENCE: 1}[kind]
    arrays = {
        name: [(i + 1) * 1000 + j for j in range(168 if name == "speeds" else n)]
        for i, name in enumerate(speedtiles.ARRAYS[kind])
    }
    if kind is Kind.NEXT:
        arrays["next_segment_ids"] = [2**45 + 1, 2**46 - 1, 5]
    sub = SubTile(
        2, 1036799, 20_000, 20_001, 1, 1_700_000_000, 1_700_604_800, arrays, description="week 47"
    )
    [(number, wire, body)] = wire_fields(encode_speed_tile([sub], kind))
    assert (number, wire) == (1, 2)  # SpeedTile.subtiles, length-delimited
    inner = wire_fields(body)  # type: ignore[arg-type]
    assert [f[0] for f in inner] == numbers
    scalars = {num: value for num, wire, value in inner if num <= 10}
    assert scalars == {
        1: 2,
        2: 1036799,
        3: 20_000,
        4: 20_001,
        5: 1,
        6: 1_700_000_000,
        7: 1_700_604_800,
        8: 604_800,
        9: 3_600,
        10: b"week 47",
    }
    for number, wire, value in inner:
        if number >= 12:
            assert wire == 2, number  # packed: one length-delimited run per array
            name = next(k for k, v in speedtiles._PROTO_NAME.items() if v == TABLE[number][0])
            assert packed(value) == list(arrays[name])  # type: ignore[arg-type]


def test_a_reference_subtile_carries_hourly_speeds() -> None:
    # OpenTraffic's createRefSpeedTile: speeds (field 12) are the 168 hourly means of each
    # segment, referenceSpeeds20..80 one value per segment, in one subtile
    sub = SubTile(0, 2140, 0, 2, 2, 0, 604800,
                  {"speeds": [7] * 336, "reference_speeds_20": [1, 2]})
    assert sub.kind is Kind.REFERENCE
    [back] = decode_speed_tile(encode_speed_tile([sub], "ref"))
    assert back.arrays == {"speeds": [7] * 336, "reference_speeds_20": [1, 2]}
    assert header(speeds=[1] * 168).kind is Kind.SPEED  # speeds alone: a .spd subtile
