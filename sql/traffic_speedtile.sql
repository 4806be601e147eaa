-- Weekly speed tiles from the hourly histograms (renderer/traffic/speedtile.py).
-- Parameters: %(mode)s, %(first_hour)s (epoch hour of the week's Monday 00:00 UTC),
-- %(tile_ids)s (tile ids, index << 3 | level, of the tiles built), %(min_count)s,
-- %(max_speed)s (km/h; faster is published as 0 = no data), %(week)s ('2016-W44').
-- Sums are float8: exact for integers below 2^53, and much faster than numeric.

-- name: delete_speeds
-- Forget the week's speeds of the given tiles before they are built again.
DELETE FROM traffic_speeds
 WHERE mode = %(mode)s AND first_hour = %(first_hour)s AND tile_id = ANY(%(tile_ids)s);

-- name: build_speeds
-- One row per segment of the given tiles with observations in the week: per hour of week
-- OpenTraffic's speed (length / shortest mean duration over next segments), our
-- count-weighted mean speed, the speed variance, prevalence; per (hour, next segment) the
-- delay, queue length and their variances. Hours under the minimum count publish no data.
INSERT INTO traffic_speeds (
    mode, first_hour, segment_id, length, hours, observations, speeds, mean_speeds,
    speed_variances, prevalences, next_hours, next_ids, next_counts, delays, delay_variances,
    queue_lengths, queue_length_variances)
WITH bins AS (
    -- per (segment, hour, next segment): count, and sums for the means and variances of the
    -- duration (s), queue code, and 1/duration (speed = 3.6 * length / duration)
    SELECT segment_id, next_segment_id, (hour - %(first_hour)s)::smallint AS how,
           sum(count::float8) AS n,
           sum(count::float8 * d) AS sd,
           sum(count::float8 * d * d) AS sdd,
           sum(count::float8 * queue_code) AS sq,
           sum(count::float8 * queue_code * queue_code) AS sqq,
           coalesce(sum(count::float8) FILTER (WHERE d > 0), 0) AS nv,
           coalesce(sum(count::float8 / d) FILTER (WHERE d > 0), 0) AS sv,
           coalesce(sum(count::float8 / d / d) FILTER (WHERE d > 0), 0) AS svv
      FROM (SELECT h.segment_id, h.next_segment_id, h.hour, h.count, h.queue_code,
                   renderer.traffic_duration_seconds(h.duration_code)::float8 AS d
              FROM traffic_histograms h
             WHERE h.mode = %(mode)s
               AND h.hour >= %(first_hour)s AND h.hour < %(first_hour)s + 168
               AND (h.segment_id & 33554431)::integer = ANY(%(tile_ids)s)) h
     GROUP BY segment_id, hour, next_segment_id
), nexts AS (
    SELECT b.*, b.sd / b.n AS mean_d,
           min(b.sd / b.n) OVER w AS min_d,
           sum(b.n) OVER w AS total
      FROM bins b
    WINDOW w AS (PARTITION BY b.segment_id, b.how)
), hours AS (
    SELECT segment_id, how, min(total) AS total, min(min_d) AS min_d,
           sum(nv) AS nv, sum(sv) AS sv, sum(svv) AS svv,
           coalesce(sum(n) FILTER (WHERE sd > 0), 0) AS n_pos,
           coalesce(sum(n * n / sd) FILTER (WHERE sd > 0), 0) AS inv
      FROM nexts
     GROUP BY segment_id, how
), lengths AS (
    -- the segments table when one is loaded, else the most common reported length
    SELECT s.segment_id,
           coalesce(t.length, (SELECT l.length FROM traffic_segment_lengths l
                                WHERE l.segment_id = s.segment_id
                                ORDER BY l.observations DESC, l.length LIMIT 1)) AS length
      FROM (SELECT DISTINCT segment_id FROM bins) s
      LEFT JOIN traffic_segments t USING (segment_id)
), hour_values AS (
    SELECT h.segment_id, h.how, l.length, h.total,
           v.speed, v.mean_speed,
           CASE WHEN v.speed > 0
                THEN round((3.6::float8 * l.length) * (3.6::float8 * l.length)
                           * greatest(h.svv / h.nv - (h.sv / h.nv) * (h.sv / h.nv), 0))
                ELSE 0 END AS speed_variance,
           CASE WHEN h.total >= %(min_count)s
                THEN renderer.traffic_prevalence(h.total::bigint, h.segment_id, h.how,
                                                 %(first_hour)s)
                ELSE 0 END AS prevalence
      FROM hours h
      JOIN lengths l USING (segment_id)
      CROSS JOIN LATERAL (
          SELECT CASE WHEN h.total < %(min_count)s OR l.length IS NULL OR h.min_d <= 0 THEN 0
                      ELSE round(3.6::float8 * l.length / h.min_d) END AS raw_speed,
                 CASE WHEN h.total < %(min_count)s OR l.length IS NULL OR h.n_pos <= 0 THEN 0
                      ELSE round(3.6::float8 * l.length * h.inv / h.n_pos) END AS raw_mean
      ) r
      CROSS JOIN LATERAL (
          SELECT CASE WHEN r.raw_speed > %(max_speed)s THEN 0 ELSE r.raw_speed END AS speed,
                 CASE WHEN r.raw_mean > %(max_speed)s THEN 0 ELSE r.raw_mean END AS mean_speed
      ) v
), next_values AS (
    SELECT x.segment_id, x.how, x.next_segment_id, x.n,
           round(x.mean_d - x.min_d) AS delay,
           round(greatest(x.sdd / x.n - x.mean_d * x.mean_d, 0)) AS delay_variance,
           coalesce(round(x.sq / x.n * l.length / 255), 0) AS queue_length,
           coalesce(round(greatest(x.sqq / x.n - (x.sq / x.n) * (x.sq / x.n), 0)
                          * (l.length::float8 / 255) * (l.length::float8 / 255)),
                    0) AS queue_length_variance
      FROM nexts x
      JOIN lengths l USING (segment_id)
     WHERE x.total >= %(min_count)s
), segment_hours AS (
    SELECT segment_id, min(length) AS length,
           array_agg(how ORDER BY how) AS hours,
           array_agg(total::bigint ORDER BY how) AS observations,
           array_agg(speed::smallint ORDER BY how) AS speeds,
           array_agg(mean_speed::smallint ORDER BY how) AS mean_speeds,
           array_agg(speed_variance::integer ORDER BY how) AS speed_variances,
           array_agg(prevalence ORDER BY how) AS prevalences
      FROM hour_values
     GROUP BY segment_id
), segment_nexts AS (
    SELECT segment_id,
           array_agg(how ORDER BY how, next_segment_id NULLS LAST) AS next_hours,
           array_agg(next_segment_id ORDER BY how, next_segment_id NULLS LAST) AS next_ids,
           array_agg(n::bigint ORDER BY how, next_segment_id NULLS LAST) AS next_counts,
           array_agg(delay::integer ORDER BY how, next_segment_id NULLS LAST) AS delays,
           array_agg(delay_variance::bigint ORDER BY how, next_segment_id NULLS LAST)
               AS delay_variances,
           array_agg(queue_length::integer ORDER BY how, next_segment_id NULLS LAST)
               AS queue_lengths,
           array_agg(queue_length_variance::bigint ORDER BY how, next_segment_id NULLS LAST)
               AS queue_length_variances
      FROM next_values
     GROUP BY segment_id
)
SELECT %(mode)s, %(first_hour)s, h.segment_id, h.length, h.hours, h.observations, h.speeds,
       h.mean_speeds, h.speed_variances, h.prevalences,
       coalesce(n.next_hours, '{}'), coalesce(n.next_ids, '{}'), coalesce(n.next_counts, '{}'),
       coalesce(n.delays, '{}'), coalesce(n.delay_variances, '{}'),
       coalesce(n.queue_lengths, '{}'), coalesce(n.queue_length_variances, '{}')
  FROM segment_hours h
  LEFT JOIN segment_nexts n USING (segment_id);

-- name: summarize_tiles
-- Record the built tiles of the week (and forget those of the given tiles that now have no
-- data); one row per given tile that has or had a speed tile, with the subtile counts
-- before and after so the export can remove files that are no longer produced.
WITH built AS (
    SELECT s.tile_id, count(*)::integer AS segments,
           sum((SELECT sum(o) FROM unnest(s.observations) o))::bigint AS observations,
           max(s.segment_id >> 25)::integer AS max_index
      FROM traffic_speeds s
     WHERE s.mode = %(mode)s AND s.first_hour = %(first_hour)s AND s.tile_id = ANY(%(tile_ids)s)
     GROUP BY s.tile_id
), known AS (
    SELECT (segment_id & 33554431)::integer AS tile_id, max(segment_id >> 25)::integer AS max_index
      FROM traffic_segments
     WHERE (segment_id & 33554431)::integer = ANY(%(tile_ids)s)
     GROUP BY 1
), old AS (
    SELECT level, tile_index, total_segments
      FROM traffic_speed_tiles
     WHERE mode = %(mode)s AND first_hour = %(first_hour)s
       AND ((tile_index << 3) | level) = ANY(%(tile_ids)s)
), gone AS (
    DELETE FROM traffic_speed_tiles t
     WHERE t.mode = %(mode)s AND t.first_hour = %(first_hour)s
       AND ((t.tile_index << 3) | t.level) = ANY(%(tile_ids)s)
       AND ((t.tile_index << 3) | t.level) NOT IN (SELECT tile_id FROM built)
    RETURNING t.level, t.tile_index
), new AS (
    INSERT INTO traffic_speed_tiles AS t (mode, level, tile_index, first_hour, week,
                                          total_segments, segments, observations, min_count)
    SELECT %(mode)s, b.tile_id & 7, b.tile_id >> 3, %(first_hour)s, %(week)s,
           greatest(b.max_index, k.max_index) + 1, b.segments, b.observations, %(min_count)s
      FROM built b
      LEFT JOIN known k USING (tile_id)
    ON CONFLICT (mode, level, tile_index, first_hour) DO UPDATE
       SET week = excluded.week, total_segments = excluded.total_segments,
           segments = excluded.segments, observations = excluded.observations,
           min_count = excluded.min_count, built_at = now()
    RETURNING t.level, t.tile_index, t.total_segments, t.segments, t.observations
)
SELECT coalesce(new.level, old.level)::integer AS level,
       coalesce(new.tile_index, old.tile_index) AS tile_index,
       coalesce(new.total_segments, 0) AS total_segments,
       coalesce(old.total_segments, 0) AS old_total_segments,
       coalesce(new.segments, 0) AS segments,
       coalesce(new.observations, 0) AS observations,
       (SELECT count(*) FROM gone) AS removed
  FROM new
  FULL JOIN old USING (level, tile_index)
 ORDER BY 1, 2;

-- name: tile_speeds
-- The week's speed rows of one tile, by segment index, for the export.
SELECT (segment_id >> 25)::integer AS segment_index, hours, speeds, speed_variances,
       prevalences, next_hours, next_ids, delays, delay_variances, queue_lengths,
       queue_length_variances
  FROM traffic_speeds
 WHERE mode = %(mode)s AND first_hour = %(first_hour)s AND tile_id = %(tile_id)s
 ORDER BY segment_id >> 25;

-- name: latest_week
-- The latest built week of a tile (first hour), NULL when none.
SELECT max(first_hour) AS first_hour
  FROM traffic_speed_tiles
 WHERE mode = %(mode)s AND level = %(level)s AND tile_index = %(tile_index)s;

-- name: segment_week
-- One segment's speeds of one week (renderer traffic speeds).
SELECT s.*, t.week, t.min_count
  FROM traffic_speeds s
  LEFT JOIN traffic_speed_tiles t
    ON t.mode = s.mode AND t.first_hour = s.first_hour
   AND t.level = (s.tile_id & 7) AND t.tile_index = (s.tile_id >> 3)
 WHERE s.mode = %(mode)s AND s.first_hour = %(first_hour)s AND s.segment_id = %(segment_id)s;

-- name: segment_weeks
-- The weeks (with mode) that have speeds of a segment, latest first.
SELECT mode, first_hour
  FROM traffic_speeds
 WHERE segment_id = %(segment_id)s
 ORDER BY first_hour DESC, mode;

-- name: lock_week
-- Serialize builds of the same (mode, level-0 tile, week) (a level-0 item and an explicit
-- level-1 rebuild write the same rows); held until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('traffic_speedtile/' || %(mode)s || '/'
                                      || %(root)s::text || '/' || %(first_hour)s::text));

-- name: histogram_weeks
-- The weeks (first hour) that have histograms, ascending.
SELECT w AS first_hour FROM renderer.traffic_histogram_weeks() AS w;

-- name: latest_built_week
-- The latest week (first hour) of any built speed tile, NULL when none.
SELECT max(first_hour) AS first_hour FROM traffic_speed_tiles;

-- name: week_tiles
-- The (mode, tile id) pairs that have histograms in a week.
SELECT DISTINCT mode, (segment_id & 33554431)::integer AS tile_id
  FROM traffic_histograms
 WHERE hour >= %(first_hour)s AND hour < %(first_hour)s + 168
 ORDER BY 1, 2;

-- name: run_summary
-- What a `renderer traffic run` did since %(since)s (renderer/traffic/run.py): files and
-- observations consumed, rows rejected, speed and reference tiles built, files exported.
WITH files AS (
    SELECT count(*) FILTER (WHERE status = 'consumed') AS consumed,
           count(*) FILTER (WHERE status = 'rejected') AS rejected_files,
           coalesce(sum(observations), 0)::bigint AS observations,
           coalesce(sum(rows_rejected), 0)::bigint AS rejected_rows
      FROM traffic_files WHERE consumed_at >= %(since)s
), speed AS (
    SELECT count(*) AS speed_tiles,
           count(DISTINCT (mode, level, tile_index)) AS tiles,
           coalesce(array_agg(DISTINCT week ORDER BY week), '{}') AS weeks,
           coalesce(sum(segments), 0)::bigint AS segment_weeks,
           coalesce(sum(2 * ceil(total_segments / 10000.0)), 0)::bigint AS speed_files
      FROM traffic_speed_tiles WHERE built_at >= %(since)s
), segs AS (
    SELECT count(DISTINCT segment_id) AS segments
      FROM traffic_speeds s
      JOIN traffic_speed_tiles t
        ON t.mode = s.mode AND t.first_hour = s.first_hour
       AND t.level = (s.tile_id & 7) AND t.tile_index = (s.tile_id >> 3)
     WHERE t.built_at >= %(since)s
), ref AS (
    SELECT count(*) AS reference_tiles
      FROM traffic_reference_tiles WHERE built_at >= %(since)s
), cov AS (
    SELECT count(*) AS coverage_files, max(features) AS coverage_features
      FROM traffic_coverage_state WHERE refreshed_at >= %(since)s
), busiest AS (
    SELECT s.segment_id, s.mode, s.first_hour
      FROM traffic_speeds s
      JOIN traffic_speed_tiles t
        ON t.mode = s.mode AND t.first_hour = s.first_hour
       AND t.level = (s.tile_id & 7) AND t.tile_index = (s.tile_id >> 3)
     WHERE t.built_at >= %(since)s
     ORDER BY cardinality(s.hours) DESC, s.segment_id
     LIMIT 1
)
SELECT files.*, speed.*, segs.*, ref.*, cov.*,
       busiest.segment_id AS example_segment, busiest.mode AS example_mode,
       busiest.first_hour AS example_first_hour
  FROM files, speed, segs, ref, cov
  LEFT JOIN busiest ON true;

-- name: now
-- The database's clock (the summary compares it with built_at and consumed_at).
SELECT now() AS now;
