"""Map tiles: regions, their per-zoom shapes, tile pieces, feature text, statistics.

Applies the named blocks of ``sql/schema/maptiles.sql`` (the canonical DDL) in file order;
the downgrade drops what they made, in reverse. The tiny loader below reads the blocks until
the shared loader of the engine takes its place.

Revision ID: 0012
Revises: 0010
"""

import re
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

SCHEMA = Path(__file__).resolve().parents[2] / "sql" / "schema" / "maptiles.sql"
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)

# What each block made, dropped in reverse order on downgrade.
DROPS = {
    "region_types": "DROP TABLE IF EXISTS region_types",
    "regions": "DROP TABLE IF EXISTS regions",
    "region_rejects": "DROP TABLE IF EXISTS region_rejects",
    "region_arcs": "DROP TABLE IF EXISTS region_arcs",
    "region_shapes": "DROP TABLE IF EXISTS region_shapes",
    "tile_pieces": "DROP TABLE IF EXISTS tile_pieces",
    "tile_features": "DROP TABLE IF EXISTS tile_features",
    "tiles": "DROP TABLE IF EXISTS tiles",
    "region_stats": "DROP TABLE IF EXISTS region_stats",
    "tile_function": "DROP FUNCTION IF EXISTS renderer.maptiles_tile(integer, integer, integer)",
}


def blocks() -> list[tuple[str, str]]:
    """(name, SQL) of each block of the schema file, in file order."""
    parts = _NAME.split(SCHEMA.read_text())
    return [(name, body.strip()) for name, body in zip(parts[1::2], parts[2::2], strict=True)]


def upgrade() -> None:
    for name, body in blocks():
        if name not in DROPS:
            raise RuntimeError(f"{SCHEMA.name}: block {name!r} has no downgrade in 0012")
        # Colons escaped: text() would take `"pop":123` in a comment for a bind parameter.
        op.execute(sa.text(body.replace(":", "\\:")))


def downgrade() -> None:
    for name, _ in reversed(blocks()):
        op.execute(DROPS[name])
