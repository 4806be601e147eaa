"""Our PMTiles writer against the pmtiles package's: the same archive, byte for byte, and
the package's reader reads it."""

from __future__ import annotations

import io
import itertools
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pmtiles.reader import MemorySource, Reader, all_tiles
from pmtiles.tile import Compression, TileType, tileid_to_zxy, zxy_to_tileid
from pmtiles.writer import Writer as PackageWriter

from renderer.maptiles import archive

HEADER = {"tile_type": TileType.MVT, "tile_compression": Compression.GZIP,
          "min_lon_e7": -400000000, "min_lat_e7": 380000000, "max_lon_e7": -395000000,
          "max_lat_e7": 383750000, "center_zoom": 4}
META = {"name": "regions", "format": "pbf", "vector_layers": [{"id": "regions"}]}


def _both(tiles: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    out = []
    for cls in (PackageWriter, archive.Writer):
        f = io.BytesIO()
        w: Any = cls(f)
        for tileid, data in tiles:
            w.write_tile(tileid, data)
        w.finalize(dict(HEADER), META)
        out.append(f.getvalue())
    return out[0], out[1]


@st.composite
def tile_sets(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    """Tiles in id order, some ids consecutive (runs), some bodies repeated."""
    ids = sorted(draw(st.sets(st.integers(0, 5000), min_size=1, max_size=300)))
    bodies = draw(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=5))
    return [(i, bodies[draw(st.integers(0, len(bodies) - 1))]) for i in ids]


@settings(max_examples=60, deadline=None)
@given(tile_sets())
def test_the_same_archive_as_the_package_writes(tiles: list[tuple[int, bytes]]) -> None:
    theirs, ours = _both(tiles)
    assert ours == theirs
    got = dict(all_tiles(MemorySource(ours)))
    assert len(got) == len(tiles)


def test_leaf_directories_as_the_package_makes_them() -> None:
    # enough entries (no two tiles alike, ids and lengths irregular) that the root needs
    # leaves
    rng = random.Random(5)
    ids = list(itertools.accumulate(rng.randrange(1, 1000) for _ in range(60000)))
    tiles = [(t, i.to_bytes(4, "little") * rng.randrange(1, 9)) for i, t in enumerate(ids)]
    theirs, ours = _both(tiles)
    assert ours == theirs
    reader = Reader(MemorySource(ours))
    assert reader.header()["leaf_directory_length"] > 0
    tileid, data = tiles[41234]
    assert reader.get(*tileid_to_zxy(tileid)) == data


@given(st.lists(st.integers(0, 26).flatmap(
    lambda z: st.tuples(st.just(z), st.integers(0, 2**z - 1), st.integers(0, 2**z - 1))),
    min_size=1, max_size=50))
def test_tile_ids_are_the_packages(keys: list[tuple[int, int, int]]) -> None:
    ids = archive.tileids([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    assert ids.tolist() == [zxy_to_tileid(*k) for k in keys]
