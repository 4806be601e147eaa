"""Map tiles: a tile's regions in one row. ``tile_pieces`` (a row a piece) and
``tile_features`` (a row a feature text) become ``tile_regions``, one row a tile with the
regions' ids, pieces and feature text as arrays in the same order (larger regions first,
as ``tile_features.ord`` had it): their rows, each with its primary key's B-tree entry and
WAL record, were most of a block's writes. The rows rendered so far are carried over. The
served body (``maptiles_tile_body``) and the trigger that removes a deleted region's pieces
(``maptiles_regions_deleted``) read and write the new table, with the same behaviour; their
previous texts are in ``retired/maptiles.sql`` as ``@0035``.

A rolling deploy: workers of the previous release write the dropped tables, so their
block items fail once this is applied (and are retried); upgrade the map-tile workers with
the schema, or run ``renderer tiles render`` again after the upgrade.

Revision ID: 0036
Revises: 0035
"""

from alembic import op

from renderer import schema

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None

NAMES = ["tile_regions", "tile_regions_compression", "maptiles_regions_deleted",
         "maptiles_tile_body"]


def upgrade() -> None:
    schema.apply(op, ["tile_regions", "tile_regions_compression"], as_of=revision)
    op.execute("""
        INSERT INTO tile_regions (z, x, y, region_ids, geoms, features)
        SELECT f.z, f.x, f.y, array_agg(f.region_id ORDER BY f.ord),
               array_agg(p.geom ORDER BY f.ord), array_agg(f.feature ORDER BY f.ord)
        FROM tile_features f
        JOIN tile_pieces p USING (z, x, y, region_id)
        GROUP BY f.z, f.x, f.y
    """)
    schema.apply(op, ["maptiles_regions_deleted", "maptiles_tile_body"], as_of=revision)
    op.execute("DROP TABLE tile_pieces, tile_features")


def downgrade() -> None:
    schema.apply(op, ["tile_pieces", "tile_features"], as_of=down_revision)
    op.execute("""
        INSERT INTO tile_pieces (z, x, y, region_id, covers, geom)
        SELECT t.z, t.x, t.y, u.region_id, u.geom IS NULL, u.geom
        FROM tile_regions t, unnest(t.region_ids, t.geoms) AS u(region_id, geom)
    """)
    op.execute("""
        INSERT INTO tile_features (z, x, y, region_id, ord, feature)
        SELECT t.z, t.x, t.y, u.region_id, u.n, u.feature
        FROM tile_regions t,
             unnest(t.region_ids, t.features) WITH ORDINALITY AS u(region_id, feature, n)
    """)
    op.execute("DROP TRIGGER regions_deleted ON regions")
    op.execute("DROP FUNCTION renderer.maptiles_regions_deleted()")
    op.execute("DROP FUNCTION renderer.maptiles_tile_body(integer, integer, integer)")
    schema.apply(op, ["maptiles_regions_deleted", "regions_deleted", "maptiles_tile_body"],
                 as_of=down_revision)
    op.execute("DROP TABLE tile_regions")
