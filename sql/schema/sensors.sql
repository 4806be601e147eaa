-- Sensors: loop-detector files, raw events, the day-partitioned enriched table, ETL runs.

-- name: sensors_files
-- The consumed-files ledger: a file is new while its (key, size, checksum) is not here. A
-- new version of a key (other size or checksum) supersedes the old one: the rows the old
-- version still owns are removed from sensors_raw in the same transaction.
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
);

-- name: sensors_files_key
CREATE INDEX sensors_files_key ON sensors_files (key);

-- name: sensors_rejects
CREATE TABLE sensors_rejects (
    id      bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_id bigint  NOT NULL REFERENCES sensors_files ON DELETE CASCADE,
    line    integer NOT NULL,
    raw     text    NOT NULL,
    reason  text    NOT NULL
);

-- name: sensors_rejects_file
CREATE INDEX sensors_rejects_file ON sensors_rejects (file_id, line);

-- name: sensors_raw
-- Raw events, one per (detector, instant): a later file's row replaces an earlier one.
-- Partitioned by UTC day, partitions made on demand (renderer.sensors_raw_partition).
--
-- currentspeed_hundredths: the file's currentspeed in hundredths of km/h (81.25 -> 8125),
-- NULL = no measurement (empty or negative in the file). Loop detectors report the mean over
-- lanes, a decimal (81.25, 33.5); a scaled integer keeps it exactly, as numeric would, but
-- in 4 bytes that fill the padding smallint left before bezettingsgraad (a row is as wide
-- as before; numeric adds 5-7 bytes), and the enrichment's windowed sums and counts stay
-- integer arithmetic, where numeric would do arbitrary-precision arithmetic for every row
-- entering and leaving each window. Two decimals cover means over 1, 2, 4 or 5 lanes; a
-- third is rejected at ingest (with its reason), not rounded.
CREATE TABLE sensors_raw (
    uniqueid               integer     NOT NULL,
    recordtimestamp        timestamptz NOT NULL,
    currentspeed_hundredths integer    CHECK (currentspeed_hundredths >= 0),
    bezettingsgraad        real,
    trafficintensityclass1 integer,
    trafficintensityclass2 integer,
    trafficintensityclass3 integer,
    trafficintensityclass4 integer,
    trafficintensityclass5 integer,
    file_id                bigint      NOT NULL,
    PRIMARY KEY (uniqueid, recordtimestamp)
) PARTITION BY RANGE (recordtimestamp);

-- name: sensors_enriched
-- The enriched events, one partition per UTC day, each replaced whole when its day is
-- enriched again (renderer.sensors_enrich_day). Speeds in km/h as readers (exports, sensors
-- query, psql) expect them: currentspeed and previousspeed are sensors_raw's hundredths / 100
-- as double precision, the double nearest k/100, which prints (shortest round-trip form) and
-- converts back as exactly k/100, and is what Parquet readers and the reference pipeline use
-- for speeds. Measured on 1.44 M rows: doubles cost no CPU to make but 16 bytes a row (+15 %
-- of a day's table); numeric(7,2) +11 % and 0.3 us a row to make (about 7 % of the day's
-- CPU); real nothing, but 81.33 widened to a double reads 81.33000183105469.
CREATE TABLE sensors_enriched (
    uniqueid               integer          NOT NULL,
    recordtimestamp        timestamptz      NOT NULL,
    currentspeed           double precision,
    bezettingsgraad        real,
    previousspeed          double precision,
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

-- name: sensors_days
-- Which days changed since they were last enriched: ingest bumps raw_version, the day
-- handler stores the version it read (before computing) in enriched_version.
-- ingest_enriched: the raw version at which the ingest that brought the day fresh enriched
-- it (renderer/sensors/fused.py), until the day's item has run: the day is still planned by
-- the next ETL run (for its export), and that item finds the work done and does nothing.
CREATE TABLE sensors_days (
    day              date        PRIMARY KEY,
    raw_version      bigint      NOT NULL DEFAULT 1,  -- 0: never had raw rows
    raw_changed_at   timestamptz NOT NULL DEFAULT now(),
    enriched_version bigint,
    enriched_rows    bigint,
    enriched_at      timestamptz,
    ingest_enriched  bigint
);

-- name: sensors_runs
-- ETL runs and their export: the days a run enqueued, each with the raw version it saw;
-- the export fan-in writes a run once every day was enriched from at least that version.
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
);

-- name: sensors_runs_unexported
CREATE INDEX sensors_runs_unexported ON sensors_runs (created_at)
    WHERE exported_at IS NULL AND export_out IS NOT NULL;

-- name: sensors_partition
-- A UTC day partition of either table, made on demand. CREATE TABLE ... PARTITION OF would
-- hold ACCESS EXCLUSIVE on the parent until commit (blocking every reader and writer of
-- other days); a new empty table ATTACHed takes only SHARE UPDATE EXCLUSIVE.
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
END $$;

-- name: sensors_day_partition
CREATE FUNCTION renderer.sensors_day_partition(p_day date) RETURNS text
LANGUAGE sql AS $$ SELECT renderer.sensors_partition('sensors_enriched', p_day) $$;

-- name: sensors_raw_partition
CREATE FUNCTION renderer.sensors_raw_partition(p_day date) RETURNS text
LANGUAGE sql AS $$ SELECT renderer.sensors_partition('sensors_raw', p_day) $$;

-- name: sensors_enriched_ddl
-- The CREATE TABLE of a table shaped as sensors_enriched: its columns, NOT NULLs and
-- CHECKs, read from the catalog. CREATE TABLE ... (LIKE) would hold ACCESS SHARE on the
-- parent until commit, and two reruns ending together would then deadlock on each other's
-- DROP of their old partition.
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
$$;

-- name: sensors_enrich_begin
-- The first half of a day's enrichment (renderer.sensors_enrich_day, and the C engine of
-- renderer/sensors/enrich_c.py, which computes between the halves): the day's lock (one
-- writer per day: a second waits here, then replaces the first one's day), the day's raw
-- version read before computing (a change committed meanwhile leaves the day marked), and
-- the fresh table the rows go into, shaped as sensors_enriched with the day's bounds as a
-- CHECK. Made in this transaction: with wal_level=minimal neither its rows nor its index are
-- WAL-logged. Returns the table's name and the version for renderer.sensors_enrich_end.
CREATE FUNCTION renderer.sensors_enrich_begin(p_day date, OUT fresh text, OUT version bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    part text := 'sensors_enriched_' || to_char(p_day, 'YYYYMMDD');
    lo   timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
BEGIN
    fresh := part || '_new';
    PERFORM pg_advisory_xact_lock(hashtext(fresh));
    SELECT d.raw_version INTO version FROM sensors_days d WHERE d.day = p_day;
    -- the key is built by this process alone: the worker pool already keeps every core
    -- busy, and parallel builders cost 8 % more CPU for a day's index
    PERFORM set_config('max_parallel_maintenance_workers', '0', true);
    EXECUTE renderer.sensors_enriched_ddl(fresh);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (recordtimestamp >= %L'
                   ' AND recordtimestamp < %L)', fresh, part || '_bounds',
                   lo, lo + interval '24 hours');
END $fn$;

-- name: sensors_enrich_end
-- The second half: the fresh table's key, built once the rows are in (a sorted build of
-- rows already in key order: a fifth of the cost of inserting into the index row by row),
-- the day recorded as enriched from p_version with p_rows rows, and the fresh table in place
-- of the day's partition at the very end: DROP of the old one (a rerun; ACCESS EXCLUSIVE on
-- sensors_enriched until commit) and ATTACH (SHARE UPDATE EXCLUSIVE, which the bounds CHECK
-- spares the validation scan). The locks on the parent come last, so days compute in
-- parallel and only their last instants queue; the lock order (day, then parent, then the
-- queue rows of the caller) is the same everywhere, so days never deadlock. Readers see the
-- old day or the new one, never a part. Returns p_rows.
CREATE FUNCTION renderer.sensors_enrich_end(p_day date, p_version bigint, p_rows bigint)
RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    part  text := 'sensors_enriched_' || to_char(p_day, 'YYYYMMDD');
    fresh text := part || '_new';
    lo    timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
BEGIN
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY'
                   ' (uniqueid, recordtimestamp)', fresh, fresh || '_pkey');
    INSERT INTO sensors_days AS s (day, raw_version, enriched_version, enriched_rows,
                                   enriched_at)
    VALUES (p_day, 0, coalesce(p_version, 0), p_rows, now())
    ON CONFLICT (day) DO UPDATE
    SET enriched_version = coalesce(p_version, 0), enriched_rows = p_rows,
        enriched_at = now();
    IF to_regclass(part) IS NOT NULL THEN
        EXECUTE format('DROP TABLE %I', part);
    END IF;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', fresh, part);
    EXECUTE format('ALTER INDEX %I RENAME TO %I', fresh || '_pkey', part || '_pkey');
    EXECUTE format('ALTER TABLE sensors_enriched ATTACH PARTITION %I'
                   ' FOR VALUES FROM (%L) TO (%L)', part, lo, lo + interval '24 hours');
    RETURN p_rows;
END $fn$;

-- name: sensors_enrich_day
-- The enrichment of one UTC day, callable from psql: one INSERT ... SELECT over the day and
-- the 600 s before it, between renderer.sensors_enrich_begin (lock, version, fresh table)
-- and renderer.sensors_enrich_end (key, swap). Windows over time (RANGE), not rows: a missing
-- minute shortens a window instead of stretching it. Speeds are exact integers of
-- hundredths of km/h (sensors_raw): sums and counts stay integers, so the 40 and 250 km/h
-- tests of the 2-minute mean and the +-20 km/h test of speeddiffindicator are exact, and a
-- mean is one division (sum / (100 * count) as double precision: the double nearest the
-- exact mean, e.g. 75.58333333333333 for 80.25, 75.5 and 71). The detector's first record
-- of the day whose previous record is older than the context gets previousspeed from an
-- index probe (the latest record before the context). Ordering the windows by an integer
-- epoch instead of the timestamp was measured: its cheaper in_range saves about 2 % of the
-- day, less than the sort it would need, since the key index orders by the timestamp.
-- The same computation in C over binary COPY: renderer/sensors/enrich_c.py (tests hold the
-- two equal; the setting sensors_enrich_engine chooses).
CREATE OR REPLACE FUNCTION renderer.sensors_enrich_day(p_day date) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    lo      timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    fresh   text;
    version bigint;
    n       bigint;
BEGIN
    SELECT b.fresh, b.version INTO fresh, version FROM renderer.sensors_enrich_begin(p_day) b;
    -- a day is sorted and windowed in memory; give it room
    PERFORM set_config('work_mem', '256MB', true);
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
    RETURN renderer.sensors_enrich_end(p_day, version, n);
END $fn$;

-- name: sensors_day_detectors
-- The day page's figures per detector (sql/web_sensors.sql, day_ranking): a row per
-- (day, detector) of sensors_enriched, written by the day's enrichment in its own
-- transaction (the C engine gathers them in its pass over the rows, ext/sensors_summary.c;
-- the SQL engine and migration 0038 by renderer.sensors_day_detectors_fill), so that the
-- page reads 1,000 rows instead of aggregating 1.44 M on every view. Replaced whole with the
-- day: re-enriching it clears its rows first (trigger sensors_days_enriched). A day without
-- rows here (enriched by a release that did not write them) is filled by its first view.
-- jam_minutes: UTC minutes with trafficjamindicator = 1; mean_speed: avg(currentspeed);
-- lowest_mean10: min(avgspeed10minutes); first_jam/last_jam: the first and last jam row;
-- mean_by_10_minutes: avg(currentspeed) per 10-minute slot of the day (144, NULL: none).
CREATE TABLE sensors_day_detectors (
    day                date             NOT NULL,
    uniqueid           integer          NOT NULL,
    jam_minutes        integer          NOT NULL,
    readings           integer          NOT NULL,
    mean_speed         double precision,
    lowest_mean10      double precision,
    first_jam          timestamptz,
    last_jam           timestamptz,
    mean_by_10_minutes double precision[] NOT NULL
                       CHECK (cardinality(mean_by_10_minutes) = 144),
    PRIMARY KEY (day, uniqueid)
);

-- name: sensors_day_detectors_clear
-- The day's summary rows removed when sensors_days records a new enrichment of it
-- (renderer.sensors_enrich_end, every release's) or the day's row is made, before this release writes the new ones
-- in the same transaction: the rows never describe another enrichment than the day's
-- current one, and a release that does not write them leaves the day without rows (the
-- page then aggregates it) instead of with stale ones.
CREATE FUNCTION renderer.sensors_day_detectors_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sensors_day_detectors WHERE day = NEW.day;
    RETURN NULL;
END $$;

-- name: sensors_days_enriched
-- On INSERT too: a day's row made again (after a TRUNCATE or DELETE of sensors_days) finds no
-- rows of an earlier enrichment in the way.
CREATE TRIGGER sensors_days_enriched
AFTER INSERT OR UPDATE OF enriched_version, enriched_rows, enriched_at ON sensors_days
FOR EACH ROW EXECUTE FUNCTION renderer.sensors_day_detectors_clear();

-- name: sensors_day_detectors_fill
-- The day's summary rows from its enriched rows, by one aggregate (the SQL engine, after
-- renderer.sensors_enrich_day; migration 0038 for the days enriched before; the page for a
-- day a previous release enriched, sql/web_sensors.sql day_fill): the one definition of the
-- page's figures, which the C engine's are tested equal to. The day's rows are read twice,
-- in key order for the detectors and once more for the 10-minute slots (about 2 s for a
-- 1,000-detector day; the C engine gathers them in its pass instead). Returns the rows.
CREATE FUNCTION renderer.sensors_day_detectors_fill(p_day date) RETURNS bigint
LANGUAGE sql AS $$
    WITH detectors AS (
        SELECT uniqueid,
               count(DISTINCT date_trunc('minute', recordtimestamp))
                   FILTER (WHERE trafficjamindicator = 1) AS jam_minutes,
               count(*) AS readings,
               avg(currentspeed) AS mean_speed,
               min(avgspeed10minutes) AS lowest_mean10,
               min(recordtimestamp) FILTER (WHERE trafficjamindicator = 1) AS first_jam,
               max(recordtimestamp) FILTER (WHERE trafficjamindicator = 1) AS last_jam
          FROM sensors_enriched
         WHERE recordtimestamp >= p_day::timestamp AT TIME ZONE 'UTC'
           AND recordtimestamp < (p_day + 1)::timestamp AT TIME ZONE 'UTC'
         GROUP BY uniqueid
    ), slots AS (
        SELECT uniqueid,
               floor(extract(epoch FROM recordtimestamp
                             - p_day::timestamp AT TIME ZONE 'UTC') / 600)::integer AS slot,
               avg(currentspeed) AS speed
          FROM sensors_enriched
         WHERE recordtimestamp >= p_day::timestamp AT TIME ZONE 'UTC'
           AND recordtimestamp < (p_day + 1)::timestamp AT TIME ZONE 'UTC'
         GROUP BY 1, 2
    ), sparklines AS (
        SELECT d.uniqueid, array_agg(s.speed ORDER BY g) AS mean_by_10_minutes
          FROM detectors d
         CROSS JOIN generate_series(0, 143) AS g
          LEFT JOIN slots s ON s.uniqueid = d.uniqueid AND s.slot = g
         GROUP BY d.uniqueid
    ), written AS (
        INSERT INTO sensors_day_detectors (day, uniqueid, jam_minutes, readings, mean_speed,
                                           lowest_mean10, first_jam, last_jam,
                                           mean_by_10_minutes)
        SELECT p_day, d.uniqueid, d.jam_minutes, d.readings, d.mean_speed, d.lowest_mean10,
               d.first_jam, d.last_jam, p.mean_by_10_minutes
          FROM detectors d
          JOIN sparklines p USING (uniqueid)
        RETURNING 1
    )
    SELECT count(*) FROM written
$$;
