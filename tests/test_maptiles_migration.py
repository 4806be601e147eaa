"""Migration 0036 on a database with rendered tiles: the pieces and feature text rows of
each tile become its one tile_regions row (their order kept), and back."""

from __future__ import annotations

from collections.abc import Callable

from renderer import db, schema
from tests.test_schema import empty_database  # noqa: F401  (fixture)

PIECES = [  # z, x, y, region_id, geometry (None: covers), ord, feature text
    (5, 1, 2, 7, "POLYGON((0 0,1 0,1 1,0 0))", 2, '{"id":"B-7"'),
    (5, 1, 2, 3, None, 1, '{"id":"A-3"'),
    (5, 1, 2, 9, "POLYGON((0 0,2 0,2 2,0 0))", 3, '{"id":"C-9","x":"\\t"'),
    (6, 0, 0, 3, None, 1, '{"id":"A-3"'),
]


def _rows(conn: db.Connection) -> list[tuple[object, ...]]:
    return [tuple(r.values()) for r in conn.execute(
        "SELECT p.z, p.x, p.y, p.region_id, ST_AsText(p.geom) AS g, f.ord, f.feature"
        " FROM tile_pieces p JOIN tile_features f USING (z, x, y, region_id)"
        " ORDER BY p.z, p.x, p.y, f.ord")]


def test_pieces_and_feature_text_become_a_row_a_tile_and_back(
        empty_database: Callable[[], str]) -> None:  # noqa: F811
    url = empty_database()
    schema.upgrade(url, "0035")
    with db.connect(url) as conn:
        for z, x, y, rid, wkt, ord_, text in PIECES:
            conn.execute("INSERT INTO tile_pieces VALUES (%s, %s, %s, %s, %s,"
                         " ST_GeomFromText(%s, 3857))", [z, x, y, rid, wkt is None, wkt])
            conn.execute("INSERT INTO tile_features VALUES (%s, %s, %s, %s, %s, %s)",
                         [z, x, y, rid, ord_, text])
        conn.commit()
        before = _rows(conn)
    schema.upgrade(url, "0036")
    with db.connect(url) as conn:
        got = [tuple(r.values()) for r in conn.execute(
            "SELECT z, x, y, region_ids, (SELECT array_agg(ST_AsText(g) ORDER BY i)"
            " FROM unnest(geoms) WITH ORDINALITY u(g, i)) AS geoms, features"
            " FROM tile_regions ORDER BY z, x, y")]
    assert got == [
        (5, 1, 2, [3, 7, 9], [None, "POLYGON((0 0,1 0,1 1,0 0))", "POLYGON((0 0,2 0,2 2,0 0))"],
         ['{"id":"A-3"', '{"id":"B-7"', '{"id":"C-9","x":"\\t"']),
        (6, 0, 0, [3], [None], ['{"id":"A-3"'])]
    schema.downgrade(url, "0035")
    with db.connect(url) as conn:
        assert _rows(conn) == before
