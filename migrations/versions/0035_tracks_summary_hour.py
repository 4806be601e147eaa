"""Vessel tracks: a BRIN index on the hourly summary's hour (``tracks_summary_hour``), for
the short first span of area queries (their first rows). A new index only: the previous
release does not need it, and builds it on a day's summary attached during a rolling deploy
(ATTACH builds the parent's indexes).

Revision ID: 0035
Revises: 0034
"""

from alembic import op

from renderer import schema

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None

NAMES = ["summary_hour"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS tracks_summary_hour")
