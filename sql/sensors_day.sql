-- Sensor days: which days need enriching, making their partitions, enriching one.
-- Used by renderer/sensors/enrich.py and renderer/sensors/day.py. The enrichment itself is
-- the SQL function renderer.sensors_enrich_day (migration 0005), so psql can run it too.

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

-- name: ensure_partitions
-- Make the enriched partitions of some days, in a short transaction before any day item runs
-- (attaching a partition inside a long day transaction would serialise the days).
SELECT renderer.sensors_day_partition(d) AS partition FROM unnest(%(days)s::date[]) AS d;

-- name: enrich_day
-- Replace one day of sensors_enriched; returns the rows written. Run it in the transaction
-- that records the work as done.
SELECT renderer.sensors_enrich_day(%(day)s) AS rows;

-- name: day_state
-- The bookkeeping of some days (for status output and tests).
SELECT day, raw_version, enriched_version, enriched_rows, enriched_at
FROM sensors_days
WHERE day = ANY(%(days)s::date[])
ORDER BY day;
