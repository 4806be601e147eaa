-- Retired definitions: text a migration or benchmark can still load by name as it was.
-- `-- name: x@R` is x as it was up to revision R (the last revision it was current at).
-- See ../README.md.

-- name: sensors_raw@0011
-- Raw events, one per (detector, instant): a later file's row replaces an earlier one.
-- currentspeed NULL = no measurement (empty or negative in the file). Partitioned by UTC
-- day, partitions made on demand (renderer.sensors_raw_partition).
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
) PARTITION BY RANGE (recordtimestamp);

-- name: sensors_enriched@0011
-- The enriched events, one partition per UTC day, each replaced whole when its day is
-- enriched again (renderer.sensors_enrich_day).
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
) PARTITION BY RANGE (recordtimestamp);

-- name: sensors_enrich_day@0011
-- The enrichment of one UTC day, callable from psql: one INSERT ... SELECT over the day and
-- the 600 s before it. Windows over time (RANGE), not rows: a missing minute shortens a
-- window instead of stretching it. sum/count in integers make the 40 and 250 km/h tests
-- exact. The detector's first record of the day whose previous record is older than the
-- context gets previousspeed from an index probe (the latest record before the context).
-- Ordering the windows by an integer epoch instead of the timestamp was measured: its
-- cheaper in_range saves about 2 % of the day, less than the sort it would need, since the
-- key index orders by the timestamp.
--
-- The day goes into a table made in this transaction (with wal_level=minimal neither its
-- rows nor its index are WAL-logged), its key is built once the rows are in (a sorted build
-- of rows already in key order: a fifth of the cost of inserting into the index row by
-- row), and it replaces the day's partition at the very end: DROP of the old one (a rerun;
-- ACCESS EXCLUSIVE on sensors_enriched until commit) and ATTACH (SHARE UPDATE EXCLUSIVE,
-- which the bounds CHECK spares the validation scan). The locks on the parent come last, so
-- days compute in parallel and only their last instants queue; the lock order (day, then
-- parent, then the queue rows of the caller) is the same everywhere, so days never
-- deadlock. Readers see the old day or the new one, never a part.
CREATE FUNCTION renderer.sensors_enrich_day(p_day date) RETURNS bigint
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
    $q$, fresh) USING lo;
    GET DIAGNOSTICS n = ROW_COUNT;
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY'
                   ' (uniqueid, recordtimestamp)', fresh, fresh || '_pkey');
    INSERT INTO sensors_days AS s (day, raw_version, enriched_version, enriched_rows,
                                   enriched_at)
    VALUES (p_day, 0, coalesce(version, 0), n, now())
    ON CONFLICT (day) DO UPDATE
    SET enriched_version = coalesce(version, 0), enriched_rows = n, enriched_at = now();
    IF to_regclass(part) IS NOT NULL THEN
        EXECUTE format('DROP TABLE %I', part);
    END IF;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', fresh, part);
    EXECUTE format('ALTER INDEX %I RENAME TO %I', fresh || '_pkey', part || '_pkey');
    EXECUTE format('ALTER TABLE sensors_enriched ATTACH PARTITION %I'
                   ' FOR VALUES FROM (%L) TO (%L)', part, lo, lo + interval '24 hours');
    RETURN n;
END $fn$;

-- name: sensors_enrich_day@0020
-- The enrichment of one UTC day, callable from psql: one INSERT ... SELECT over the day and
-- the 600 s before it. Windows over time (RANGE), not rows: a missing minute shortens a
-- window instead of stretching it. Speeds are exact integers of hundredths of km/h
-- (sensors_raw): sums and counts stay integers, so the 40 and 250 km/h tests of the
-- 2-minute mean and the +-20 km/h test of speeddiffindicator are exact, and a mean is one
-- division (sum / (100 * count) as double precision: the double nearest the exact mean,
-- e.g. 75.58333333333333 for 80.25, 75.5 and 71). The detector's first record of the day whose previous record is older than the
-- context gets previousspeed from an index probe (the latest record before the context).
-- Ordering the windows by an integer epoch instead of the timestamp was measured: its
-- cheaper in_range saves about 2 % of the day, less than the sort it would need, since the
-- key index orders by the timestamp.
--
-- The day goes into a table made in this transaction (with wal_level=minimal neither its
-- rows nor its index are WAL-logged), its key is built once the rows are in (a sorted build
-- of rows already in key order: a fifth of the cost of inserting into the index row by
-- row), and it replaces the day's partition at the very end: DROP of the old one (a rerun;
-- ACCESS EXCLUSIVE on sensors_enriched until commit) and ATTACH (SHARE UPDATE EXCLUSIVE,
-- which the bounds CHECK spares the validation scan). The locks on the parent come last, so
-- days compute in parallel and only their last instants queue; the lock order (day, then
-- parent, then the queue rows of the caller) is the same everywhere, so days never
-- deadlock. Readers see the old day or the new one, never a part.
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
        INSERT INTO %I (uniqueid, recordtimestamp, currentspeed, bezettingsgraad,
                        previousspeed, trafficjamindicator, trafficintensityclass1,
                        trafficintensityclass2, trafficintensityclass3,
                        trafficintensityclass4, trafficintensityclass5,
                        speeddiffindicator, avgspeed2minutes, avgspeed10minutes)
        SELECT uniqueid, recordtimestamp, speed::float8 / 100, bezettingsgraad,
               previous::float8 / 100,
               CASE WHEN n2 = 0 THEN -1            -- no speed in the window
                    WHEN s2 <= 4000 * n2 THEN 1    -- mean <= 40 km/h
                    WHEN s2 <= 25000 * n2 THEN 0   -- 40 < mean <= 250
                    ELSE -1 END,                   -- implausible
               trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
               trafficintensityclass4, trafficintensityclass5,
               CASE WHEN speed - previous >= 2000 THEN 1
                    WHEN speed - previous <= -2000 THEN -1
                    ELSE 0 END,                    -- also when either is missing
               s2::float8 / (100 * nullif(n2, 0)), s10::float8 / (100 * nullif(n10, 0))
        FROM (
            SELECT w.*,
                   CASE WHEN prev_at IS NOT NULL THEN prev ELSE (
                       SELECT r.currentspeed_hundredths FROM sensors_raw r
                       WHERE r.uniqueid = w.uniqueid
                         AND r.recordtimestamp < $1 - interval '600 seconds'
                       ORDER BY r.recordtimestamp DESC LIMIT 1) END AS previous
            FROM (
                SELECT r.*, r.currentspeed_hundredths AS speed,
                       lag(currentspeed_hundredths) OVER w10 AS prev,
                       lag(recordtimestamp) OVER w10 AS prev_at,
                       sum(currentspeed_hundredths) OVER w2 AS s2,
                       count(currentspeed_hundredths) OVER w2 AS n2,
                       sum(currentspeed_hundredths) OVER w10 AS s10,
                       count(currentspeed_hundredths) OVER w10 AS n10
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
    $q$, fresh) USING lo;
    GET DIAGNOSTICS n = ROW_COUNT;
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY'
                   ' (uniqueid, recordtimestamp)', fresh, fresh || '_pkey');
    INSERT INTO sensors_days AS s (day, raw_version, enriched_version, enriched_rows,
                                   enriched_at)
    VALUES (p_day, 0, coalesce(version, 0), n, now())
    ON CONFLICT (day) DO UPDATE
    SET enriched_version = coalesce(version, 0), enriched_rows = n, enriched_at = now();
    IF to_regclass(part) IS NOT NULL THEN
        EXECUTE format('DROP TABLE %I', part);
    END IF;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', fresh, part);
    EXECUTE format('ALTER INDEX %I RENAME TO %I', fresh || '_pkey', part || '_pkey');
    EXECUTE format('ALTER TABLE sensors_enriched ATTACH PARTITION %I'
                   ' FOR VALUES FROM (%L) TO (%L)', part, lo, lo + interval '24 hours');
    RETURN n;
END $fn$;

-- name: sensors_days@0031
-- Which days changed since they were last enriched: ingest bumps raw_version, the day
-- handler stores the version it read (before computing) in enriched_version.
CREATE TABLE sensors_days (
    day              date        PRIMARY KEY,
    raw_version      bigint      NOT NULL DEFAULT 1,  -- 0: never had raw rows
    raw_changed_at   timestamptz NOT NULL DEFAULT now(),
    enriched_version bigint,
    enriched_rows    bigint,
    enriched_at      timestamptz
);
