-- Speeds of a week as a table for analysts (renderer/traffic/export_speeds.py): one row per
-- (mode, segment, hour of week) published in the week's speed tiles.

-- name: week_tiles
-- The built speed tiles of a week (every mode or the given ones), with their segment counts
-- for the progress bar, in export order.
SELECT mode, level::integer AS level, tile_index, segments
  FROM traffic_speed_tiles
 WHERE first_hour = %(first_hour)s
   AND (%(modes)s::text[] IS NULL OR mode = ANY(%(modes)s::text[]))
 ORDER BY mode, level, tile_index;

-- name: built_weeks
-- The weeks with built speed tiles, latest first: what an export of an empty week suggests.
SELECT DISTINCT week, first_hour FROM traffic_speed_tiles ORDER BY first_hour DESC LIMIT 8;

-- name: tile_hours
-- One row per published hour (prevalence > 0, as in the .spd files: hours under the
-- minimum count are not published) of each segment of one tile-week, by segment then hour.
-- next_segments is the hour's entry count in the .nex file (OpenTraffic's
-- nextSegmentCounts); the arrays are short (the hours with data), so counting them per hour
-- costs little.
SELECT s.segment_id, h.how::integer AS hour_of_week, h.speed::integer AS speed,
       h.variance::bigint AS speed_variance, h.prevalence::integer AS prevalence,
       (SELECT count(*) FROM unnest(s.next_hours) n WHERE n = h.how)::integer AS next_segments,
       h.observations, h.mean_speed::integer AS mean_speed, s.length
  FROM traffic_speeds s
 CROSS JOIN LATERAL unnest(s.hours, s.speeds, s.speed_variances, s.prevalences,
                           s.observations, s.mean_speeds)
       AS h(how, speed, variance, prevalence, observations, mean_speed)
 WHERE s.mode = %(mode)s AND s.first_hour = %(first_hour)s AND s.tile_id = %(tile_id)s
   AND h.prevalence > 0
 ORDER BY s.segment_id, h.how;
