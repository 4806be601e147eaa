-- Statements of the sensor pages (renderer/web/sensor_pages.py): the enriched days, one
-- detector's day, and a day's detectors ranked by jam minutes. A jam minute is a UTC minute
-- in which a detector reported trafficjamindicator = 1 (its 2-minute mean <= 40 km/h).

-- name: days
-- The enriched days, latest first, at most %(limit)s.
SELECT day, enriched_rows, enriched_at
  FROM sensors_days
 WHERE enriched_version IS NOT NULL
 ORDER BY day DESC
 LIMIT %(limit)s;

-- name: day
-- One day's enrichment state (no row: never seen).
SELECT day, enriched_rows, enriched_at, enriched_version IS NOT NULL AS enriched
  FROM sensors_days
 WHERE day = %(day)s;

-- name: detector_days
-- The enriched days with rows of one detector, latest first (one primary-key probe a day).
SELECT d.day
  FROM sensors_days d
 WHERE d.enriched_version IS NOT NULL
   AND EXISTS (SELECT 1 FROM sensors_enriched e
                WHERE e.uniqueid = %(detector)s
                  AND e.recordtimestamp >= d.day::timestamp AT TIME ZONE 'UTC'
                  AND e.recordtimestamp < (d.day + 1)::timestamp AT TIME ZONE 'UTC')
 ORDER BY d.day DESC
 LIMIT %(limit)s;

-- name: detector_day
-- One detector's enriched rows of one UTC day, in time order, with the second of the day.
SELECT extract(epoch FROM recordtimestamp - %(day)s::timestamp AT TIME ZONE 'UTC')::integer
           AS second, currentspeed, avgspeed2minutes, avgspeed10minutes, trafficjamindicator
  FROM sensors_enriched
 WHERE uniqueid = %(detector)s
   AND recordtimestamp >= %(day)s::timestamp AT TIME ZONE 'UTC'
   AND recordtimestamp < (%(day)s::date + 1)::timestamp AT TIME ZONE 'UTC'
 ORDER BY recordtimestamp;

-- name: day_ranking
-- A day's detectors by jam minutes (most first), at most %(limit)s, from the summary its
-- enrichment wrote (sensors_day_detectors: about 1,000 rows a day, a few ms). The figures
-- are defined once, by renderer.sensors_day_detectors_fill.
SELECT uniqueid, jam_minutes, readings, mean_speed, lowest_mean10, first_jam, last_jam,
       count(*) OVER () AS detectors, mean_by_10_minutes
  FROM sensors_day_detectors
 WHERE day = %(day)s
 ORDER BY jam_minutes DESC, uniqueid
 LIMIT %(limit)s;

-- name: day_lock
-- The day's row locked before the page fills its summary: a second view waits and then
-- finds the rows, and an enrichment committing meanwhile waits too, and then its trigger
-- (sensors_days_enriched) clears them rather than leaving them stale.
SELECT day FROM sensors_days WHERE day = %(day)s FOR NO KEY UPDATE;

-- name: day_fill
-- The summary of a day enriched by a release that did not write it (a rolling deploy:
-- that release's re-enrichment clears it), filled by the page once and kept; nothing when
-- another view filled it first (run after day_lock, in the same transaction).
SELECT renderer.sensors_day_detectors_fill(%(day)s) AS rows
 WHERE NOT EXISTS (SELECT 1 FROM sensors_day_detectors WHERE day = %(day)s);
