"""Sensors: raw events, ledger, rejects, day-partitioned enriched table.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The consumed-files ledger: a file is new while its (key, size, checksum) is not here.
    # A new version of a key (other size or checksum) supersedes the old one: the rows the
    # old version still owns are removed from sensors_raw in the same transaction.
    op.execute("""
        CREATE TABLE sensors_files (
            id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            key           text        NOT NULL,
            size          bigint      NOT NULL,
            checksum      text        NOT NULL,
            status        text        NOT NULL
                          CHECK (status IN ('consumed', 'rejected', 'superseded')),
            reason        text,
            rows_read     integer     NOT NULL DEFAULT 0,
            rows_accepted integer     NOT NULL DEFAULT 0,
            rows_rejected integer     NOT NULL DEFAULT 0,
            first_record  timestamptz,
            last_record   timestamptz,
            ingested_at   timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT sensors_files_version UNIQUE (key, size, checksum),
            CHECK (rows_read = rows_accepted + rows_rejected)
        )
    """)
    op.execute("CREATE INDEX sensors_files_key ON sensors_files (key)")
    op.execute("""
        CREATE TABLE sensors_rejects (
            id      bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            file_id bigint  NOT NULL REFERENCES sensors_files ON DELETE CASCADE,
            line    integer NOT NULL,
            raw     text    NOT NULL,
            reason  text    NOT NULL
        )
    """)
    op.execute("CREATE INDEX sensors_rejects_file ON sensors_rejects (file_id, line)")
    # Raw events, one per (detector, instant): a later file's row replaces an earlier one.
    # currentspeed NULL = no measurement (empty or negative in the file).
    op.execute("""
        CREATE TABLE sensors_raw (
            uniqueid               integer     NOT NULL,
            recordtimestamp        timestamptz NOT NULL,
            currentspeed           smallint    CHECK (currentspeed >= 0),
            bezettingsgraad        real,
            trafficintensityclass1 integer,
            trafficintensityclass2 integer,
            trafficintensityclass3 integer,
            trafficintensityclass4 integer,
            trafficintensityclass5 integer,
            file_id                bigint      NOT NULL,
            PRIMARY KEY (uniqueid, recordtimestamp)
        ) PARTITION BY RANGE (recordtimestamp)
    """)
    op.execute("""
        CREATE TABLE sensors_enriched (
            uniqueid               integer          NOT NULL,
            recordtimestamp        timestamptz      NOT NULL,
            currentspeed           smallint,
            bezettingsgraad        real,
            previousspeed          smallint,
            trafficjamindicator    smallint         NOT NULL CHECK (trafficjamindicator IN (-1, 0, 1)),
            trafficintensityclass1 integer,
            trafficintensityclass2 integer,
            trafficintensityclass3 integer,
            trafficintensityclass4 integer,
            trafficintensityclass5 integer,
            speeddiffindicator     smallint         NOT NULL CHECK (speeddiffindicator IN (-1, 0, 1)),
            avgspeed2minutes       double precision,
            avgspeed10minutes      double precision,
            PRIMARY KEY (uniqueid, recordtimestamp)
        ) PARTITION BY RANGE (recordtimestamp)
    """)
    # Which days changed since they were last enriched: ingest bumps raw_version, the day
    # handler stores the version it read (before computing) in enriched_version.
    op.execute("""
        CREATE TABLE sensors_days (
            day              date        PRIMARY KEY,
            raw_version      bigint      NOT NULL DEFAULT 1,  -- 0: never had raw rows
            raw_changed_at   timestamptz NOT NULL DEFAULT now(),
            enriched_version bigint,
            enriched_rows    bigint,
            enriched_at      timestamptz
        )
    """)
    # ETL runs and their export: the days a run enqueued, each with the raw version it saw;
    # the export fan-in writes a run once every day was enriched from at least that version.
    op.execute("""
        CREATE TABLE sensors_runs (
            id            text        PRIMARY KEY,
            created_at    timestamptz NOT NULL DEFAULT now(),
            days          date[]      NOT NULL,
            versions      bigint[]    NOT NULL,
            export_out    text,
            export_format text        CHECK (export_format IN ('parquet', 'csv')),
            export_prefix text        NOT NULL DEFAULT '',
            exported_at   timestamptz,
            exported_rows bigint,
            CHECK (cardinality(days) = cardinality(versions))
        )
    """)
    op.execute("CREATE INDEX sensors_runs_unexported ON sensors_runs (created_at)"
               " WHERE exported_at IS NULL AND export_out IS NOT NULL")
    # A UTC day partition of either table, made on demand. CREATE TABLE ... PARTITION OF
    # would hold ACCESS EXCLUSIVE on the parent until commit (blocking every reader and
    # writer of other days); a new empty table ATTACHed takes only SHARE UPDATE EXCLUSIVE.
    op.execute("""
        CREATE FUNCTION renderer.sensors_partition(p_parent text, p_day date) RETURNS text
        LANGUAGE plpgsql AS $$
        DECLARE
            name text := p_parent || '_' || to_char(p_day, 'YYYYMMDD');
            lo   timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
        BEGIN
            IF p_parent NOT IN ('sensors_raw', 'sensors_enriched') THEN
                RAISE EXCEPTION 'not a sensors table: %', p_parent;
            END IF;
            IF to_regclass(name) IS NULL THEN
                -- concurrent creators: the second waits here, then finds the partition
                PERFORM pg_advisory_xact_lock(hashtext(name));
                IF to_regclass(name) IS NULL THEN
                    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                                   name, p_parent);
                    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                                   p_parent, name, lo, lo + interval '24 hours');
                END IF;
            END IF;
            RETURN name;
        END $$
    """)
    op.execute("""
        CREATE FUNCTION renderer.sensors_day_partition(p_day date) RETURNS text
        LANGUAGE sql AS $$ SELECT renderer.sensors_partition('sensors_enriched', p_day) $$
    """)
    op.execute("""
        CREATE FUNCTION renderer.sensors_raw_partition(p_day date) RETURNS text
        LANGUAGE sql AS $$ SELECT renderer.sensors_partition('sensors_raw', p_day) $$
    """)
    # The enrichment of one UTC day, callable from psql: one INSERT ... SELECT over the day and
    # the 600 s before it, replacing the day's partition in the caller's transaction (TRUNCATE
    # locks only that partition; with wal_level=minimal the refilled partition skips WAL).
    # Windows over time (RANGE), not rows: a missing minute shortens a window instead of
    # stretching it. sum/count in integers make the 40 and 250 km/h tests exact. The
    # detector's first record of the day whose previous record is older than the context gets
    # previousspeed from an index probe (the latest record before the context).
    op.execute(r"""
        CREATE FUNCTION renderer.sensors_enrich_day(p_day date) RETURNS bigint
        LANGUAGE plpgsql AS $fn$
        DECLARE
            part    text := renderer.sensors_day_partition(p_day);
            lo      timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
            version bigint;
            n       bigint;
        BEGIN
            -- read before computing: a change committed meanwhile leaves the day marked
            SELECT raw_version INTO version FROM sensors_days WHERE day = p_day;
            -- a seq scan + sort of a day beats 1.4 M random heap probes; give the sort room
            PERFORM set_config('work_mem', '256MB', true);
            EXECUTE format('TRUNCATE %I', part);
            EXECUTE format($q$
                INSERT INTO %I (uniqueid, recordtimestamp, currentspeed, bezettingsgraad,
                                previousspeed, trafficjamindicator, trafficintensityclass1,
                                trafficintensityclass2, trafficintensityclass3,
                                trafficintensityclass4, trafficintensityclass5,
                                speeddiffindicator, avgspeed2minutes, avgspeed10minutes)
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
            $q$, part) USING lo;
            GET DIAGNOSTICS n = ROW_COUNT;
            INSERT INTO sensors_days AS s (day, raw_version, enriched_version, enriched_rows,
                                           enriched_at)
            VALUES (p_day, 0, coalesce(version, 0), n, now())
            ON CONFLICT (day) DO UPDATE
            SET enriched_version = coalesce(version, 0), enriched_rows = n, enriched_at = now();
            RETURN n;
        END $fn$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.sensors_enrich_day(date),"
               " renderer.sensors_day_partition(date),"
               " renderer.sensors_raw_partition(date), renderer.sensors_partition(text, date)")
    op.execute("DROP TABLE IF EXISTS sensors_runs, sensors_days, sensors_rejects, sensors_files")
    op.execute("DROP TABLE IF EXISTS sensors_enriched, sensors_raw CASCADE")
