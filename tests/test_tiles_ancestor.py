"""tiles.ancestor: the one level-0 (or coarser-level) ancestor rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderer import tiles
from renderer.tiles import Tile


@given(lon=st.floats(-180, 179.999), lat=st.floats(-90, 89.999))
def test_the_ancestor_holds_the_point(lon: float, lat: float) -> None:
    fine = tiles.tile(lon, lat, 2)
    assert tiles.ancestor(fine) == tiles.tile(lon, lat, 0)
    assert tiles.ancestor(fine, 1) == tiles.tile(lon, lat, 1)
    assert tiles.ancestor(fine, 2) == fine


def test_no_ancestor_at_a_finer_level() -> None:
    with pytest.raises(ValueError, match="finer level"):
        tiles.ancestor(Tile(0, 2140), 1)
