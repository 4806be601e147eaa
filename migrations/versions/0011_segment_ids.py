"""Segment-id fields by name: renderer.segment_tile_id and friends, traffic_known_segments.

The tile-id mask (0x1FFFFFF), the segment-index shift (25) and the level bits (& 7) were
bare numbers in the named statements; these inlined IMMUTABLE SQL functions name them once,
and the view names the "highest known segment index per tile" both tile summaries read.
New objects only: nothing that runs changes meaning.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

from renderer import schema

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NAMES = ["segment_tile_id", "segment_index", "tile_level", "tile_index", "tile_id",
         "traffic_known_segments"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS traffic_known_segments")
    op.execute("DROP FUNCTION IF EXISTS renderer.tile_id(integer, integer),"
               " renderer.tile_index(integer), renderer.tile_level(integer),"
               " renderer.segment_index(bigint), renderer.segment_tile_id(bigint)")
