"""Coverage of some levels with OpenTraffic's styling; fractional sensor speeds, exactly.

- ``renderer.traffic_coverage_geojson_v2(levels, opentraffic_style)``: the coverage document
  of some tile levels, optionally with OpenTraffic's styling properties. The old
  ``traffic_coverage_geojson()`` stays for workers older than this revision; v2 with its
  defaults returns the same bytes.
- Sensors (issue 13, item 6): ``sensors_raw.currentspeed`` (smallint km/h) becomes
  ``currentspeed_hundredths`` (integer, hundredths of km/h, 81.25 -> 8125), and
  ``sensors_enriched.currentspeed`` / ``previousspeed`` become double precision km/h.
  ``renderer.sensors_enrich_day`` keeps its name and signature (it is rewritten in place:
  workers older than this revision cannot ingest or enrich against the renamed column
  anyway, so a second name would only keep a function that fails). Existing partitions are
  rewritten by the type changes (one pass over each table).

Downgrade refuses while any raw speed has a fraction (smallint km/h cannot hold it).

Revision ID: 0014
Revises: 0011
"""

from alembic import op

from renderer import schema

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

NAMES = ["traffic_coverage_geojson_v2", "sensors_enrich_day"]


def upgrade() -> None:
    op.execute("ALTER TABLE sensors_raw RENAME COLUMN currentspeed TO currentspeed_hundredths")
    op.execute("ALTER TABLE sensors_raw ALTER COLUMN currentspeed_hundredths TYPE integer"
               " USING currentspeed_hundredths * 100")
    op.execute("ALTER TABLE sensors_raw RENAME CONSTRAINT sensors_raw_currentspeed_check"
               " TO sensors_raw_currentspeed_hundredths_check")
    op.execute("ALTER TABLE sensors_enriched ALTER COLUMN currentspeed TYPE double precision,"
               " ALTER COLUMN previousspeed TYPE double precision")
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM sensors_raw
                       WHERE mod(currentspeed_hundredths, 100) <> 0) THEN
                RAISE EXCEPTION 'sensors_raw holds fractional speeds, which smallint km/h'
                    ' cannot keep: remove those rows (or keep revision 0014)';
            END IF;
        END $$""")
    op.execute("DROP FUNCTION renderer.traffic_coverage_geojson_v2(integer[], boolean)")
    op.execute("DROP FUNCTION renderer.sensors_enrich_day(date)")
    schema.apply(op, ["sensors_enrich_day"], as_of=down_revision)
    op.execute("ALTER TABLE sensors_enriched ALTER COLUMN currentspeed TYPE smallint"
               " USING round(currentspeed)::smallint,"
               " ALTER COLUMN previousspeed TYPE smallint USING round(previousspeed)::smallint")
    op.execute("ALTER TABLE sensors_raw RENAME CONSTRAINT"
               " sensors_raw_currentspeed_hundredths_check TO sensors_raw_currentspeed_check")
    op.execute("ALTER TABLE sensors_raw ALTER COLUMN currentspeed_hundredths TYPE smallint"
               " USING currentspeed_hundredths / 100")
    op.execute("ALTER TABLE sensors_raw RENAME COLUMN currentspeed_hundredths TO currentspeed")
