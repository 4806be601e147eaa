"""Sensors day enrichment in two halves around its computation (issue 16): the lock,
version and fresh table (``renderer.sensors_enrich_begin``) and the key and swap
(``renderer.sensors_enrich_end``), so that the C engine of renderer/sensors/enrich_c.py
computes between them over binary COPY; ``renderer.sensors_enrich_day`` is rewritten on the
two, with the same behaviour (its previous text: ``retired/sensors.sql``).

Revision ID: 0024
Revises: 0020
"""

from alembic import op

from renderer import schema

revision = "0024"
down_revision = "0020"
branch_labels = None
depends_on = None

NAMES = ["sensors_enrich_begin", "sensors_enrich_end", "sensors_enrich_day"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    schema.apply(op, ["sensors_enrich_day"], as_of=down_revision)
    op.execute("DROP FUNCTION renderer.sensors_enrich_end(date, bigint, bigint)")
    op.execute("DROP FUNCTION renderer.sensors_enrich_begin(date)")
