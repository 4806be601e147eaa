-- Reference tiles from the weekly speeds (renderer/traffic/reftile.py).
-- Parameters: %(mode)s, %(tile_ids)s (tile ids, index << 3 | level, of the tiles built),
-- %(end_hour)s (first hour of the window's last week), %(weeks)s (window length in weeks).
-- The window holds the weeks whose first hour is in (end_hour - weeks * 168, end_hour].

-- name: lock_tile
-- Serialize reference builds of the same (mode, level-0 tile) until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('traffic_reftile/' || %(mode)s || '/'
                                      || %(root)s::text));

-- name: window_end
-- The latest week with speeds among the given tiles (first hour), NULL when none.
SELECT max(first_hour) AS end_hour
  FROM traffic_speed_tiles
 WHERE mode = %(mode)s AND renderer.tile_id(level, tile_index) = ANY(%(tile_ids)s) AND segments > 0;

-- name: delete_reference
-- Forget the reference speeds of the given tiles before they are built again.
DELETE FROM traffic_reference WHERE mode = %(mode)s AND tile_id = ANY(%(tile_ids)s);

-- name: build_reference
-- Per segment with non-zero hourly speeds in the window: the 20/40/60/80th percentiles of
-- those speeds, lower nearest rank as OpenTraffic (sorted[floor(n * p)], 0-based), and per
-- hour of week the mean of its non-zero speeds, rounded halves away from zero as
-- OpenTraffic's Python 2 round() did: avg() of integers is numeric, whose round() does that
-- (round(float8) would round halves to even).
INSERT INTO traffic_reference (mode, segment_id, ref20, ref40, ref60, ref80, hours, hourly,
                               samples, weeks, observations, first_hour, last_hour)
WITH samples AS (
    SELECT s.segment_id, s.first_hour, u.how, u.speed, u.observations
      FROM traffic_speeds s
     CROSS JOIN LATERAL unnest(s.hours, s.speeds, s.observations) AS u(how, speed, observations)
     WHERE s.mode = %(mode)s AND s.tile_id = ANY(%(tile_ids)s)
       AND s.first_hour > %(end_hour)s - %(weeks)s * 168 AND s.first_hour <= %(end_hour)s
), per_segment AS (
    SELECT segment_id,
           array_agg(speed ORDER BY speed) FILTER (WHERE speed > 0) AS sorted,
           count(*) FILTER (WHERE speed > 0)::integer AS samples,
           count(DISTINCT first_hour) FILTER (WHERE speed > 0)::integer AS weeks,
           sum(observations)::bigint AS observations,
           min(first_hour) FILTER (WHERE speed > 0) AS first_hour,
           max(first_hour) FILTER (WHERE speed > 0) AS last_hour
      FROM samples
     GROUP BY segment_id
), per_hour AS (
    SELECT segment_id, how, round(avg(speed))::smallint AS mean
      FROM samples
     WHERE speed > 0
     GROUP BY segment_id, how
), hourly AS (
    SELECT segment_id, array_agg(how ORDER BY how) AS hours,
           array_agg(mean ORDER BY how) AS hourly
      FROM per_hour
     GROUP BY segment_id
)
SELECT %(mode)s, p.segment_id,
       p.sorted[p.samples / 5 + 1], p.sorted[2 * p.samples / 5 + 1],
       p.sorted[3 * p.samples / 5 + 1], p.sorted[4 * p.samples / 5 + 1],
       h.hours, h.hourly, p.samples, p.weeks, p.observations, p.first_hour, p.last_hour
  FROM per_segment p
  JOIN hourly h USING (segment_id)
 WHERE p.samples > 0;

-- name: summarize_tiles
-- Record the reference tiles built (range = earliest start and latest end of the window's
-- weeks with speeds, epoch seconds, end exclusive) and forget those of the given tiles that
-- now have none; one row per given tile that has or had a reference tile.
WITH built AS (
    SELECT tile_id, count(*)::integer AS segments, sum(observations)::bigint AS observations,
           max(renderer.segment_index(segment_id)) AS max_index
      FROM traffic_reference
     WHERE mode = %(mode)s AND tile_id = ANY(%(tile_ids)s)
     GROUP BY tile_id
), used AS (
    SELECT renderer.tile_id(level, tile_index) AS tile_id, count(*)::integer AS weeks,
           min(first_hour) AS first_hour, max(first_hour) AS last_hour
      FROM traffic_speed_tiles
     WHERE mode = %(mode)s AND renderer.tile_id(level, tile_index) = ANY(%(tile_ids)s)
       AND segments > 0
       AND first_hour > %(end_hour)s - %(weeks)s * 168 AND first_hour <= %(end_hour)s
     GROUP BY 1
), known AS (
    SELECT tile_id, max_index FROM traffic_known_segments WHERE tile_id = ANY(%(tile_ids)s)
), gone AS (
    DELETE FROM traffic_reference_tiles t
     WHERE t.mode = %(mode)s AND renderer.tile_id(t.level, t.tile_index) = ANY(%(tile_ids)s)
       AND renderer.tile_id(t.level, t.tile_index) NOT IN (SELECT tile_id FROM built)
    RETURNING t.level, t.tile_index
), new AS (
    INSERT INTO traffic_reference_tiles AS t (mode, level, tile_index, range_start, range_end,
                                              weeks, total_segments, segments, observations)
    SELECT %(mode)s, renderer.tile_level(b.tile_id), renderer.tile_index(b.tile_id),
           u.first_hour::bigint * 3600,
           (u.last_hour::bigint + 168) * 3600, u.weeks,
           greatest(b.max_index, k.max_index) + 1, b.segments, b.observations
      FROM built b
      JOIN used u USING (tile_id)
      LEFT JOIN known k USING (tile_id)
    ON CONFLICT (mode, level, tile_index) DO UPDATE
       SET range_start = excluded.range_start, range_end = excluded.range_end,
           weeks = excluded.weeks, total_segments = excluded.total_segments,
           segments = excluded.segments, observations = excluded.observations,
           built_at = now()
    RETURNING t.level, t.tile_index, t.range_start, t.range_end, t.weeks, t.total_segments,
              t.segments, t.observations
)
SELECT new.level::integer AS level, new.tile_index, new.range_start, new.range_end, new.weeks,
       new.total_segments, new.segments, new.observations, true AS present
  FROM new
UNION ALL
SELECT gone.level::integer, gone.tile_index, 0, 0, 0, 0, 0, 0, false
  FROM gone
 ORDER BY 1, 2;

-- name: tile_reference
-- The reference speeds and hourly means of one tile, by segment index, for the export.
SELECT renderer.segment_index(segment_id) AS segment_index, ref20, ref40, ref60, ref80,
       hours, hourly
  FROM traffic_reference
 WHERE mode = %(mode)s AND tile_id = %(tile_id)s
 ORDER BY renderer.segment_index(segment_id);

-- name: segment_reference
-- One segment's reference speeds in every mode (renderer traffic reference).
SELECT r.*, t.range_start, t.range_end, t.weeks AS tile_weeks
  FROM traffic_reference r
  LEFT JOIN traffic_reference_tiles t
    ON t.mode = r.mode AND t.level = renderer.tile_level(r.tile_id)
   AND t.tile_index = renderer.tile_index(r.tile_id)
 WHERE r.segment_id = %(segment_id)s
 ORDER BY r.mode;
