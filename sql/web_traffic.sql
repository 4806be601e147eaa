-- Statements of the traffic pages (renderer/web/traffic_pages.py): a segment's weeks, a
-- tile's weeks, a tile-week's segments. One segment's speeds and reference come from
-- renderer.traffic.access (the statements `renderer traffic speeds` uses).

-- name: segment_weeks
-- The weeks (first hour) and modes that have speeds of a segment, latest first.
SELECT mode, first_hour, cardinality(hours) AS hours_with_data
  FROM traffic_speeds
 WHERE segment_id = %(segment_id)s
 ORDER BY first_hour DESC, mode;

-- name: tile_weeks
-- The built speed tiles of one tile (every mode and week), latest first.
SELECT mode, first_hour, week, total_segments, segments, observations, min_count, built_at
  FROM traffic_speed_tiles
 WHERE level = %(level)s AND tile_index = %(tile_index)s
 ORDER BY first_hour DESC, mode;

-- name: tile_week_segments
-- The segments of one tile in one week and mode, by segment index, at most %(limit)s: their
-- sparse per-hour speeds and observations (the page draws a sparkline of each).
SELECT segment_id, renderer.segment_index(segment_id) AS segment_index, length, hours,
       speeds, observations
  FROM traffic_speeds
 WHERE mode = %(mode)s AND first_hour = %(first_hour)s AND tile_id = %(tile_id)s
 ORDER BY segment_id
 LIMIT %(limit)s;
