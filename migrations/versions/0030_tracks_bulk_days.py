"""Vessel tracks: a day's first load goes into a table of its own and is attached after,
so its indexes are built in one sorted pass instead of row by row
(``renderer.tracks_bulk_day``, ``renderer.tracks_attach_day``); and the bounding-box
condition of the queries, written once as an inlinable SQL function
(``renderer.tracks_in_box``). New functions only: the previous release does not call them.

Revision ID: 0030
Revises: 0027
"""

from alembic import op

from renderer import schema

revision = "0030"
down_revision = "0027"
branch_labels = None
depends_on = None

NAMES = ["bulk_day", "attach_day", "in_box"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.tracks_bulk_day(date),"
               " renderer.tracks_attach_day(date),"
               " renderer.tracks_in_box(float8, float8, float8, float8, float8, float8,"
               " float8, float8)")
