"""Traffic speed tiles: cheaper writes of the speed rows.

Revision ID: 0008
Revises: 0007

A level-0 tile-week writes one ``traffic_speeds`` row per segment with 13 arrays, several KB
each, so nearly every row is compressed and moved out of line (TOAST). With the default pglz
that compression was about 1.5 s of a 14 s build of 50,000 segments (benchmark (a) of issue
5); lz4 compresses the same arrays in a tenth of the time. Only new values use it: rows
already written stay readable as they are. Servers built without lz4 keep pglz.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ARRAYS = ("hours", "observations", "speeds", "mean_speeds", "speed_variances", "prevalences",
          "next_hours", "next_ids", "next_counts", "delays", "delay_variances", "queue_lengths",
          "queue_length_variances")


def _set_compression(method: str) -> str:
    columns = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION {method}" for c in ARRAYS)
    return f"ALTER TABLE traffic_speeds {columns}"


def upgrade() -> None:
    # a DO block, not a query from Python, so the offline DDL (renderer db sql) has it too
    op.execute(f"""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression'
                                                   AND 'lz4' = ANY(enumvals)) THEN
                EXECUTE '{_set_compression("lz4")}';
            END IF;
        END $$
    """)


def downgrade() -> None:
    op.execute(_set_compression("default"))
