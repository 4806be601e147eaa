"""The sample generator writes realistic reporter files that the histogram stage reads."""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path
from statistics import mean

import pytest

from renderer import tiles
from renderer.binning import bin_file
from renderer.traffic.layout import parse_key
from renderer.traffic.sample import CITIES, SampleStats, generate, sample_tiles


def _files(root: Path) -> dict[str, bytes]:
    """Every file under root by key, gunzipped."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found[path.relative_to(root).as_posix()] = (
                gzip.decompress(data) if path.suffix == ".gz" else data)
    return found


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> tuple[SampleStats, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("sample")
    stats = generate(root, tiles=2, days=2, seed=7)
    return stats, _files(root)


def _rows(files: dict[str, bytes]) -> list[tuple[str, list[str]]]:
    return [(key, line.split(","))
            for key, data in files.items() for line in data.decode().splitlines()[1:]]


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", tiles=1, days=1, seed=5)
    b = generate(tmp_path / "b", tiles=1, days=1, seed=5)
    c = generate(tmp_path / "c", tiles=1, days=1, seed=6)
    raw = {p: sorted((f.relative_to(p).as_posix(), f.read_bytes())
                     for f in p.rglob("*") if f.is_file()) for p in (a.root, b.root, c.root)}
    assert raw[a.root] == raw[b.root]
    assert raw[a.root] != raw[c.root]


def test_every_file_is_in_the_layout_and_the_counts_add_up(two_days) -> None:
    stats, files = two_days
    assert stats.files == len(files) == 2 * 48 * 3
    read = rejected = observations = 0
    for key, data in files.items():
        prefix = parse_key(key)
        assert prefix is not None, key
        assert prefix.tile in stats.tiles
        assert stats.first_hour <= prefix.hour < stats.end_hour
        result = bin_file(data, prefix.level, prefix.index, prefix.hour)
        assert result.file_error is None
        read += result.rows_read
        rejected += len(result.rejects)
        observations += result.observations
    assert read == stats.rows
    assert rejected == stats.bad_rows
    assert observations == stats.observations


def test_malformed_lines_of_every_kind(two_days) -> None:
    _, files = two_days
    reasons = set()
    for key, data in files.items():
        p = parse_key(key)
        assert p is not None
        reasons |= {r[2] for r in bin_file(data, p.level, p.index, p.hour).rejects}
    assert {"bad duration", "bad length", "segment outside tile", "time outside hour",
            "maximum_timestamp before minimum_timestamp"} <= reasons
    assert any(r.startswith("expected 10 fields") for r in reasons)


def test_gzip_no_final_newline_and_every_no_next_spelling(two_days) -> None:
    stats, files = two_days
    assert stats.gzip_files == stats.files // 3
    assert any(not data.endswith(b"\n") for data in files.values())
    nexts = {fields[1] for _, fields in _rows(files) if len(fields) == 10}
    assert {"", str(2**46 - 1), str(2**42 - 1)} <= nexts


def test_segments_in_real_tiles_with_varied_lengths_and_several_nexts(two_days) -> None:
    stats, files = two_days
    _, lon, lat, _ = CITIES[0]
    assert stats.tiles == [tiles.tile(lon, lat, 0), tiles.tile(lon, lat, 1)]
    lengths, nexts = [], defaultdict(set)
    for key, fields in _rows(files):
        p = parse_key(key)
        assert p is not None
        if len(fields) != 10 or not fields[4].isdigit() or int(fields[4]) <= 0:
            continue
        segment = int(fields[0])
        if tiles.segment_tile(segment) != p.tile:
            continue  # the malformed "outside tile" line
        lengths.append(int(fields[4]))
        nexts[segment].add(fields[1])
    assert max(lengths) > 20 * min(lengths)
    assert sum(len(n) >= 3 for n in nexts.values()) > len(nexts) / 4


def test_traversals_span_hours_into_both_files(two_days) -> None:
    _, files = two_days
    by_hour = defaultdict(set)
    for key, fields in _rows(files):
        p = parse_key(key)
        assert p is not None
        by_hour[(p.tile, p.hour)].add(",".join(fields))
    spanning = 0
    for (tile, hour), lines in by_hour.items():
        for line in lines:
            fields = line.split(",")
            if len(fields) != 10 or not (fields[6].isdigit() and fields[7].isdigit()):
                continue
            if int(fields[6]) // 3600 == hour and int(fields[7]) // 3600 == hour + 1:
                assert line in by_hour.get((tile, hour + 1), set())
                spanning += 1
    assert spanning > 10


def test_rush_hour_is_slower_than_the_night(two_days) -> None:
    stats, files = two_days
    paris_offset = CITIES[0][3]
    pace: dict[str, list[float]] = {"rush": [], "night": []}
    for key, fields in _rows(files):
        p = parse_key(key)
        if p is None or len(fields) != 10 or not fields[2].isdigit() or fields[4] in ("0", ""):
            continue
        if p.hour >= stats.first_hour + 24:  # Tuesday only: a weekday
            local = (p.hour + paris_offset) % 24
            if local == 8:
                pace["rush"].append(int(fields[2]) / int(fields[4]))
            elif local == 3:
                pace["night"].append(int(fields[2]) / int(fields[4]))
    assert len(pace["rush"]) > 3 * len(pace["night"])  # more traffic, too
    assert mean(pace["rush"]) > 1.3 * mean(pace["night"])


def test_modes_are_streams(two_days) -> None:
    stats, _ = two_days
    assert {"AUTO", "BUS"} <= set(stats.modes)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tiles"):
        sample_tiles(0)
    with pytest.raises(ValueError, match="days"):
        generate(tmp_path, tiles=1, days=0, seed=1)
