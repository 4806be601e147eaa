"""Map tiles: cheaper block writes. The per-row foreign keys of ``tile_pieces`` and
``tile_features`` on ``regions`` are dropped (their checks were the dearest write of a
block: one lookup per piece and per feature text, about twenty a tile), and a statement
trigger on ``regions`` deletes the pieces and feature text of deleted regions as ON DELETE
CASCADE did (``maptiles_regions_deleted``, ``regions_deleted``). ``tiles.utfgrids`` is
compressed with lz4 instead of pglz (new rows; the text is the same). A tile's body is
``maptiles_tile_body``, a set-returning SQL function that a caller's plan inlines (the
scalar ``maptiles_tile`` planned its body on every call); ``maptiles_tile`` keeps its name
and behaviour and now reads it. The previous texts are in ``retired/maptiles.sql`` as
``@0030``.

Revision ID: 0031
Revises: 0030
"""

from alembic import op

from renderer import schema

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

NAMES = ["maptiles_regions_deleted", "regions_deleted", "maptiles_tile_body",
         "maptiles_tile"]


def upgrade() -> None:
    op.execute("ALTER TABLE tile_pieces DROP CONSTRAINT tile_pieces_region_id_fkey")
    op.execute("ALTER TABLE tile_features DROP CONSTRAINT tile_features_region_id_fkey")
    op.execute("ALTER TABLE tiles ALTER COLUMN utfgrids SET COMPRESSION lz4")
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP FUNCTION renderer.maptiles_tile(integer, integer, integer)")
    schema.apply(op, ["maptiles_tile"], as_of=down_revision)
    op.execute("DROP FUNCTION renderer.maptiles_tile_body(integer, integer, integer)")
    op.execute("DROP TRIGGER IF EXISTS regions_deleted ON regions")
    op.execute("DROP FUNCTION IF EXISTS renderer.maptiles_regions_deleted()")
    op.execute("ALTER TABLE tiles ALTER COLUMN utfgrids SET COMPRESSION pglz")
    for table in ("tile_pieces", "tile_features"):
        op.execute(f"DELETE FROM {table} t WHERE NOT EXISTS"
                   f" (SELECT FROM regions r WHERE r.id = t.region_id)")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_region_id_fkey"
                   f" FOREIGN KEY (region_id) REFERENCES regions ON DELETE CASCADE")
