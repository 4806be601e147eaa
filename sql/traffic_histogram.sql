-- Traffic histograms: counts per (mode, segment, next segment, epoch hour, duration code,
-- queue code). Append-only (sql/schema/traffic.sql): a bin is one row per item that saw it, so
-- every reader sums count over the bin's rows. Written by renderer/traffic/histogram.py,
-- read by the `renderer traffic histogram` and `export-histograms` commands.

-- name: copy_bins
-- The bins of a batch of (tile, hour) items of one week, each item's summed, straight into
-- the week partition ({partition}, from traffic_ingest.record_batch). Append-only: late data
-- for a (tile, hour) adds rows beside the earlier ones and readers sum them; the
-- ledger, written first in the same transaction, is what keeps a file from counting twice.
COPY {partition} (mode, segment_id, next_segment_id, hour, duration_code, queue_code, count)
FROM STDIN (FORMAT binary);

-- name: copy_lengths
-- Reported segment lengths (whole metres) and how many observations reported each, one row
-- per (segment, length) of a batch (summed over its items). Appended, never updated, so
-- concurrent batches never wait on each other; the view traffic_segment_lengths sums them.
COPY traffic_segment_length_reports (segment_id, length, observations) FROM STDIN (FORMAT binary);

-- name: hour_rows
-- The bins of one tile (by tile id) and hour, optionally of one mode, rows of the same bin
-- summed, in the canonical order (mode, segment, no next first, next, codes).
SELECT mode, segment_id, next_segment_id, duration_code, queue_code, sum(count)::bigint AS count
FROM traffic_histograms
WHERE hour = %(hour)s
  AND renderer.segment_tile_id(segment_id) = %(tile_id)s
  AND (%(mode)s::text IS NULL OR mode = %(mode)s)
GROUP BY mode, segment_id, next_segment_id, duration_code, queue_code
ORDER BY mode, segment_id, next_segment_id NULLS FIRST, duration_code, queue_code;

-- name: export_rows
-- Every bin in an hour range, optionally of one tile id, rows of the same bin summed, in
-- (tile, hour) order: the stream that export-histograms cuts into one file per (tile, hour).
SELECT renderer.segment_tile_id(segment_id) AS tile_id, hour, mode, segment_id, next_segment_id,
       duration_code, queue_code, sum(count)::bigint AS count
FROM traffic_histograms
WHERE hour >= %(first_hour)s AND hour < %(end_hour)s
  AND (%(tile_id)s::integer IS NULL OR renderer.segment_tile_id(segment_id) = %(tile_id)s)
GROUP BY segment_id, hour, mode, next_segment_id, duration_code, queue_code
ORDER BY tile_id, hour, mode, segment_id, next_segment_id NULLS FIRST, duration_code,
         queue_code;
