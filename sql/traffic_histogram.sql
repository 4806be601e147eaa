-- Traffic histograms: one row per (mode, segment, next segment, epoch hour, duration code,
-- queue code), counts summed. Written by renderer/traffic/histogram.py, read by the
-- `renderer traffic histogram` and `export-histograms` commands.

-- name: upsert_bins
-- Add the bins of one (tile, hour) to the histogram: each (mode, segment, next, codes) at
-- most once in the arrays (summed by the caller), added to the stored counts. No ORDER BY:
-- only one transaction writes an hour at a time (the queue runs an item once at a time and a
-- stray second attempt stops at the ledger first).
INSERT INTO traffic_histograms AS h
       (mode, segment_id, next_segment_id, hour, duration_code, queue_code, count)
SELECT b.mode, b.segment_id, b.next_segment_id, %(hour)s, b.duration_code, b.queue_code,
       b.count
FROM unnest(%(modes)s::text[], %(segments)s::bigint[], %(nexts)s::bigint[],
            %(durations)s::smallint[], %(queues)s::smallint[], %(counts)s::bigint[])
     AS b(mode, segment_id, next_segment_id, duration_code, queue_code, count)
ON CONFLICT ON CONSTRAINT traffic_histograms_bin
DO UPDATE SET count = h.count + excluded.count;

-- name: insert_bins
-- The same without ON CONFLICT, for a (tile, hour) that has no histogram rows yet (no file of
-- it in the ledger): half the cost per bin, as PostgreSQL skips the speculative insertion. A
-- row that did exist would still stop the transaction at the unique constraint.
INSERT INTO traffic_histograms
       (mode, segment_id, next_segment_id, hour, duration_code, queue_code, count)
SELECT b.mode, b.segment_id, b.next_segment_id, %(hour)s, b.duration_code, b.queue_code,
       b.count
FROM unnest(%(modes)s::text[], %(segments)s::bigint[], %(nexts)s::bigint[],
            %(durations)s::smallint[], %(queues)s::smallint[], %(counts)s::bigint[])
     AS b(mode, segment_id, next_segment_id, duration_code, queue_code, count);

-- name: upsert_lengths
-- Add reported segment lengths (whole metres) and how many observations reported each; each
-- (segment, length) at most once in the arrays. Sorted, because items of other hours of the
-- same tile update the same rows concurrently: one lock order, no deadlock.
INSERT INTO traffic_segment_lengths AS l (segment_id, length, observations)
SELECT s.segment_id, s.length, s.observations
FROM unnest(%(segments)s::bigint[], %(lengths)s::int[], %(observations)s::bigint[])
     AS s(segment_id, length, observations)
ORDER BY s.segment_id, s.length
ON CONFLICT (segment_id, length)
DO UPDATE SET observations = l.observations + excluded.observations;

-- name: hour_rows
-- The histogram rows of one tile (by tile id) and hour, optionally of one mode, in the
-- canonical order (mode, segment, no next first, next, codes).
SELECT mode, segment_id, next_segment_id, duration_code, queue_code, count
FROM traffic_histograms
WHERE hour = %(hour)s
  AND segment_id & 33554431 = %(tile_id)s
  AND (%(mode)s::text IS NULL OR mode = %(mode)s)
ORDER BY mode, segment_id, next_segment_id NULLS FIRST, duration_code, queue_code;

-- name: export_rows
-- Every histogram row in an hour range, optionally of one tile id, grouped by (tile, hour):
-- the stream that export-histograms cuts into one file per (tile, hour).
SELECT segment_id & 33554431 AS tile_id, hour, mode, segment_id, next_segment_id,
       duration_code, queue_code, count
FROM traffic_histograms
WHERE hour >= %(first_hour)s AND hour < %(end_hour)s
  AND (%(tile_id)s::bigint IS NULL OR segment_id & 33554431 = %(tile_id)s)
ORDER BY tile_id, hour, mode, segment_id, next_segment_id NULLS FIRST, duration_code,
         queue_code;

-- name: totals
-- Sum of counts and number of rows, per mode, over an hour range.
SELECT mode, count(*) AS bins, sum(count) AS observations
FROM traffic_histograms
WHERE hour >= %(first_hour)s AND hour < %(end_hour)s
GROUP BY mode
ORDER BY mode;
