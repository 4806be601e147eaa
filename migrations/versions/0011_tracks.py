"""Vessel tracks: vessels and their identifiers, the file ledger and rejects, day-partitioned
position reports and their functions (issue 15).

The definitions are the named blocks of ``sql/schema/tracks.sql``, applied in file order;
the downgrade drops them in reverse. The loader below is a stand-in for the schema helper's
shared loader of named blocks (to be switched when the engine's baseline lands).

Revision ID: 0011
Revises: 0010
"""

import re
from pathlib import Path

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SCHEMA = Path(__file__).resolve().parents[2] / "sql" / "schema" / "tracks.sql"
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)

# What each block made, dropped in reverse order (indexes go with their tables).
DROPS = {
    "sample_bucket": "DROP FUNCTION IF EXISTS renderer.tracks_bucket(timestamptz, integer)",
    "merge_vessels": "DROP FUNCTION IF EXISTS renderer.tracks_merge_vessels(integer, integer[])",
    "days": "DROP FUNCTION IF EXISTS renderer.tracks_days()",
    "partition": "DROP FUNCTION IF EXISTS renderer.tracks_partition(date)",
    "reports_time": None,
    "reports_position": None,
    "reports_key": None,
    "reports": "DROP TABLE IF EXISTS tracks_reports",
    "rejects": "DROP TABLE IF EXISTS tracks_rejects",
    "files": "DROP TABLE IF EXISTS tracks_files",
    "identifiers": "DROP TABLE IF EXISTS tracks_identifiers",
    "vessels": "DROP TABLE IF EXISTS tracks_vessels",
}


def blocks() -> list[tuple[str, str]]:
    """The named blocks of the schema file, in order."""
    parts = _NAME.split(SCHEMA.read_text())
    return [(name, body.strip()) for name, body in zip(parts[1::2], parts[2::2], strict=True)]


def upgrade() -> None:
    for _, body in blocks():
        op.execute(body)


def downgrade() -> None:
    for name, _ in reversed(blocks()):
        drop = DROPS[name]
        if drop:
            op.execute(drop)
