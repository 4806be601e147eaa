"""Traffic speed tiles: a cheaper build (benchmark (a) of issue 5).

Revision ID: 0008
Revises: 0007

- A level-0 tile-week writes one ``traffic_speeds`` row per segment with 13 arrays, several
  KB each, so nearly every row is compressed and moved out of line (TOAST). With the default
  pglz that compression was about 1.5 s of a 14 s build of 50,000 segments; lz4 compresses
  the same arrays in a tenth of the time. Only new values use it: rows already written stay
  readable as they are. Servers built without lz4 keep pglz.
- ``renderer.traffic_duration_seconds`` runs once per histogram row (4.6 million in that
  build): a subscript of a constant array instead of a CASE of three comparisons, 0.35 s
  less. Same values (tested against ``renderer.binning.duration_seconds``).
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ARRAYS = ("hours", "observations", "speeds", "mean_speeds", "speed_variances", "prevalences",
          "next_hours", "next_ids", "next_counts", "delays", "delay_variances", "queue_lengths",
          "queue_length_variances")


def _seconds(code: int) -> int:
    """The lower bound (s) of a duration bucket, as renderer.binning.duration_seconds."""
    klass = code >> 6
    return (0, 64, 192, 512)[klass] + (code & 63) * (1, 2, 5, 10)[klass]


def _duration_function(body: str) -> str:
    # LANGUAGE sql, no FROM, not STRICT: the planner inlines it
    return f"""
        CREATE OR REPLACE FUNCTION renderer.traffic_duration_seconds(code integer)
        RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ {body} $$
    """


SECONDS = ",".join(str(_seconds(code)) for code in range(256))
CASE = """SELECT CASE code >> 6
                     WHEN 0 THEN code
                     WHEN 1 THEN 64 + (code & 63) * 2
                     WHEN 2 THEN 192 + (code & 63) * 5
                     ELSE 512 + (code & 63) * 10
                   END"""


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
    op.execute(_duration_function(f"SELECT ('{{{SECONDS}}}'::integer[])[code + 1]"))


def downgrade() -> None:
    op.execute(_duration_function(CASE))
    op.execute(_set_compression("default"))
