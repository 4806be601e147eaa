"""Traffic speeds: the per-hour values other than hours, observations and speeds, and every
per-(hour, next segment) value, packed as fixed-width big-endian records in two ``bytea``
columns (``hour_values``, ``nexts``; renderer/traffic/speedtile_pack.py), plus the row's
``total_observations``: a tile-week's write parses no array elements (BENCHMARKS.md, wave
8). Existing rows are converted in place. ``renderer.traffic_packed_int`` reads the records
in SQL. The previous ``CREATE TABLE`` and compression block are in
``retired/traffic.sql`` as ``traffic_speeds@0035`` and ``traffic_speeds_compression@0035``.

Revision ID: 0037
Revises: 0036
"""

from alembic import op

from renderer import schema

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

NAMES = ["traffic_speeds_compression", "traffic_packed_int"]

_PACK = """
UPDATE traffic_speeds s
   SET hour_values = coalesce((
           SELECT string_agg(int2send(m) || int4send(v) || int2send(p)
                             || int2send((SELECT count(*) FROM unnest(s.next_hours) n
                                           WHERE n = h)::smallint), ''::bytea ORDER BY k)
             FROM unnest(s.hours, s.mean_speeds, s.speed_variances, s.prevalences)
                  WITH ORDINALITY AS u(h, m, v, p, k)), ''::bytea),
       nexts = coalesce((
           SELECT string_agg(int2send(h) || int8send(coalesce(i, -9223372036854775808))
                             || int8send(c) || int4send(d) || int8send(dv) || int4send(q)
                             || int8send(qv), ''::bytea ORDER BY k)
             FROM unnest(s.next_hours, s.next_ids, s.next_counts, s.delays,
                         s.delay_variances, s.queue_lengths, s.queue_length_variances)
                  WITH ORDINALITY AS u(h, i, c, d, dv, q, qv, k)), ''::bytea),
       total_observations = coalesce((SELECT sum(o) FROM unnest(s.observations) o), 0)
"""

_OLD = ("mean_speeds", "speed_variances", "prevalences", "next_hours", "next_ids",
        "next_counts", "delays", "delay_variances", "queue_lengths", "queue_length_variances")


def upgrade() -> None:
    op.execute("ALTER TABLE traffic_speeds ADD COLUMN hour_values bytea,"
               " ADD COLUMN nexts bytea, ADD COLUMN total_observations bigint")
    op.execute(_PACK)
    op.execute("ALTER TABLE traffic_speeds ALTER COLUMN hour_values SET NOT NULL,"
               " ALTER COLUMN nexts SET NOT NULL,"
               " ALTER COLUMN total_observations SET NOT NULL, "
               + ", ".join(f"DROP COLUMN {c}" for c in _OLD))
    schema.apply(op, NAMES, as_of=revision)


def _unpack(column: str, record: int, at: int, width: int, cast: str) -> str:
    field = f"renderer.traffic_packed_int({column}, {record} * k + {at}, {width})"
    if column == "nexts" and at == 2:  # the next segment id: -2^63 is none
        field = f"nullif({field}, -9223372036854775808)"
    return (f"ARRAY(SELECT {field}::{cast} FROM generate_series(0, length({column}) / {record}"
            f" - 1) AS k ORDER BY k)")


def downgrade() -> None:
    types = {"mean_speeds": "smallint", "speed_variances": "integer", "prevalences": "smallint",
             "next_hours": "smallint", "next_ids": "bigint", "next_counts": "bigint",
             "delays": "integer", "delay_variances": "bigint", "queue_lengths": "integer",
             "queue_length_variances": "bigint"}
    op.execute("ALTER TABLE traffic_speeds "
               + ", ".join(f"ADD COLUMN {c} {t}[]" for c, t in types.items()))
    fields = {"mean_speeds": ("hour_values", 10, 0, 2), "speed_variances": ("hour_values", 10, 2, 4),
              "prevalences": ("hour_values", 10, 6, 2), "next_hours": ("nexts", 42, 0, 2),
              "next_ids": ("nexts", 42, 2, 8), "next_counts": ("nexts", 42, 10, 8),
              "delays": ("nexts", 42, 18, 4), "delay_variances": ("nexts", 42, 22, 8),
              "queue_lengths": ("nexts", 42, 30, 4),
              "queue_length_variances": ("nexts", 42, 34, 8)}
    op.execute("UPDATE traffic_speeds SET "
               + ", ".join(f"{c} = {_unpack(*fields[c], types[c])}" for c in types))
    op.execute("ALTER TABLE traffic_speeds "
               + ", ".join(f"ALTER COLUMN {c} SET NOT NULL" for c in types)
               + ", DROP COLUMN hour_values, DROP COLUMN nexts, DROP COLUMN total_observations")
    op.execute("DROP FUNCTION IF EXISTS renderer.traffic_packed_int(bytea, integer, integer)")
    schema.apply(op, ["traffic_speeds_compression"], as_of=down_revision)
