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
-- The packed per-hour record (10 bytes, renderer/traffic/speedtile_pack.py) is read by its
-- ordinality: mean speed, speed variance, prevalence and next_segments, the hour's entry
-- count in the .nex file (OpenTraffic's nextSegmentCounts).
SELECT segment_id, how::integer AS hour_of_week, speed::integer AS speed,
       renderer.traffic_packed_int(hour_values, at + 2, 4) AS speed_variance,
       prevalence::integer AS prevalence,
       renderer.traffic_packed_int(hour_values, at + 8, 2)::integer AS next_segments,
       observations, renderer.traffic_packed_int(hour_values, at, 2)::integer AS mean_speed,
       length
  FROM (SELECT s.segment_id, s.length, s.hour_values, h.how, h.speed, h.observations,
               10 * (h.k - 1)::integer AS at,
               renderer.traffic_packed_int(s.hour_values, 10 * (h.k - 1)::integer + 6, 2)
                   AS prevalence
          FROM traffic_speeds s
         CROSS JOIN LATERAL unnest(s.hours, s.speeds, s.observations) WITH ORDINALITY
               AS h(how, speed, observations, k)
         WHERE s.mode = %(mode)s AND s.first_hour = %(first_hour)s
           AND s.tile_id = %(tile_id)s) h
 WHERE prevalence > 0
 ORDER BY segment_id, how;
