"""Map tiles: regions, their per-zoom shapes, tile pieces, feature text, statistics.

New objects only (``sql/schema/maptiles.sql``), applied by name as of this revision; the
downgrade drops what they made, in reverse.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

from renderer import schema

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NAMES = ["region_types", "regions", "regions_merc", "region_rejects", "region_arcs",
         "region_shapes", "region_shapes_geom", "tile_pieces", "tile_features", "tiles",
         "region_stats", "maptiles_tile"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.maptiles_tile(integer, integer, integer)")
    for kind, name in reversed(schema.relations(NAMES, as_of=revision)):
        op.execute(f"DROP {kind} IF EXISTS {name}")
