"""Bounding boxes: one parser for the CLI and the HTTP run API, antimeridian-aware."""

from __future__ import annotations

import pytest

from renderer import tiles
from renderer.bbox import BBox, parse_bbox
from renderer.config import Settings
from renderer.db import Database
from renderer.errors import InputError
from renderer.queue import list_sets
from renderer.tiles import Tile
from renderer.traffic.profile import start_speedtiles


def test_text_and_lists_parse_alike() -> None:
    assert parse_bbox("100,0,108,8") == parse_bbox([100, 0, 108, 8]) == BBox(100, 0, 108, 8)
    assert parse_bbox(parse_bbox("1,2,3,4")) == BBox(1, 2, 3, 4)
    assert parse_bbox("5,5,5,5").overlaps(tiles.tile(5, 5, 0))  # a point


def test_a_box_across_the_antimeridian() -> None:
    box = parse_bbox("170,-10,-170,10")
    assert box.crosses_antimeridian and box.spans() == [(170, 180), (-180, -170)]
    west_of_180, east_of_minus_180 = tiles.tile(179, 0, 0), tiles.tile(-179, 0, 0)
    assert box.overlaps(west_of_180) and box.overlaps(east_of_minus_180)
    assert not box.overlaps(tiles.tile(0, 0, 0))
    assert {t.index for t in box.tiles(0)} >= {west_of_180.index, east_of_minus_180.index}
    assert Tile(0, tiles.tile(0, 0, 0).index) not in set(box.tiles(0))


@pytest.mark.parametrize("value,why", [
    ("1,2,3", "four numbers"), ([1, 2, 3, True], "four numbers"), ("a,b,c,d", "not numbers"),
    ([0, 0, 181, 1], "out of range"), ([0, -91, 1, 1], "out of range"),
    ("0,10,1,5", "north of"), ("nan,0,1,1", "out of range"),
])
def test_bad_boxes_say_why(value: object, why: str) -> None:
    with pytest.raises(InputError, match=f"invalid bbox .*{why}"):
        parse_bbox(value)  # type: ignore[arg-type]


def test_the_http_run_accepts_what_the_cli_accepts(db: Database) -> None:
    """The speed-tile run of POST /api/runs takes an antimeridian box (it used to refuse
    one the CLI took)."""
    with db.connect() as conn:
        set_id = start_speedtiles(conn, {"week": "2016-W44", "bbox": [170, -10, -170, 10]},
                                  Settings())
        [found] = list_sets(conn, set_id=set_id)
    assert found["info"]["bbox"] == [170, -10, -170, 10]
