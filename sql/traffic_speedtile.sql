-- Weekly speed tiles from the hourly histograms (renderer/traffic/speedtile.py).
-- Parameters: %(mode)s, %(first_hour)s (epoch hour of the week's Monday 00:00 UTC),
-- %(tile_ids)s (tile ids, index << 3 | level, of the tiles built), %(min_count)s,
-- %(max_speed)s (km/h; faster is published as 0 = no data), %(week)s ('2016-W44').
-- Sums are float8: exact for integers below 2^53, and much faster than numeric.
-- Rounding is OpenTraffic's, Python 2's round(): halves away from zero, on the float's exact
-- value. For the non-negative values here floor(x + 0.49999999999999994) is exactly that
-- (the addend is the double just below 0.5; floor(x + 0.5) would round 0.49999999999999994
-- up, round(float8) rounds halves to even, a cast to numeric keeps only 15 digits);
-- renderer.traffic.speedtile.round_half_away is the twin, and tests hold them equal.

-- name: delete_speeds
-- Forget the week's speeds of the given tiles before they are built again.
DELETE FROM traffic_speeds
 WHERE mode = %(mode)s AND first_hour = %(first_hour)s AND tile_id = ANY(%(tile_ids)s);

-- name: streaming_plan
-- Before build_speeds: sorted aggregation and merge joins only. The week's histogram rows
-- (found through the tile BRIN) are sorted once by (segment, hour, next), and every step of
-- build_speeds then streams: no hash table, no other sort. Hash aggregation of the same rows
-- and a sort of its output is 35 % slower (millions of tiny groups). Transaction-local;
-- default_plan restores the defaults.
SELECT set_config('enable_hashagg', 'off', true), set_config('enable_hashjoin', 'off', true);

-- name: default_plan
-- After build_speeds.
SELECT set_config('enable_hashagg', 'on', true), set_config('enable_hashjoin', 'on', true);

-- name: build_speeds
-- One row per segment of the given tiles with observations in the week: per hour of week
-- OpenTraffic's speed (length / shortest mean duration over next segments * 3.6), our
-- count-weighted mean speed, the variance of the per-next-segment speeds, the prevalence;
-- per (hour, next segment) the delay, queue length and their variances. Hours under the
-- minimum count publish no data.
--
-- Three passes over one order, (segment, hour, next segment NULLS LAST), from one sort of
-- the week's histogram rows: sums per next segment (bins), the hour's totals over its next
-- segments (a window), the arrays and packed records per segment (the final GROUP BY). No other sort, no hash
-- table. The keys are the segment id alone, not (tile, segment): a segment id holds its
-- tile, and an int8 first key that rarely ties makes the sort cheaper. Each value is
-- computed once, in the pass that first has what it needs:
-- per-next means in the bins' projection, the hour's speeds in the window's projection
-- (only on the hour's first row), the rest as aggregate arguments. The arrays and records
-- are aggregated without ORDER BY: array_agg and string_agg keep input order, and the
-- window sorted (or streamed) its rows by next segment; per-aggregate ORDER BY would sort
-- every group 5 times. Tests hold the result equal to the Python twin, order included.
INSERT INTO traffic_speeds (
    mode, first_hour, segment_id, length, hours, observations, speeds, hour_values, nexts,
    total_observations)
WITH bins AS (
    -- per (segment, hour, next segment): count, mean duration (s) and queue code, the
    -- variance of the duration, and v = 1 / mean duration (NULL for 0 s), whose spread over
    -- the next segments is the speed variance
    SELECT h.segment_id, h.hour, h.next_segment_id,
           sum(h.count::float8) AS n,
           sum(h.count::float8 * h.d) / sum(h.count::float8) AS mean_d,
           floor(greatest(sum(h.count::float8 * h.d * h.d) / sum(h.count::float8)
                          - (sum(h.count::float8 * h.d) / sum(h.count::float8))
                            * (sum(h.count::float8 * h.d) / sum(h.count::float8)),
                          0) + 0.49999999999999994::float8)::bigint AS delay_variance,
           sum(h.count::float8 * h.queue_code) / sum(h.count::float8) AS mean_q,
           sum(h.count::float8 * h.queue_code * h.queue_code) / sum(h.count::float8) AS mean_qq,
           sum(h.count::float8) / nullif(sum(h.count::float8 * h.d), 0) AS v
      FROM (SELECT segment_id, next_segment_id, hour, count, queue_code,
                   renderer.traffic_duration_seconds(duration_code)::float8 AS d
              FROM traffic_histograms
             WHERE mode = %(mode)s
               AND hour >= %(first_hour)s AND hour < %(first_hour)s + 168
               AND renderer.segment_tile_id(segment_id) = ANY(%(tile_ids)s)) h
     GROUP BY h.segment_id, h.hour, h.next_segment_id
), lengths AS (
    -- the segments table when one is loaded, else the most common reported length
    SELECT DISTINCT ON (segment_id) segment_id, length::float8 AS length
      FROM (SELECT segment_id, length, 0 AS rank, 0::bigint AS observations
              FROM traffic_segments
             WHERE renderer.segment_tile_id(segment_id) = ANY(%(tile_ids)s)
            UNION ALL
            SELECT segment_id, length, 1, observations
              FROM traffic_segment_lengths
             WHERE renderer.segment_tile_id(segment_id) = ANY(%(tile_ids)s)) x
     ORDER BY segment_id, rank, observations DESC, length
), nexts AS (
    -- the bins with their hour's total and shortest mean duration; on the hour's first row
    -- (rn = 1) its speed, mean speed (count-weighted mean of the next segments' speeds over
    -- those with a duration) and speed variance; coalesce(nullif(least(x, max + 1),
    -- max + 1), 0) is "x, or 0 above the maximum" without computing x twice
    SELECT b.segment_id, (b.hour - %(first_hour)s)::smallint AS how,
           b.next_segment_id, b.n, b.mean_d, b.delay_variance, b.mean_q, b.mean_qq, l.length,
           min(b.mean_d) OVER w AS min_d,
           sum(b.n) OVER w AS total,
           sum(b.n) OVER w >= %(min_count)s AS published,
           row_number() OVER w AS rn,
           count(*) OVER w AS next_segments,
           CASE WHEN row_number() OVER w = 1 AND sum(b.n) OVER w >= %(min_count)s
                THEN coalesce(nullif(least(floor(l.length / nullif(min(b.mean_d) OVER w, 0)
                                                 * 3.6::float8 + 0.49999999999999994::float8),
                                           %(max_speed)s + 1), %(max_speed)s + 1), 0)
                ELSE 0 END AS speed,
           CASE WHEN row_number() OVER w = 1 AND sum(b.n) OVER w >= %(min_count)s
                THEN coalesce(nullif(least(floor(3.6::float8 * l.length
                                                 * sum(b.n * b.v) OVER w
                                                 / sum(b.n) FILTER (WHERE b.v IS NOT NULL) OVER w
                                                 + 0.49999999999999994::float8),
                                           %(max_speed)s + 1), %(max_speed)s + 1), 0)
                ELSE 0 END AS mean_speed,
           CASE WHEN row_number() OVER w = 1
                THEN (3.6::float8 * l.length) * (3.6::float8 * l.length) * var_pop(b.v) OVER w
                END AS speed_variance
      FROM bins b
      LEFT JOIN lengths l USING (segment_id)
    WINDOW w AS (PARTITION BY b.segment_id, b.hour ORDER BY b.next_segment_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
)
SELECT %(mode)s, %(first_hour)s, segment_id, min(length)::integer,
       array_agg(how) FILTER (WHERE rn = 1),
       array_agg(total::bigint) FILTER (WHERE rn = 1),
       array_agg(speed::smallint) FILTER (WHERE rn = 1),
       -- the packed records (renderer/traffic/speedtile_pack.py), big-endian as the *send
       -- functions write them
       string_agg(int2send(mean_speed::smallint)
                  || int4send(CASE WHEN speed > 0
                                   THEN floor(speed_variance + 0.49999999999999994::float8)
                                   ELSE 0 END::integer)
                  || int2send(CASE WHEN published
                                   THEN renderer.traffic_prevalence(total::bigint, segment_id,
                                                                    how, %(first_hour)s)
                                   ELSE 0 END::smallint)
                  || int2send(CASE WHEN published THEN next_segments ELSE 0 END::smallint),
                  ''::bytea) FILTER (WHERE rn = 1),
       coalesce(string_agg(
           int2send(how) || int8send(coalesce(next_segment_id, -9223372036854775808))
           || int8send(n::bigint)
           || int4send(floor(mean_d - min_d + 0.49999999999999994::float8)::integer)
           || int8send(delay_variance)
           -- queues are rare: skip the arithmetic of the zeros
           || int4send(CASE WHEN mean_q > 0
                            THEN coalesce(floor(mean_q * length / 255
                                                + 0.49999999999999994::float8), 0)
                            ELSE 0 END::integer)
           || int8send(CASE WHEN mean_q > 0
                            THEN coalesce(floor(greatest(mean_qq - mean_q * mean_q, 0)
                                                * (length / 255) * (length / 255)
                                                + 0.49999999999999994::float8), 0)
                            ELSE 0 END::bigint),
           ''::bytea) FILTER (WHERE published), ''::bytea),
       sum(total::bigint) FILTER (WHERE rn = 1)
  FROM nexts
 GROUP BY segment_id;

-- name: summarize_tiles
-- Record the built tiles of the week (and forget those of the given tiles that now have no
-- data); one row per given tile that has or had a speed tile, with the subtile counts
-- before and after so the export can remove files that are no longer produced. The built
-- tiles' sums are read back from traffic_speeds, or given (%(built_tile_ids)s,
-- %(built_segments)s, %(built_observations)s, %(built_max_index)s: the C engine's sums of
-- the rows it wrote, the same numbers without a scan of the week's rows after the write;
-- NULL: read them back).
WITH built AS (
    SELECT s.tile_id, count(*)::integer AS segments,
           sum(s.total_observations)::bigint AS observations,
           max(renderer.segment_index(s.segment_id)) AS max_index
      FROM traffic_speeds s
     WHERE %(built_tile_ids)s::integer[] IS NULL
       AND s.mode = %(mode)s AND s.first_hour = %(first_hour)s AND s.tile_id = ANY(%(tile_ids)s)
     GROUP BY s.tile_id
    UNION ALL
    SELECT tile_id, segments, observations, max_index
      FROM unnest(%(built_tile_ids)s::integer[], %(built_segments)s::integer[],
                  %(built_observations)s::bigint[], %(built_max_index)s::integer[])
           AS b (tile_id, segments, observations, max_index)
), known AS (
    SELECT tile_id, max_index FROM traffic_known_segments WHERE tile_id = ANY(%(tile_ids)s)
), old AS (
    SELECT level, tile_index, total_segments
      FROM traffic_speed_tiles
     WHERE mode = %(mode)s AND first_hour = %(first_hour)s
       AND renderer.tile_id(level, tile_index) = ANY(%(tile_ids)s)
), gone AS (
    DELETE FROM traffic_speed_tiles t
     WHERE t.mode = %(mode)s AND t.first_hour = %(first_hour)s
       AND renderer.tile_id(t.level, t.tile_index) = ANY(%(tile_ids)s)
       AND renderer.tile_id(t.level, t.tile_index) NOT IN (SELECT tile_id FROM built)
    RETURNING t.level, t.tile_index
), new AS (
    INSERT INTO traffic_speed_tiles AS t (mode, level, tile_index, first_hour, week,
                                          total_segments, segments, observations, min_count)
    SELECT %(mode)s, renderer.tile_level(b.tile_id), renderer.tile_index(b.tile_id),
           %(first_hour)s, %(week)s,
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
-- The week's speed rows of one tile, by segment index, for the export (which unpacks
-- hour_values and nexts: renderer/traffic/speedtile_pack.py).
SELECT renderer.segment_index(segment_id) AS segment_index, hours, speeds, hour_values, nexts
  FROM traffic_speeds
 WHERE mode = %(mode)s AND first_hour = %(first_hour)s AND tile_id = %(tile_id)s
 ORDER BY renderer.segment_index(segment_id);

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
   AND t.level = renderer.tile_level(s.tile_id) AND t.tile_index = renderer.tile_index(s.tile_id)
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
SELECT DISTINCT mode, renderer.segment_tile_id(segment_id) AS tile_id
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
           count(DISTINCT (level, tile_index)) AS tiles,
           coalesce(array_agg(DISTINCT week ORDER BY week), '{}') AS weeks,
           coalesce(sum(segments), 0)::bigint AS segment_weeks,
           coalesce(sum(2 * ceil(total_segments / 10000.0)), 0)::bigint AS speed_files
      FROM traffic_speed_tiles WHERE built_at >= %(since)s
), segs AS (
    SELECT count(DISTINCT segment_id) AS segments
      FROM traffic_speeds s
      JOIN traffic_speed_tiles t
        ON t.mode = s.mode AND t.first_hour = s.first_hour
       AND t.level = renderer.tile_level(s.tile_id)
       AND t.tile_index = renderer.tile_index(s.tile_id)
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
       AND t.level = renderer.tile_level(s.tile_id)
       AND t.tile_index = renderer.tile_index(s.tile_id)
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

-- name: segment_histogram_hours
-- Whether a segment has histograms: in the given week, and at all (the BRIN on the tile id
-- narrows the scan to its tile's rows).
SELECT EXISTS (SELECT 1 FROM traffic_histograms
                WHERE (segment_id & 33554431)::integer = (%(segment_id)s::bigint & 33554431)::integer
                  AND segment_id = %(segment_id)s
                  AND hour >= %(first_hour)s AND hour < %(first_hour)s + 168) AS in_week,
       EXISTS (SELECT 1 FROM traffic_histograms
                WHERE (segment_id & 33554431)::integer = (%(segment_id)s::bigint & 33554431)::integer
                  AND segment_id = %(segment_id)s) AS at_all;

-- name: histogram_rows_part_copy
-- The histogram rows of the given tiles and segments lo..hi (every int8 for a build in one
-- part; a build split across backends reads its parts at once, speedtile_c.py) in key order
-- (segment, hour, next segment NULLS LAST), as binary COPY, for ext/speedtile.c to compute
-- what build_speeds computes. The range first: every part scans the tile-week, and the
-- planner keeps the written order of quals of one cost, so a row of another part fails on
-- its first qual (a part with no row: 0.50-0.52 server CPU s against 0.68-0.70 with the
-- range last, BENCHMARKS.md wave 10).
COPY (SELECT segment_id, next_segment_id, hour, duration_code, queue_code, count
        FROM traffic_histograms
       WHERE segment_id BETWEEN %(lo)s AND %(hi)s
         AND mode = %(mode)s
         AND hour >= %(first_hour)s AND hour < %(first_hour)s + 168
         AND renderer.segment_tile_id(segment_id) = ANY(%(tile_ids)s)
       ORDER BY segment_id, hour, next_segment_id)
  TO STDOUT (FORMAT binary);

-- name: histogram_rows_part_heap_copy
-- The same rows in the order the scan finds them, for ext/speedtile.c to sort (its
-- speedtile_sort.c): the server then only scans, filters and sends (BENCHMARKS.md).
COPY (SELECT segment_id, next_segment_id, hour, duration_code, queue_code, count
        FROM traffic_histograms
       WHERE segment_id BETWEEN %(lo)s AND %(hi)s
         AND mode = %(mode)s
         AND hour >= %(first_hour)s AND hour < %(first_hour)s + 168
         AND renderer.segment_tile_id(segment_id) = ANY(%(tile_ids)s))
  TO STDOUT (FORMAT binary);

-- name: nothing_written
-- Whether the transaction has written nothing yet (no transaction id): only then may other
-- backends read for it through its exported snapshot, which shows none of its own writes.
SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh;

-- name: read_committed
-- Whether the transaction reads committed rows afresh at each statement (then the parts of a
-- split build may share a snapshot of their own, speedtile_c.py).
SELECT current_setting('transaction_isolation') = 'read committed' AS read_committed;

-- name: export_snapshot
-- The transaction's snapshot, for the parts of a split build to read at (the caller's, or in
-- read committed the first part's).
SELECT pg_export_snapshot() AS snapshot;

-- name: part_begin
-- A part's transaction: read only, at the snapshot the build or the first part exported
-- (export_snapshot, part_snapshot).
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;

-- name: part_snapshot
-- The exported snapshot (a literal: SET takes no parameters).
SET TRANSACTION SNAPSHOT {snapshot};

-- name: part_work_mem
-- Memory for a part's sort, for its transaction only ('' keeps the server's).
SELECT set_config('work_mem', %(work_mem)s, true);

-- name: segment_lengths
-- The lengths build_speeds uses (its `lengths`), by segment id: the segments table when one
-- is loaded, else the most common reported length.
SELECT DISTINCT ON (segment_id) segment_id, length::bigint AS length
  FROM (SELECT segment_id, length, 0 AS rank, 0::bigint AS observations
          FROM traffic_segments
         WHERE renderer.segment_tile_id(segment_id) = ANY(%(tile_ids)s)
        UNION ALL
        SELECT segment_id, length, 1, observations
          FROM traffic_segment_lengths
         WHERE renderer.segment_tile_id(segment_id) = ANY(%(tile_ids)s)) x
 ORDER BY segment_id, rank, observations DESC, length;

-- name: speeds_copy
-- The C engine's rows, binary COPY, in the column order of ext/speedtile.c.
COPY traffic_speeds (mode, first_hour, segment_id, length, hours, observations, speeds,
                     hour_values, nexts, total_observations)
  FROM STDIN (FORMAT binary);
