"""Vessel tracks: vessels and their identifiers, the file ledger and rejects, day-partitioned
position reports and their functions (issue 15), the definitions of
``sql/schema/tracks.sql`` applied by name; the downgrade drops what they made (the day
partitions go with their parent table).

Revision ID: 0017
Revises: 0016
"""

from alembic import op

from renderer import schema

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

NAMES = ["vessels", "identifiers", "files", "rejects", "reports", "reports_key",
         "reports_position", "reports_time", "partition", "days", "merge_vessels",
         "sample_bucket"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.tracks_bucket(timestamptz, integer),"
               " renderer.tracks_merge_vessels(integer, integer[]), renderer.tracks_days(),"
               " renderer.tracks_partition(date)")
    op.execute("DROP TABLE IF EXISTS tracks_reports, tracks_rejects, tracks_files,"
               " tracks_identifiers, tracks_vessels")
