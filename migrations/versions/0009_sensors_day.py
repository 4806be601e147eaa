"""Sensors: a day is enriched into a fresh table that replaces its partition at commit.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The day's enriched rows, shared by the new function and the 0005 one restored on downgrade:
# RANGE windows over time (a missing minute shortens a window instead of stretching it),
# sum/count in integers so that the 40 and 250 km/h tests are exact, and the previous speed
# of a detector's first record from an index probe when the 600 s of context have none.
# Ordering the windows by an integer epoch instead of the timestamp was measured: its cheaper
# in_range saves about 2 % of the day (perf: in_range_timestamptz_interval 1.9 %), less than
# the sort it would need, since the key index orders by the timestamp.
ENRICHED_ROWS = r"""
    SELECT uniqueid, recordtimestamp, currentspeed, bezettingsgraad, previousspeed,
           CASE WHEN n2 = 0 THEN -1          -- no speed in the window
                WHEN s2 <= 40 * n2 THEN 1    -- mean <= 40
                WHEN s2 <= 250 * n2 THEN 0   -- 40 < mean <= 250
                ELSE -1 END,                 -- implausible
           trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
           trafficintensityclass4, trafficintensityclass5,
           CASE WHEN currentspeed - previousspeed >= 20 THEN 1
                WHEN currentspeed - previousspeed <= -20 THEN -1
                ELSE 0 END,                  -- also when either is missing
           s2::float8 / nullif(n2, 0), s10::float8 / nullif(n10, 0)
    FROM (
        SELECT w.*,
               CASE WHEN prev_at IS NOT NULL THEN prev ELSE (
                   SELECT r.currentspeed FROM sensors_raw r
                   WHERE r.uniqueid = w.uniqueid
                     AND r.recordtimestamp < $1 - interval '600 seconds'
                   ORDER BY r.recordtimestamp DESC LIMIT 1) END AS previousspeed
        FROM (
            SELECT r.*,
                   lag(currentspeed) OVER w10 AS prev,
                   lag(recordtimestamp) OVER w10 AS prev_at,
                   sum(currentspeed) OVER w2 AS s2, count(currentspeed) OVER w2 AS n2,
                   sum(currentspeed) OVER w10 AS s10, count(currentspeed) OVER w10 AS n10
            FROM sensors_raw r
            WHERE r.recordtimestamp >= $1 - interval '600 seconds'
              AND r.recordtimestamp < $1 + interval '24 hours'
            WINDOW w AS (PARTITION BY uniqueid ORDER BY recordtimestamp),
                   w2 AS (w RANGE BETWEEN '120 seconds' PRECEDING AND CURRENT ROW),
                   w10 AS (w RANGE BETWEEN '600 seconds' PRECEDING AND CURRENT ROW)
        ) w
        WHERE w.recordtimestamp >= $1
        OFFSET 0  -- compute previousspeed once, not once per use below
    ) e
"""

COLUMNS = """uniqueid, recordtimestamp, currentspeed, bezettingsgraad,
                    previousspeed, trafficjamindicator, trafficintensityclass1,
                    trafficintensityclass2, trafficintensityclass3,
                    trafficintensityclass4, trafficintensityclass5,
                    speeddiffindicator, avgspeed2minutes, avgspeed10minutes"""

MARK_DAY = """
    INSERT INTO sensors_days AS s (day, raw_version, enriched_version, enriched_rows,
                                   enriched_at)
    VALUES (p_day, 0, coalesce(version, 0), n, now())
    ON CONFLICT (day) DO UPDATE
    SET enriched_version = coalesce(version, 0), enriched_rows = n, enriched_at = now();
"""


def upgrade() -> None:
    # The columns, NOT NULLs and CHECKs of sensors_enriched, read from the catalog: CREATE
    # TABLE ... (LIKE) would hold ACCESS SHARE on the parent until commit, and two reruns
    # ending together would then deadlock on each other's DROP of their old partition.
    op.execute("""
        CREATE FUNCTION renderer.sensors_enriched_ddl(p_name text) RETURNS text
        LANGUAGE sql STABLE AS $$
            SELECT format('CREATE TABLE %I (%s)', p_name, string_agg(d, ', ' ORDER BY k, n))
            FROM (SELECT 1, attnum::int, format('%I %s%s', attname,
                         format_type(atttypid, atttypmod),
                         CASE WHEN attnotnull THEN ' NOT NULL' ELSE '' END)
                  FROM pg_attribute
                  WHERE attrelid = 'sensors_enriched'::regclass AND attnum > 0
                    AND NOT attisdropped
                  UNION ALL
                  SELECT 2, 0, format('CONSTRAINT %I %s', conname, pg_get_constraintdef(oid))
                  FROM pg_constraint
                  WHERE conrelid = 'sensors_enriched'::regclass AND contype = 'c') AS c(k, n, d)
        $$
    """)
    # The day goes into a table made in this transaction (with wal_level=minimal neither its
    # rows nor its index are WAL-logged), its key is built once the rows are in (a sorted
    # build of rows already in key order: a fifth of the cost of inserting into the index row
    # by row), and it replaces the day's partition at the very end: DROP of the old one (a
    # rerun; ACCESS EXCLUSIVE on sensors_enriched until commit) and ATTACH (SHARE UPDATE
    # EXCLUSIVE, which the bounds CHECK spares the validation scan). The locks on the parent
    # come last, so days compute in parallel and only their last instants queue; the lock
    # order (day, then parent, then the queue rows of the caller) is the same everywhere, so
    # days never deadlock. Readers see the old day or the new one, never a part.
    op.execute(rf"""
        CREATE OR REPLACE FUNCTION renderer.sensors_enrich_day(p_day date) RETURNS bigint
        LANGUAGE plpgsql AS $fn$
        DECLARE
            part    text := 'sensors_enriched_' || to_char(p_day, 'YYYYMMDD');
            fresh   text := part || '_new';
            lo      timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
            version bigint;
            n       bigint;
        BEGIN
            -- one writer per day: a second waits here, then replaces the first one's day
            PERFORM pg_advisory_xact_lock(hashtext(fresh));
            -- read before computing: a change committed meanwhile leaves the day marked
            SELECT raw_version INTO version FROM sensors_days WHERE day = p_day;
            -- a day is sorted and windowed in memory; give it room. Its key is built by this
            -- process alone: the worker pool already keeps every core busy, and parallel
            -- builders cost 8 % more CPU for a day's index
            PERFORM set_config('work_mem', '256MB', true);
            PERFORM set_config('max_parallel_maintenance_workers', '0', true);
            EXECUTE renderer.sensors_enriched_ddl(fresh);
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (recordtimestamp >= %L'
                           ' AND recordtimestamp < %L)', fresh, part || '_bounds',
                           lo, lo + interval '24 hours');
            EXECUTE format($q$
                INSERT INTO %I ({COLUMNS})
                {ENRICHED_ROWS}
            $q$, fresh) USING lo;
            GET DIAGNOSTICS n = ROW_COUNT;
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY'
                           ' (uniqueid, recordtimestamp)', fresh, fresh || '_pkey');
            {MARK_DAY}
            IF to_regclass(part) IS NOT NULL THEN
                EXECUTE format('DROP TABLE %I', part);
            END IF;
            EXECUTE format('ALTER TABLE %I RENAME TO %I', fresh, part);
            EXECUTE format('ALTER INDEX %I RENAME TO %I', fresh || '_pkey', part || '_pkey');
            EXECUTE format('ALTER TABLE sensors_enriched ATTACH PARTITION %I'
                           ' FOR VALUES FROM (%L) TO (%L)', part, lo, lo + interval '24 hours');
            RETURN n;
        END $fn$
    """)


def downgrade() -> None:
    # the 0005 definition: TRUNCATE the partition and refill it, key maintained row by row
    op.execute(rf"""
        CREATE OR REPLACE FUNCTION renderer.sensors_enrich_day(p_day date) RETURNS bigint
        LANGUAGE plpgsql AS $fn$
        DECLARE
            part    text := renderer.sensors_day_partition(p_day);
            lo      timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
            version bigint;
            n       bigint;
        BEGIN
            SELECT raw_version INTO version FROM sensors_days WHERE day = p_day;
            PERFORM set_config('work_mem', '256MB', true);
            EXECUTE format('TRUNCATE %I', part);
            EXECUTE format($q$
                INSERT INTO %I ({COLUMNS})
                {ENRICHED_ROWS}
            $q$, part) USING lo;
            GET DIAGNOSTICS n = ROW_COUNT;
            {MARK_DAY}
            RETURN n;
        END $fn$
    """)
    op.execute("DROP FUNCTION IF EXISTS renderer.sensors_enriched_ddl(text)")
