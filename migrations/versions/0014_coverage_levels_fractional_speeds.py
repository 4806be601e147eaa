"""Coverage of some levels with OpenTraffic's styling.

- ``renderer.traffic_coverage_geojson_v2(levels, opentraffic_style)``: the coverage document
  of some tile levels, optionally with OpenTraffic's styling properties. The old
  ``traffic_coverage_geojson()`` stays for workers older than this revision; v2 with its
  defaults returns the same bytes.

Revision ID: 0014
Revises: 0011
"""

from alembic import op

from renderer import schema

revision = "0014"
down_revision = "0011"
branch_labels = None
depends_on = None

NAMES = ["traffic_coverage_geojson_v2"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP FUNCTION renderer.traffic_coverage_geojson_v2(integer[], boolean)")
