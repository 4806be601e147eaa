"""Vessel tracks: an hourly summary of the reports (each vessel's first report per UTC hour,
with the hour's last time and the box of its positions) that sampled queries at 1 h and
coarser read instead of every report (``tracks_summary``, partitioned by day like the
reports; ``renderer.tracks_summary_day``, ``renderer.tracks_summary_refresh``, and the box
conditions ``renderer.tracks_box_meets``, ``renderer.tracks_box_within``). The days already
stored are summarised here. New objects only: the previous release does not read them, but
late reports it stores during a rolling deploy are not in the summary; run the upgrade with
ingest stopped.

Revision ID: 0034
Revises: 0032
"""

from alembic import op

from renderer import schema

revision = "0034"
down_revision = "0032"
branch_labels = None
depends_on = None

NAMES = ["summary", "summary_area", "summary_day", "summary_refresh", "box_meets",
         "box_within"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)
    op.execute("SELECT renderer.tracks_summary_day(d) FROM renderer.tracks_days() AS d")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.tracks_summary_day(date),"
               " renderer.tracks_summary_refresh(integer[], timestamptz[]),"
               " renderer.tracks_box_meets(box, float8, float8, float8, float8, float8,"
               " float8),"
               " renderer.tracks_box_within(box, float8, float8, float8, float8, float8,"
               " float8)")
    op.execute("DROP TABLE IF EXISTS tracks_summary")
