-- Sensor days: which days need enriching, making their partitions, enriching one.
-- Used by renderer/sensors/enrich.py and renderer/sensors/day.py. The enrichment itself is
-- the SQL function renderer.sensors_enrich_day (sql/schema/sensors.sql), so psql can run it too.

-- name: pending_days
-- Days whose raw rows changed since they were last enriched (or never were), oldest first.
SELECT day, raw_version
FROM sensors_days
WHERE raw_version > 0 AND raw_version > coalesce(enriched_version, 0)
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
