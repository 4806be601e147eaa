"""Sensors: the day page's figures per detector (``sensors_day_detectors``), written by the
day's enrichment, cleared by a trigger whenever sensors_days records a new enrichment. The
days enriched before get theirs from the page's first view of them (sql/web_sensors.sql,
day_fill; about 2 s for a 1,000-detector day), not here: a year of days would hold this
migration's locks for 12 minutes. (This migration filled them itself when first released;
a database upgraded then has its rows, and either way the rows are the same.) No function
changes behaviour: the previous release's workers keep calling renderer.sensors_enrich_end,
whose update of sensors_days clears the day's rows, and the previous release's page
aggregates a day without rows as before.

Revision ID: 0038
Revises: 0037
"""

from alembic import op

from renderer import schema

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None

NAMES = ["sensors_day_detectors", "sensors_day_detectors_clear", "sensors_days_enriched",
         "sensors_day_detectors_fill"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS sensors_days_enriched ON sensors_days")
    op.execute("DROP FUNCTION IF EXISTS renderer.sensors_day_detectors_clear()")
    op.execute("DROP FUNCTION IF EXISTS renderer.sensors_day_detectors_fill(date)")
    op.execute("DROP TABLE IF EXISTS sensors_day_detectors")
