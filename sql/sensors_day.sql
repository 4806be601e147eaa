-- Sensor days: which days need enriching, making their partitions, enriching one.
-- Used by renderer/sensors/enrich.py and renderer/sensors/day.py. The enrichment itself is
-- the SQL function renderer.sensors_enrich_day (sql/schema/sensors.sql), so psql can run it too.

-- name: pending_days
-- Days whose raw rows changed since they were last enriched (or never were), and days the
-- ingest that brought them enriched (their item has not run yet), oldest first.
SELECT day, raw_version
FROM sensors_days
WHERE raw_version > 0
  AND (raw_version > coalesce(enriched_version, 0) OR ingest_enriched IS NOT NULL)
  AND (%(start)s::date IS NULL OR day >= %(start)s)
  AND (%(end)s::date IS NULL OR day <= %(end)s)
ORDER BY day;

-- name: days_in_range
-- Days with raw rows between two dates (inclusive; NULL = open), oldest first.
SELECT day, raw_version
FROM sensors_days
WHERE raw_version > 0
  AND (%(start)s::date IS NULL OR day >= %(start)s)
  AND (%(end)s::date IS NULL OR day <= %(end)s)
ORDER BY day;

-- name: enrich_day
-- Replace one day of sensors_enriched; returns the rows written. Run it in the transaction
-- that records the work as done, and commit soon after (it ends holding a lock on the parent).
SELECT renderer.sensors_enrich_day(%(day)s) AS rows;

-- name: skip_enriched
-- A day item's work done already by the ingest that brought the day (renderer/sensors/
-- fused.py), nothing changed since: the mark cleared, the rows it wrote returned (no row:
-- the day is to be enriched). Takes the day's row lock only when it returns a row, so it
-- adds no lock before the enrichment's own.
UPDATE sensors_days SET ingest_enriched = NULL
WHERE day = %(day)s AND ingest_enriched = raw_version AND enriched_version = raw_version
RETURNING enriched_rows AS rows;

-- name: clear_ingest_enriched
-- After a day item enriched its day (a late file changed it, or a forced run): no ingest's
-- enrichment is left to skip.
UPDATE sensors_days SET ingest_enriched = NULL
WHERE day = ANY(%(days)s::date[]) AND ingest_enriched IS NOT NULL;

-- name: record_run
-- An ETL run: its days with the raw versions it saw, and where its export goes (NULL: none).
INSERT INTO sensors_runs (id, days, versions, export_out, export_format, export_prefix)
VALUES (%(id)s, %(days)s::date[], %(versions)s::bigint[], %(out)s, %(format)s, %(prefix)s);

-- name: exportable_runs
-- Runs waiting for their export whose every day was enriched from at least the raw version
-- the run saw; locked so that two export attempts never take the same run.
SELECT r.id, r.days, r.export_out, r.export_format, r.export_prefix
FROM sensors_runs r
WHERE r.exported_at IS NULL AND r.export_out IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM unnest(r.days, r.versions) AS d(day, version)
    LEFT JOIN sensors_days s ON s.day = d.day
    WHERE coalesce(s.enriched_version, -1) < d.version)
ORDER BY r.created_at
FOR UPDATE OF r SKIP LOCKED;

-- name: mark_exported
-- Record that some runs were exported (with the export item's completion).
UPDATE sensors_runs r SET exported_at = now(), exported_rows = x.rows
FROM unnest(%(ids)s::text[], %(rows)s::bigint[]) AS x(id, rows)
WHERE r.id = x.id;

-- name: enrich_begin
-- The C engine (renderer/sensors/enrich_c.py), first: the day's lock, its raw version and
-- the fresh table the rows go into (renderer.sensors_enrich_begin).
SELECT fresh, version FROM renderer.sensors_enrich_begin(%(day)s);

-- name: raw_rows_copy
-- The raw rows the day's windows read (the 600 s before lo and on until hi: lo + 24 h for
-- the day and its context; lo for the context alone, renderer/sensors/fused.py), in key
-- order, as binary COPY for ext/sensors.c. Parameters are bound client-side (COPY takes none).
COPY (
    SELECT uniqueid, recordtimestamp, currentspeed_hundredths, bezettingsgraad,
           trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
           trafficintensityclass4, trafficintensityclass5
    FROM sensors_raw
    WHERE recordtimestamp >= %(lo)s::timestamptz - interval '600 seconds'
      AND recordtimestamp < %(hi)s::timestamptz
    ORDER BY uniqueid, recordtimestamp
) TO STDOUT (FORMAT binary);

-- name: previous_speeds
-- The speed (hundredths; NULL: none) of each detector's latest record before the context,
-- in the order of the ids given: the previousspeed of its first record of the day when the
-- context holds none (an index probe each, as in renderer.sensors_enrich_day).
SELECT p.currentspeed_hundredths AS speed
FROM unnest(%(ids)s::integer[]) WITH ORDINALITY AS d(uniqueid, i)
LEFT JOIN LATERAL (
    SELECT r.currentspeed_hundredths FROM sensors_raw r
    WHERE r.uniqueid = d.uniqueid
      AND r.recordtimestamp < %(lo)s::timestamptz - interval '600 seconds'
    ORDER BY r.recordtimestamp DESC LIMIT 1) p ON true
ORDER BY d.i;

-- name: enriched_copy
-- The computed rows into the fresh table (its name composed in as an identifier).
COPY {table} (uniqueid, recordtimestamp, currentspeed, bezettingsgraad, previousspeed,
              trafficjamindicator, trafficintensityclass1, trafficintensityclass2,
              trafficintensityclass3, trafficintensityclass4, trafficintensityclass5,
              speeddiffindicator, avgspeed2minutes, avgspeed10minutes)
FROM STDIN (FORMAT binary);

-- name: enrich_end
-- The C engine, last: the key, the day recorded, the partition replaced
-- (renderer.sensors_enrich_end); the rows written.
SELECT renderer.sensors_enrich_end(%(day)s, %(version)s, %(rows)s) AS rows;

-- name: detectors_copy
-- The day's summary per detector, gathered by the C engine (ext/sensors_summary.c), into
-- sensors_day_detectors after renderer.sensors_enrich_end cleared the day's old rows.
COPY sensors_day_detectors (day, uniqueid, jam_minutes, readings, mean_speed, lowest_mean10,
                            first_jam, last_jam, mean_by_10_minutes)
FROM STDIN (FORMAT binary);

-- name: detectors_fill
-- The same by the SQL aggregate, after the SQL engine's renderer.sensors_enrich_day.
SELECT renderer.sensors_day_detectors_fill(%(day)s) AS rows;
