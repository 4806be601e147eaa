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

-- name: day_ranking_summary
-- A day's detectors by jam minutes (most first), at most %(limit)s, from the summary its
-- enrichment wrote (sensors_day_detectors: about 1,000 rows a day, a few ms), with the
-- columns of day_ranking. No row: the day was enriched by a release that did not write the
-- summary (a rolling deploy), and the page aggregates it with day_ranking.
SELECT uniqueid, jam_minutes, readings, mean_speed, lowest_mean10, first_jam, last_jam,
       count(*) OVER () AS detectors, mean_by_10_minutes
  FROM sensors_day_detectors
 WHERE day = %(day)s
 ORDER BY jam_minutes DESC, uniqueid
 LIMIT %(limit)s;

-- name: day_ranking
-- The fallback of day_ranking_summary, and the definition of its figures (tests hold them
-- equal): a day's detectors by jam minutes (most first), at most %(limit)s, each with its readings,
-- mean and lowest 10-minute mean speed, first and last jam minute, and its mean speed per
-- 10 minutes of the day (144 values, NULL where it had no speed; slot k holds the readings
-- from k * 600 s to (k + 1) * 600 s) for a sparkline. The day is read once, in key order
-- (the partition's index: no sort), and the ranked detectors' rows once more by their index
-- for the sparklines; the day's bounds are constants here, so the plan prunes to its
-- partition. (Before: the sparkline subquery rescanned the whole day once per ranked
-- detector, 15 s for a 1,000-detector day; BENCHMARKS.md, the enriched day as arrays.)
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
     WHERE recordtimestamp >= %(day)s::timestamp AT TIME ZONE 'UTC'
       AND recordtimestamp < (%(day)s::date + 1)::timestamp AT TIME ZONE 'UTC'
     GROUP BY uniqueid
), ranked AS (
    SELECT *, count(*) OVER () AS detectors
      FROM detectors
     ORDER BY jam_minutes DESC, uniqueid
     LIMIT %(limit)s
), slots AS (
    SELECT e.uniqueid,
           floor(extract(epoch FROM e.recordtimestamp
                         - %(day)s::timestamp AT TIME ZONE 'UTC') / 600)::integer AS slot,
           avg(e.currentspeed) AS speed
      FROM ranked r
      JOIN sensors_enriched e ON e.uniqueid = r.uniqueid
     WHERE e.recordtimestamp >= %(day)s::timestamp AT TIME ZONE 'UTC'
       AND e.recordtimestamp < (%(day)s::date + 1)::timestamp AT TIME ZONE 'UTC'
     GROUP BY 1, 2
), sparklines AS (
    SELECT r.uniqueid, array_agg(s.speed ORDER BY g) AS mean_by_10_minutes
      FROM ranked r
     CROSS JOIN generate_series(0, 143) AS g
      LEFT JOIN slots s ON s.uniqueid = r.uniqueid AND s.slot = g
     GROUP BY r.uniqueid
)
SELECT r.*, p.mean_by_10_minutes
  FROM ranked r
  JOIN sparklines p USING (uniqueid)
 ORDER BY r.jam_minutes DESC, r.uniqueid;
