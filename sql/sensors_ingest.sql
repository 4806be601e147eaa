-- Sensor ingest: checked rows -> sensors_raw, with the file ledger (sensors_files), the
-- rejected rows (sensors_rejects) and the days to recompute (sensors_days). Used by
-- renderer/sensors/ingest.py. A file's rejected rows arrive in the session's temporary table
-- sensors_checked; its accepted rows, validated and typed (see renderer/sensors/staging.py
-- for why validation runs in Arrow rather than in SQL), go straight into sensors_raw by
-- binary COPY (copy_raw), or, when some are stored already or repeated, into sensors_checked
-- too and on by upsert_raw.

-- name: known_file
-- The ledger row of a file version, if it was ingested already and is still in effect (a
-- superseded version that comes back, say a reverted correction, is ingested again).
SELECT id, status FROM sensors_files
WHERE key = %(key)s AND size = %(size)s AND checksum = %(checksum)s
  AND status <> 'superseded';

-- name: forget_superseded
-- Before a superseded version is ingested again: drop its old ledger row (and its rejects).
DELETE FROM sensors_files
WHERE key = %(key)s AND size = %(size)s AND checksum = %(checksum)s AND status = 'superseded';

-- name: session
-- Room for the temporary tables of a day-sized file in memory (only before any is made).
SELECT set_config('temp_buffers', '256MB', false);

-- name: utc
-- The session in UTC: checked rows are copied with zone-less UTC times (Arrow writes them 5x
-- faster than zoned ones).
SELECT set_config('TimeZone', 'UTC', false);

-- name: reset_stage
-- Drop the previous file's temporary tables.
DROP TABLE IF EXISTS sensors_checked, sensors_changed;

-- name: create_checked
-- The checked rows of the file being ingested (renderer/sensors/staging.py fills it by COPY):
-- typed values of the accepted rows (reason NULL), line, reason and fields of the rejected.
CREATE TEMP TABLE sensors_checked (
    line                   bigint NOT NULL,
    reason                 text,
    raw                    text,
    uniqueid               integer,
    recordtimestamp        timestamptz,
    currentspeed_hundredths integer,
    bezettingsgraad        real,
    trafficintensityclass1 integer,
    trafficintensityclass2 integer,
    trafficintensityclass3 integer,
    trafficintensityclass4 integer,
    trafficintensityclass5 integer
);

-- name: reject_duplicates
-- A second row of the same detector and instant in one file is rejected, naming the first;
-- its fields are written back from the typed values (accepted rows keep no text).
UPDATE sensors_checked c
SET reason = format('duplicate of line %%s (same uniqueid and recordtimestamp)', d.first_line),
    raw = concat_ws(',', c.uniqueid, extract(epoch FROM c.recordtimestamp),
                    trim_scale(c.currentspeed_hundredths / 100.0),
                    c.bezettingsgraad, c.trafficintensityclass1, c.trafficintensityclass2,
                    c.trafficintensityclass3, c.trafficintensityclass4, c.trafficintensityclass5)
FROM (
    SELECT uniqueid, recordtimestamp, min(line) AS first_line
    FROM sensors_checked WHERE reason IS NULL
    GROUP BY uniqueid, recordtimestamp HAVING count(*) > 1
) d
WHERE c.reason IS NULL AND c.uniqueid = d.uniqueid AND c.recordtimestamp = d.recordtimestamp
  AND c.line > d.first_line;

-- name: recount
-- The ledger counts after duplicates were rejected.
UPDATE sensors_files f
SET rows_accepted = c.accepted, rows_rejected = c.rejected
FROM (SELECT count(*) FILTER (WHERE reason IS NULL) AS accepted,
             count(*) FILTER (WHERE reason IS NOT NULL) AS rejected
      FROM sensors_checked) c
WHERE f.id = %(file_id)s
RETURNING f.rows_read, f.rows_accepted, f.rows_rejected;

-- name: ensure_partitions
-- Make the raw day partitions of some days (own short transaction: see
-- renderer.sensors_partition in sql/schema/sensors.sql).
SELECT renderer.sensors_raw_partition(d) AS partition FROM unnest(%(days)s::date[]) AS d;

-- name: record_file
-- Add a file version to the ledger. ON CONFLICT DO NOTHING: a concurrent ingest of the same
-- version waits on the unique key here, then gets no row and rolls back.
INSERT INTO sensors_files (key, size, checksum, status, reason, rows_read, rows_accepted,
                           rows_rejected, first_record, last_record)
VALUES (%(key)s, %(size)s, %(checksum)s, %(status)s, %(reason)s, %(rows_read)s,
        %(rows_accepted)s, %(rows_rejected)s, %(first_record)s, %(last_record)s)
ON CONFLICT ON CONSTRAINT sensors_files_version DO NOTHING
RETURNING id;

-- name: supersede
-- Older consumed versions of the same key: marked superseded; their time spans returned so
-- their rows can be removed with partition pruning.
UPDATE sensors_files SET status = 'superseded'
WHERE key = %(key)s AND id <> %(file_id)s AND status = 'consumed'
RETURNING id, first_record, last_record;

-- name: create_changed
-- The (detector, instant) pairs this ingest added, replaced or removed.
CREATE TEMP TABLE sensors_changed (
    uniqueid        integer     NOT NULL,
    recordtimestamp timestamptz NOT NULL
);

-- name: remove_superseded
-- Remove the rows an older version of the file still owns (not those a later file replaced).
WITH gone AS (
    DELETE FROM sensors_raw
    WHERE file_id = ANY(%(file_ids)s::bigint[])
      AND recordtimestamp BETWEEN %(first)s AND %(last)s
    RETURNING uniqueid, recordtimestamp
)
INSERT INTO sensors_changed SELECT uniqueid, recordtimestamp FROM gone;

-- name: copy_raw
-- The accepted rows straight into sensors_raw, sorted by the key, as binary COPY
-- (renderer/sensors/rows.py): the usual case, a file of rows not stored yet. Run under a
-- savepoint; a unique violation (rows seen before, or twice in the file) sends the file
-- through sensors_checked and upsert_raw instead.
COPY sensors_raw (uniqueid, recordtimestamp, currentspeed_hundredths, bezettingsgraad,
                  trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
                  trafficintensityclass4, trafficintensityclass5, file_id)
FROM STDIN (FORMAT binary);

-- name: copy_changed
-- Each detector's last accepted row per UTC day (all mark_days needs of the file's rows).
COPY sensors_changed (uniqueid, recordtimestamp) FROM STDIN;

-- name: upsert_raw
-- The accepted rows into sensors_raw; a row of the same detector and instant from an earlier
-- file is replaced (the latest file wins). Needs the file's own duplicates rejected first.
INSERT INTO sensors_raw (uniqueid, recordtimestamp, currentspeed_hundredths, bezettingsgraad,
                         trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
                         trafficintensityclass4, trafficintensityclass5, file_id)
SELECT uniqueid, recordtimestamp, currentspeed_hundredths, bezettingsgraad,
       trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
       trafficintensityclass4, trafficintensityclass5, %(file_id)s
FROM sensors_checked WHERE reason IS NULL
ORDER BY uniqueid, recordtimestamp
ON CONFLICT (uniqueid, recordtimestamp) DO UPDATE SET
    currentspeed_hundredths = excluded.currentspeed_hundredths,
    bezettingsgraad = excluded.bezettingsgraad,
    trafficintensityclass1 = excluded.trafficintensityclass1,
    trafficintensityclass2 = excluded.trafficintensityclass2,
    trafficintensityclass3 = excluded.trafficintensityclass3,
    trafficintensityclass4 = excluded.trafficintensityclass4,
    trafficintensityclass5 = excluded.trafficintensityclass5,
    file_id = excluded.file_id;

-- name: record_rejects
-- Keep the rejected rows with line, the fields as read and the reason.
INSERT INTO sensors_rejects (file_id, line, raw, reason)
SELECT %(file_id)s, line, coalesce(raw, ''), reason
FROM sensors_checked
WHERE reason IS NOT NULL
ORDER BY line;

-- name: mark_days
-- Bump raw_version of every day whose enriched rows the change can alter: the days of the
-- changed rows; the day of each detector's next record after its last changed row of a day
-- (its previousspeed); and the next day when that detector has records there within 600 s of
-- the change (their 2- and 10-minute windows). Returns the days marked.
WITH changed AS (
    SELECT uniqueid, recordtimestamp FROM sensors_checked WHERE reason IS NULL
    UNION ALL
    SELECT uniqueid, recordtimestamp FROM sensors_changed
), groups AS (
    SELECT uniqueid, (recordtimestamp AT TIME ZONE 'UTC')::date AS day,
           max(recordtimestamp) AS last
    FROM changed GROUP BY 1, 2
), days AS (
    SELECT day FROM groups
    UNION
    SELECT (n.recordtimestamp AT TIME ZONE 'UTC')::date
    FROM groups g CROSS JOIN LATERAL (
        SELECT r.recordtimestamp FROM sensors_raw r
        WHERE r.uniqueid = g.uniqueid AND r.recordtimestamp > g.last
        ORDER BY r.recordtimestamp LIMIT 1
    ) n
    UNION
    SELECT g.day + 1 FROM groups g
    WHERE g.last >= (g.day + 1)::timestamp AT TIME ZONE 'UTC' - interval '600 seconds'
      AND EXISTS (
        SELECT 1 FROM sensors_raw r
        WHERE r.uniqueid = g.uniqueid
          AND r.recordtimestamp >= (g.day + 1)::timestamp AT TIME ZONE 'UTC'
          AND r.recordtimestamp <= g.last + interval '600 seconds')
)
INSERT INTO sensors_days AS s (day) SELECT day FROM days
ON CONFLICT (day) DO UPDATE SET raw_version = s.raw_version + 1, raw_changed_at = now()
RETURNING day;

-- name: files
-- The ledger, newest first, optionally of keys containing a string.
SELECT id, key, size, checksum, status, reason, rows_read, rows_accepted, rows_rejected,
       first_record, last_record, ingested_at
FROM sensors_files
WHERE %(like)s::text IS NULL OR key LIKE '%%' || %(like)s || '%%'
ORDER BY id DESC
LIMIT %(limit)s;

-- name: rejects
-- Rejected rows (line > 0) and wholly rejected files (line 0), newest file first.
SELECT f.key AS file, r.line, r.reason, r.raw
FROM sensors_rejects r JOIN sensors_files f ON f.id = r.file_id
WHERE %(like)s::text IS NULL OR f.key LIKE '%%' || %(like)s || '%%'
UNION ALL
SELECT key, 0, reason, NULL FROM sensors_files
WHERE status = 'rejected' AND (%(like)s::text IS NULL OR key LIKE '%%' || %(like)s || '%%')
ORDER BY 1, 2
LIMIT %(limit)s;

-- name: lock_days
-- Fused enrichment (renderer/sensors/fused.py): each day's enrichment lock, the one
-- renderer.sensors_enrich_begin takes (so a second ingest of the same day, or a day item,
-- waits here until this transaction ends), in day order. A statement of its own: the next
-- one's snapshot, taken after the wait, sees what the holder committed.
SELECT count(pg_advisory_xact_lock(hashtext('sensors_enriched_' || to_char(d, 'YYYYMMDD')
                                            || '_new'))) AS locked
FROM (SELECT d FROM unnest(%(days)s::date[]) AS d ORDER BY d) AS days;

-- name: fresh_days
-- Of some days, those with no raw row stored: a file's rows of such a day are all it has.
SELECT d AS day FROM unnest(%(days)s::date[]) AS d
WHERE NOT EXISTS (
    SELECT 1 FROM sensors_raw r
    WHERE r.recordtimestamp >= d::timestamp AT TIME ZONE 'UTC'
      AND r.recordtimestamp < (d + 1)::timestamp AT TIME ZONE 'UTC')
ORDER BY d;

-- name: mark_ingest_enriched
-- The fresh days this ingest enriched: planned by the next ETL run all the same (for the
-- export), whose day item then finds the work done (sensors_day.skip_enriched).
UPDATE sensors_days SET ingest_enriched = enriched_version
WHERE day = ANY(%(days)s::date[]);
