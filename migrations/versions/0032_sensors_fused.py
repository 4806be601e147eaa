"""Sensors: a fresh day enriched by the ingest that brings it (renderer/sensors/fused.py).
``sensors_days.ingest_enriched`` keeps the raw version at which ingest enriched the day,
until the day's item has run (the item then does nothing). The previous ``CREATE TABLE`` is
in ``retired/sensors.sql`` as ``sensors_days@0031``.

Revision ID: 0032
Revises: 0031
"""

from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sensors_days ADD COLUMN ingest_enriched bigint")


def downgrade() -> None:
    op.execute("ALTER TABLE sensors_days DROP COLUMN ingest_enriched")
