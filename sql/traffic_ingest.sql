-- Traffic ingest: the consumed-files ledger and the rejected rows.
-- A reporter file is identified by (key, size, checksum): key relative to the source root,
-- checksum the store's etag (MD5 of the content). Used by renderer/traffic/ingest.py and
-- renderer/traffic/histogram.py.

-- name: ledger_of_keys
-- The ledger rows of some keys (%(keys)s: a JSON array of strings), for the submit's
-- anti-join: a key the ledger does not know is new without its checksum.
SELECT t.key, t.size, t.checksum
FROM traffic_files t
WHERE t.key = ANY (ARRAY(SELECT jsonb_array_elements_text(%(keys)s::jsonb)));

-- name: files_of_prefix
-- The ledger rows of one (tile, hour) prefix.
SELECT key, size, checksum, status
FROM traffic_files
WHERE tile_level = %(level)s AND tile_index = %(index)s AND hour = %(hour)s;

-- name: files_of_prefixes
-- The ledger rows of several (tile, hour) prefixes (parallel arrays), with their prefix.
SELECT f.tile_level AS level, f.tile_index AS index, f.hour, f.key, f.size, f.checksum
FROM unnest(%(levels)s::smallint[], %(indexes)s::integer[], %(hours)s::integer[])
     AS p(level, index, hour)
JOIN traffic_files f ON f.tile_level = p.level AND f.tile_index = p.index AND f.hour = p.hour;

-- name: record_batch
-- Add the files of a batch of prefixes to the ledger (%(files)s: a JSON array of objects, one
-- per file, each naming its prefix), and return the keys recorded and the week partitions of
-- some hours (%(hours)s, one per week; made if missing), where the bins go: one round trip.
-- A file recorded concurrently by another transaction (a zombie attempt) makes this one wait;
-- once that commits, the file is skipped here (not in the keys returned) and the caller
-- refuses its item instead of counting the file twice.
WITH recorded AS (
    INSERT INTO traffic_files (key, size, checksum, tile_level, tile_index, hour, status,
                               reason, rows_read, rows_accepted, rows_rejected, observations)
    SELECT f.key, f.size, f.checksum, f.tile_level, f.tile_index, f.hour, f.status, f.reason,
           f.rows_read, f.rows_accepted, f.rows_rejected, f.observations
    FROM jsonb_to_recordset(%(files)s::jsonb)
         AS f(key text, size bigint, checksum text, tile_level smallint, tile_index integer,
              hour integer, status text, reason text, rows_read int, rows_accepted int,
              rows_rejected int, observations bigint)
    ON CONFLICT DO NOTHING
    RETURNING key
)
SELECT ARRAY(SELECT key FROM recorded) AS recorded,
       ARRAY(SELECT renderer.traffic_histogram_partition(h)
             FROM unnest(%(hours)s::int[]) WITH ORDINALITY AS t(h, n) ORDER BY n) AS partitions;

-- name: unrecord_files
-- Take ledger rows that this transaction recorded out again (their item was refused).
DELETE FROM traffic_files
WHERE (key, size, checksum) IN (
    SELECT * FROM unnest(%(keys)s::text[], %(sizes)s::bigint[], %(checksums)s::text[]));

-- name: record_rejects
-- Keep the rejected rows of some files, with line number, raw text and reason.
INSERT INTO traffic_rejects (file_key, line, raw, reason)
SELECT * FROM unnest(%(keys)s::text[], %(lines)s::int[], %(raws)s::text[], %(reasons)s::text[]);

-- name: ensure_partitions
-- Make the weekly histogram partitions of some epoch hours (one per week is enough).
SELECT renderer.traffic_histogram_partition(h) AS partition
FROM unnest(%(hours)s::int[]) AS h;

-- name: rejects
-- Rejected rows and wholly rejected files (line NULL), optionally of one file, newest first.
SELECT file_key, line, reason, raw, created_at
FROM (
    SELECT file_key, line, reason, raw, created_at FROM traffic_rejects
    WHERE %(file)s::text IS NULL OR file_key = %(file)s
    UNION ALL
    SELECT key, NULL, reason, NULL, consumed_at FROM traffic_files
    WHERE status = 'rejected' AND (%(file)s::text IS NULL OR key = %(file)s)
) r
ORDER BY created_at DESC, file_key, line NULLS FIRST
LIMIT %(limit)s;

-- name: ledger_totals
-- Totals over the ledger, for summaries.
SELECT count(*) AS files,
       count(*) FILTER (WHERE status = 'rejected') AS files_rejected,
       coalesce(sum(rows_read), 0) AS rows_read,
       coalesce(sum(rows_accepted), 0) AS rows_accepted,
       coalesce(sum(rows_rejected), 0) AS rows_rejected,
       coalesce(sum(observations), 0) AS observations
FROM traffic_files;
